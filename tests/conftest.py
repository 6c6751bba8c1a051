"""Shared test plumbing: every test gets its own state dir; tools are found, never assumed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.conftest import SharedHomeserver, shared_homeserver_running
from integration.harness import Machine, machine_one, machine_two
from support.daemon import stop_daemons, stop_daemons_under
from support.synapse import synapse_venv


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test touches ~/.claudematrix or sees the developer's environment."""
    home = tmp_path / "cmhome"
    monkeypatch.setenv("CLAUDEMATRIX_HOME", str(home))
    for var in (
        "CLAUDE_CODE_SESSION_ID",
        "CLAUDEMATRIX_HOMESERVER",
        "CLAUDEMATRIX_PORT",
        "CLAUDEMATRIX_SERVER_NAME",
        "CLAUDEMATRIX_MACHINE_NAME",
        "CLAUDEMATRIX_REGISTRATION_SHARED_SECRET",
        "CLAUDEMATRIX_REGISTRATION_TOKEN",
        "CLAUDEMATRIX_USER",
        "CLAUDEMATRIX_PASSWORD",
        "CLAUDEMATRIX_ACCESS_TOKEN",
        "CLAUDE_PROJECT_DIR",
        "CLAUDEMATRIX_MODE",
        "CLAUDEMATRIX_PLUGIN_MODE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLAUDEMATRIX_SYNAPSE_VENV", str(synapse_venv()))
    try:
        yield home
    finally:
        stop_daemons(home)


@pytest.fixture
def m1(shared_homeserver: SharedHomeserver) -> Machine:
    """ "Machine 1": the shared homeserver's own state dir (tests/integration/harness.py)."""
    return machine_one(shared_homeserver)


@pytest.fixture
def m2(shared_homeserver: SharedHomeserver, tmp_path: Path) -> Iterator[Machine]:
    """ "Machine 2": another state dir, using the shared Synapse as an external homeserver."""
    machine = machine_two(shared_homeserver, tmp_path / "machine2")
    try:
        yield machine
    finally:
        stop_daemons(machine.home)


@pytest.fixture(scope="session", autouse=True)
def no_daemon_outlives_the_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Whatever state dir a test made, the daemon its commands started ends with the run."""
    yield
    stop_daemons_under(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def shared_homeserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedHomeserver]:
    """One embedded Synapse for the whole test session (integration and adversarial tiers)."""
    with shared_homeserver_running(tmp_path_factory) as shared:
        yield shared
