"""The `claudematrix` command's quick path: everyday commands run by the machine's daemon.

The daemon has the Matrix library loaded and every session's identity connected, so a command
like `inbox` costs a socket round trip instead of an interpreter importing that library. The
daemon runs the very same command (the click CLI) and sends back its output and exit code.

Only commands that never ask the person anything go this way (FORWARDED), never `--help` or
`--stdin`; everything else, or `CLAUDEMATRIX_DAEMON=off`, or a daemon that cannot be reached
or started, runs in this process as before. Standard library only.
"""

from __future__ import annotations

import json
import os
import sys

from claudematrix.thin import link

__all__ = ["forward", "forwarded_command", "FORWARDED", "DAEMON_ENV"]

FORWARDED = frozenset({"send", "inbox", "read", "search", "contacts", "whoami", "status"})
DAEMON_ENV = "CLAUDEMATRIX_DAEMON"  # "off": every command runs in its own process
_NOT_FORWARDED_FLAGS = ("-h", "--help", "--stdin", "--version")


def _command(argv: list[str]) -> str | None:
    """The subcommand, after the group's own option (`--as NAME` / `--as=NAME`)."""
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option == "--as" and rest:
            rest.pop(0)
        elif not option.startswith("--as="):
            return None  # a group option we do not know: let click say so
    return rest[0] if rest else None


def forwarded_command(argv: list[str]) -> str | None:
    """The command of `argv` if the daemon runs it, else None."""
    command = _command(argv)
    if command not in FORWARDED or any(a in _NOT_FORWARDED_FLAGS for a in argv):
        return None
    return command


def forward(argv: list[str]) -> int | None:
    """Run the command through the daemon and return its exit code; None if it should run
    in this process instead."""
    if os.environ.get(DAEMON_ENV, "").strip().lower() in ("0", "off", "no", "false"):
        return None
    if forwarded_command(argv) is None:
        return None
    try:
        link.ensure_daemon()
        sock, _answer = link.connect("cli", extra={"argv": argv}, timeout=None)
    except link.DaemonUnavailable:
        return None
    code: int | None = None
    with sock, sock.makefile("rb") as stream:
        for line in stream:
            try:
                frame = json.loads(line)
            except ValueError:
                continue
            if "out" in frame:
                sys.stdout.write(str(frame["out"]))
            elif "err" in frame:
                sys.stderr.write(str(frame["err"]))
            elif "exit" in frame:
                code = int(frame["exit"])
    sys.stdout.flush()
    if code is None:  # the daemon died while running it
        sys.stderr.write(
            "claudematrix: the daemon stopped during the command (a send waits in the outbox "
            "and goes out with the next command): check before running it again\n"
        )
        return 75  # EX_TEMPFAIL
    return code
