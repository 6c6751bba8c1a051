"""`claudematrix machine federate`: what it refuses before touching anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from claudematrix.config import load_config
from claudematrix.errors import ConfigError
from claudematrix.federation.address import parse_federation_address
from claudematrix.service.federation_setup import federate


def _federate(address: str, name: str | None = None) -> None:
    import asyncio

    asyncio.run(
        federate(load_config(), parse_federation_address(address), name, stop_daemon=lambda: False)
    )


def test_an_address_that_names_no_machine_needs_a_server_name(isolated_home: Path) -> None:
    with pytest.raises(ConfigError, match="--server-name"):
        _federate("0.0.0.0:8448")


@pytest.mark.parametrize("name", ["localhost:8448", "0.0.0.0:8448"])
def test_a_name_no_other_machine_can_reach_is_refused(isolated_home: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="no other machine can reach"):
        _federate("0.0.0.0:8448", name)
    with pytest.raises(ConfigError, match="ADDRESS:PORT"):
        _federate("0.0.0.0:8448", "localhost")


def test_a_machine_that_federates_already_is_told_so(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_FEDERATION", "127.0.0.2:8448")
    with pytest.raises(ConfigError, match="already federates"):
        _federate("127.0.0.2:8448")


def test_an_external_homeserver_is_its_admins_business(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_HOMESERVER", "https://matrix.example.org")
    with pytest.raises(ConfigError, match="its admin"):
        _federate("127.0.0.2:8448")


def test_a_server_name_set_in_the_environment_would_undo_it(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_SERVER_NAME", "localhost")
    with pytest.raises(ConfigError, match="unset it"):
        _federate("127.0.0.2:8448")
