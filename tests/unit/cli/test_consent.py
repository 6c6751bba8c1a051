"""claudematrix.cli._consent: inside Claude Code, the CLI will not take the person's
confirmation: found by CLAUDECODE or by a `claude` process among the ancestors (an agent can
unset the variable, not its parent). Outside, the person answers at their terminal, or --yes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from claudematrix.cli._consent import inside_claude_code, person_confirms
from claudematrix.errors import ConsentRequired

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


class Terminal(io.StringIO):
    """Standard input that is a terminal, with the person's answer typed in."""

    def isatty(self) -> bool:
        return True


def test_inside_claude_code_even_yes_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAUDECODE", "1")
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    with pytest.raises(ConsentRequired) as refused:
        person_confirms("Trust @bob:example.org with trusted-labelled data?", yes=True)
    text = str(refused.value)
    assert text.startswith("Trust @bob:example.org with trusted-labelled data: this needs ")
    assert "the person's confirmation in their own terminal" in text and "\n" not in text
    assert refused.value.exit_code == 7


def test_at_the_persons_terminal_they_are_asked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CLAUDECODE", raising=False)
    if inside_claude_code():
        pytest.skip("the tests themselves run inside Claude Code")
    for answer, confirmed in (("y\n", True), ("n\n", False), ("\n", False)):
        monkeypatch.setattr(sys, "stdin", Terminal(answer))
        assert person_confirms("Open up from private to public?", yes=False) is confirmed
        assert "Open up from private to public? [y/N]" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", Terminal(""))
    assert person_confirms("Open up?", yes=True) is True  # --yes: no question
    assert capsys.readouterr().out == ""


def test_without_a_terminal_only_yes_confirms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLAUDECODE", raising=False)
    if inside_claude_code():
        pytest.skip("the tests themselves run inside Claude Code")
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # piped: never read as an answer
    assert person_confirms("Accept messages from @eve:x?", yes=False) is False
    assert person_confirms("Accept messages from @eve:x?", yes=True) is True
