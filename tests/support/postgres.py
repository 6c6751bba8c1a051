"""The throwaway PostgreSQL clusters of the team server's tests: the bench's helper, one
implementation for both (bench/_postgres.py)."""

from __future__ import annotations

from bench._postgres import Postgres, postgres_bindir, throwaway_postgres

__all__ = ["Postgres", "postgres_bindir", "throwaway_postgres"]
