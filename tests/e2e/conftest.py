"""Fixtures for end-to-end tests through the real Claude Code CLI (see support/)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.support.claude_cli import REPO, Claude, find_claude
from e2e.support.fake_model import FakeModel
from support import free_port

DEV_VENV = REPO / ".venv"


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The pinned Claude Code binary (npm-installed into .cache/claude-code if missing)."""
    return find_claude()


@pytest.fixture
def fake_model() -> Iterator[FakeModel]:
    """A scripted Messages API on a free loopback port, stopped after the test."""
    with FakeModel() as fake:
        yield fake


@pytest.fixture
def claude(
    claude_bin: Path, fake_model: FakeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Claude]:
    """Claude Code with a throwaway HOME and project dir, talking to `fake_model`.

    The plugin runs from the dev venv (CLAUDEMATRIX_PLUGIN_VENV) unless a test unsets it.
    Every process it started is stopped afterwards, also when the test fails.
    """
    monkeypatch.setenv("CLAUDEMATRIX_PLUGIN_VENV", str(DEV_VENV))
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    cli = Claude(binary=claude_bin, home=home, project=project, model_url=fake_model.url)
    # Its own port too: a homeserver some other state dir runs on the default port must
    # never be mistaken for this test's.
    cli.env_extra["CLAUDEMATRIX_PORT"] = str(free_port())
    try:
        yield cli
    finally:
        cli.stop_all()
