"""`claudematrix join|leave`: what they refuse before touching anything. Joining for real is
in tests/integration/test_team_server.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from claudematrix.config import load_config
from claudematrix.errors import ConfigError, HomeserverUnavailable
from claudematrix.service.team_membership import join_team, leave_team
from support import free_port


def _join(url: str, token: str = "t", **kwargs: object) -> None:
    asyncio.run(join_team(load_config(), url, token, stop_daemon=lambda: False, **kwargs))  # type: ignore[arg-type]


def test_a_url_that_is_not_one_is_refused(isolated_home: Path) -> None:
    with pytest.raises(ConfigError, match="is not a URL"):
        _join("matrix.example.org")


def test_a_person_needs_a_password(isolated_home: Path) -> None:
    with pytest.raises(ConfigError, match="password of ann"):
        _join("https://matrix.example.org", person="ann")


def test_nothing_answering_is_said_in_one_line(isolated_home: Path) -> None:
    with pytest.raises(HomeserverUnavailable, match="no Matrix homeserver answers"):
        _join(f"http://127.0.0.1:{free_port()}")
    assert "homeserver" not in (isolated_home / "config.json").read_text()


def test_an_environment_that_would_override_the_join_is_refused(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_REGISTRATION_TOKEN", "other")
    with pytest.raises(ConfigError, match="CLAUDEMATRIX_REGISTRATION_TOKEN set"):
        _join("https://matrix.example.org")


def test_a_machine_on_its_own_homeserver_has_nothing_to_leave(isolated_home: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to leave"):
        asyncio.run(leave_team(load_config(), stop_daemon=lambda: False))
