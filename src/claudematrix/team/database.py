"""The team server's PostgreSQL as Synapse sees it: reachable, set up the way Synapse needs
(UTF8, C collation and ctype) and migrated to the installed Synapse's schema.

Asked through the Synapse venv's own driver (psycopg2), by running _pg_probe.py there: the
check connects exactly as Synapse will, and ClaudeMatrix needs no PostgreSQL driver itself.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claudematrix.errors import ConfigError

__all__ = ["DatabaseReport", "probe_config", "probe_dsn", "require_synapse_ready"]

_PROBE = Path(__file__).with_name("_pg_probe.py")
_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DatabaseReport:
    error: str | None  # None, or: bad-dsn, connect, query, no-driver, not-postgres, probe
    detail: str
    args: dict[str, Any]
    database: str | None
    collate: str | None
    ctype: str | None
    encoding: str | None
    schema_version: int | None
    synapse_schema: int | None

    @property
    def reachable(self) -> bool:
        return self.error is None

    @property
    def locale_problem(self) -> str | None:
        """What is wrong with the database's locale for Synapse, if anything."""
        wrong = [
            f"{what} is {value!r}"
            for what, value, wanted in (
                ("its encoding", self.encoding, "UTF8"),
                ("LC_COLLATE", self.collate, "C"),
                ("LC_CTYPE", self.ctype, "C"),
            )
            if value != wanted
        ]
        return ", ".join(wrong) or None

    @property
    def migrated(self) -> bool:
        return self.schema_version is not None and self.schema_version == self.synapse_schema


def _run(python: Path, request: dict[str, Any]) -> DatabaseReport:
    try:
        done = subprocess.run(
            [str(python), "-I", str(_PROBE)],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
        data = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        data = {"error": "probe", "detail": str(exc)}
    else:
        if not data:
            lines = done.stderr.strip().splitlines()
            data = {"error": "probe", "detail": lines[-1] if lines else f"exit {done.returncode}"}
    return DatabaseReport(
        error=data.get("error"),
        detail=str(data.get("detail") or ""),
        args=dict(data.get("args") or {}),
        database=data.get("database"),
        collate=data.get("collate"),
        ctype=data.get("ctype"),
        encoding=data.get("encoding"),
        schema_version=data.get("schema_version"),
        synapse_schema=data.get("synapse_schema"),
    )


def probe_dsn(python: Path, dsn: str) -> DatabaseReport:
    return _run(python, {"dsn": dsn})


def probe_config(python: Path, config_path: Path) -> DatabaseReport:
    return _run(python, {"config": str(config_path)})


def require_synapse_ready(report: DatabaseReport) -> dict[str, Any]:
    """The connection keywords of a database Synapse can use; else a one-line ConfigError."""
    if report.error == "bad-dsn":  # the driver's reason quotes the value, password and all
        raise ConfigError(
            "the --postgres value is not a PostgreSQL connection string: give e.g. "
            "postgresql://synapse:PASSWORD@localhost/synapse"
        )
    if report.error == "connect":
        raise ConfigError(
            f"cannot connect to PostgreSQL ({report.detail}): check that it runs and that the "
            "--postgres user, password, host and database are right"
        )
    if report.error is not None:
        raise ConfigError(
            f"could not check the PostgreSQL database ({report.error}: {report.detail}): fix "
            "that and run `claudematrix server init` again"
        )
    problem = report.locale_problem
    if problem:
        name = report.database or "synapse"
        raise ConfigError(
            f"database {name!r} cannot hold Synapse: {problem}; Synapse needs UTF8 with C "
            f"collation: create it with CREATE DATABASE {name} ENCODING 'UTF8' "
            "LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0 OWNER <user>; then run this again"
        )
    return report.args
