"""Asking the person, not an agent, before opening up, trusting or accepting.

Inside Claude Code the agent runs commands, and it can make a terminal (`script`, `expect`)
to answer a prompt or pass --yes: there, these commands are refused whatever the terminal
says, and the person confirms in Claude Code's own dialog (the MCP tools ask through MCP
elicitation) or in a terminal of their own. "Inside" means CLAUDECODE is set or a `claude`
process is among this process's ancestors. It is a barrier against an agent steered by a
message, not against code that runs as the same OS user on purpose: that can read and
write the state dir itself (docs/security.md says what that means).
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from claudematrix.errors import ConsentRequired

__all__ = ["person_confirms", "inside_claude_code", "yes_option", "NOT_CONFIRMED"]

_MAX_DEPTH = 64

yes_option = click.option(
    "--yes", "-y", is_flag=True, help="Confirm without a prompt (not inside Claude Code)."
)
NOT_CONFIRMED = "nothing changed: nobody confirmed (answer at a terminal, or --yes)"


def _parent_and_argv(pid: int) -> tuple[int, list[str]] | None:
    """(parent pid, command line) of a process; None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [a.decode(errors="replace") for a in handle.read().split(b"\0") if a]
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            argv.insert(0, handle.read().strip())
        # The command name in stat may hold spaces and parentheses: the ppid follows the last ")".
        return int(stat.rsplit(")", 1)[1].split()[1]), argv
    except (OSError, ValueError, IndexError):
        pass
    try:  # no /proc (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "ppid=", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
        ppid, _, command = out.partition(" ")
        return int(ppid), command.split()
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _is_claude(argv: list[str]) -> bool:
    for arg in argv[:3]:  # the name, the program, and (for node) the script it runs
        base = arg.rsplit("/", 1)[-1]
        if base == "claude" or "@anthropic-ai/claude-code" in arg:
            return True
    return False


def inside_claude_code() -> bool:
    if os.environ.get("CLAUDECODE"):
        return True
    pid = os.getppid()
    for _ in range(_MAX_DEPTH):
        if pid <= 1:
            return False
        found = _parent_and_argv(pid)
        if found is None:
            return False
        parent, argv = found
        if _is_claude(argv):
            return True
        pid = parent
    return False


def person_confirms(question: str, yes: bool) -> bool:
    """True if the person confirmed: at their own terminal, outside Claude Code."""
    if inside_claude_code():
        raise ConsentRequired(
            f"{question.rstrip('?')}: this needs the person's confirmation in their own "
            "terminal (or in Claude Code's dialog, through the ClaudeMatrix tools); it cannot "
            "be done by a command run from inside a Claude Code session"
        )
    if sys.stdin.isatty():
        return yes or click.confirm(question, default=False)
    return yes
