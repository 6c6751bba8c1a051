"""claudematrix.cli.server: the homeserver commands where no homeserver runs (starting and
stopping a real one: tests/integration/test_homeserver.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import free_port
from unit.cli.conftest import Claudematrix


def test_an_external_homeserver_is_not_ours_to_stop(claudematrix: Claudematrix) -> None:
    for args in (("down",), ("homeserver", "stop")):
        ran = claudematrix(*args)
        assert ran.code == 0 and ran.err == ""
        assert ran.out.startswith("using the external homeserver http://127.0.0.1:")
        assert ran.out.endswith(": nothing to stop\n")


def test_the_status_of_an_external_homeserver_says_whose_it_is(
    claudematrix: Claudematrix,
) -> None:
    ran = claudematrix("homeserver", "status")
    assert ran.code == 0 and ran.out.startswith("the external homeserver http://127.0.0.1:")
    assert "is not answering: check that it is up" in ran.out and "claudematrix up" not in ran.out
    status = json.loads(claudematrix("homeserver", "status", "--json").out)
    assert (status["external"], status["running"]) == (True, False)


def test_the_embedded_homeserver_before_it_is_installed(
    claudematrix: Claudematrix,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    isolated_home: Path,
) -> None:
    monkeypatch.delenv("CLAUDEMATRIX_HOMESERVER")
    port = free_port()
    monkeypatch.setenv("CLAUDEMATRIX_PORT", str(port))
    monkeypatch.setenv("CLAUDEMATRIX_SYNAPSE_VENV", str(tmp_path / "no-synapse-here"))
    ran = claudematrix("homeserver", "status")
    assert ran.out == "homeserver not installed yet: `claudematrix up` installs and starts it\n"
    status = json.loads(claudematrix("homeserver", "status", "--json").out)
    assert status == {
        "installed": False,
        "running": False,
        "pid": None,
        "url": f"http://127.0.0.1:{port}",
        "log_path": str(isolated_home / "homeserver" / "homeserver.log"),
        "external": False,
    }
    assert claudematrix("down").out == "homeserver was not running\n"
