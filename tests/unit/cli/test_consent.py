"""Inside Claude Code, the CLI will not take the person's confirmation: found by CLAUDECODE or
by a `claude` process among the ancestors (an agent can unset the variable, not its parent)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from claudematrix.cli._consent import inside_claude_code

PROBE = "from claudematrix.cli._consent import inside_claude_code; print(inside_claude_code())"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CLAUDECODE"}
    return {**env, **extra}


def _probe(argv: list[str], env: dict[str, str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout


@pytest.fixture
def fake_claude(tmp_path: Path) -> Path:
    """An executable called `claude` that runs its arguments as a child, as Claude Code
    runs a Bash tool command."""
    script = tmp_path / "bin" / "claude"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\n"$@"\n')
    script.chmod(0o755)
    return script


def test_a_claude_ancestor_is_found_without_the_variable(fake_claude: Path) -> None:
    nested = ["/bin/sh", "-c", f'"{sys.executable}" -c "{PROBE}"']
    assert _probe([str(fake_claude), *nested], _env()).strip() == "True"


def test_the_variable_alone_is_enough() -> None:
    assert _probe([sys.executable, "-c", PROBE], _env(CLAUDECODE="1")).strip() == "True"


def test_outside_claude_code_nothing_is_found() -> None:
    if inside_claude_code():
        pytest.skip("the tests themselves run inside Claude Code")
    assert _probe([sys.executable, "-c", PROBE], _env()).strip() == "False"
