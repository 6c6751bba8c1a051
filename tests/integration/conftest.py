"""Integration fixtures: a real Synapse on a free loopback port, always cleaned up.

`shared_homeserver` (session scope, tests/conftest.py) is the one server most tests use:
set the variables in its `env` (e.g. with monkeypatch.setenv) and call load_config().
Tests that need a server of their own use `own_homeserver`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from claudematrix.config import Config, load_config
from claudematrix.homeserver import start, stop
from support import free_port
from support.daemon import stop_daemons
from support.synapse import kill_synapses, synapse_venv


@dataclass(frozen=True)
class SharedHomeserver:
    home: Path
    port: int
    url: str
    env: dict[str, str]


@contextlib.contextmanager
def shared_homeserver_running(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SharedHomeserver]:
    """One embedded Synapse in its own state dir; stopped at the end. (The session-wide
    `shared_homeserver` fixture in tests/conftest.py serves it to every tier.)"""
    home = tmp_path_factory.mktemp("shared-hs") / "cmhome"
    port = free_port()
    env = {
        "CLAUDEMATRIX_HOME": str(home),
        "CLAUDEMATRIX_PORT": str(port),
        "CLAUDEMATRIX_SYNAPSE_VENV": str(synapse_venv()),
    }
    config: Config | None = None
    try:
        with mock.patch.dict(os.environ, env):
            os.environ.pop("CLAUDEMATRIX_HOMESERVER", None)
            config = load_config()
        state = start(config)
        yield SharedHomeserver(home=home, port=port, url=state.url, env=env)
    finally:
        try:
            stop_daemons(home)  # first: its sessions say "offline" while the server is up
            if config is not None:
                stop(config)
        finally:
            kill_synapses(home)


@pytest.fixture
def own_homeserver(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], Config]]:
    """This test's own embedded homeserver settings (free port); every Synapse it started
    is stopped afterwards, whatever happened. Call the fixture value for a fresh Config."""
    monkeypatch.setenv("CLAUDEMATRIX_PORT", str(free_port()))
    try:
        yield load_config
    finally:
        try:
            stop_daemons(isolated_home)  # first: a daemon would start the homeserver again
            stop(load_config())
        finally:
            kill_synapses(isolated_home)
