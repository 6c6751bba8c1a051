"""claudematrix.cli: the command's front: help for every command, the version, and errors as
one line on stderr with the error's exit code, never a traceback."""

from __future__ import annotations

import pytest

from claudematrix.cli import cli
from unit.cli.conftest import Claudematrix

COMMANDS = sorted(cli.commands)


def test_help_lists_every_command(claudematrix: Claudematrix) -> None:
    for flag in ("--help", "-h"):
        ran = claudematrix(flag)
        assert (ran.code, ran.err) == (0, "")
        assert "ClaudeMatrix: Claude Code sessions and people messaging" in ran.out
        listed = ran.out.split("Commands:", 1)[1]
        assert all(f"  {name} " in listed for name in COMMANDS), listed
    assert {"send", "inbox", "read", "mode", "trust", "up", "down", "mcp"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(claudematrix: Claudematrix, command: str) -> None:
    ran = claudematrix(command, "--help")
    assert (ran.code, ran.err) == (0, "")
    assert ran.out.startswith(f"Usage: claudematrix {command} ")
    assert (cli.commands[command].help or "").split()[0] in ran.out


def test_version(claudematrix: Claudematrix) -> None:
    ran = claudematrix("--version")
    assert ran.code == 0 and ran.out.startswith("claudematrix, version ")


def test_our_errors_are_one_line_with_their_exit_code(claudematrix: Claudematrix) -> None:
    ran = claudematrix("--as", "../escape", "whoami")
    assert "is not a usable session name" in ran.error and ran.code == 2  # InvalidInput
    ran = claudematrix("mode", "top-secret")
    assert "unknown label 'top-secret'" in ran.error and ran.code == 2  # BadLabel
    ran = claudematrix("send", "@bob:localhost", "hello")  # must reach the homeserver
    assert "is not answering" in ran.error and ran.code == 4  # HomeserverUnavailable


def test_usage_errors_name_the_problem(claudematrix: Claudematrix) -> None:
    """click's own usage errors: exit 2 and one line on stderr naming the problem and where
    the usage is told, nothing on stdout."""
    for args, says, where in (
        (("no-such-command",), "No such command 'no-such-command'", "claudematrix"),
        (
            ("inbox", "--limit", "many"),
            "Invalid value for '--limit': 'many' is not a valid integer",
            "claudematrix inbox",
        ),
        (("read",), "Missing argument 'MESSAGE_ID'", "claudematrix read"),
    ):
        ran = claudematrix(*args)
        assert (ran.code, ran.out) == (2, ""), ran
        assert ran.err == f"claudematrix: {says}; see `{where} --help`\n", ran.err
