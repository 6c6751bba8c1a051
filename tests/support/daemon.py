"""The daemons tests start (through a shim, the CLI or directly), found and stopped for sure."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from support import wait_until

__all__ = ["daemon_pids", "stop_daemons", "stop_daemons_under"]


def _belongs(pid: str, home: Path) -> bool:
    proc = Path("/proc") / pid
    try:
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if b"daemon" not in argv or b"run" not in argv or not any(b"claudematrix" in a for a in argv):
        return False
    with contextlib.suppress(OSError):
        if Path(os.readlink(proc / "cwd")) == home:
            return True
    with contextlib.suppress(OSError):
        wanted = f"CLAUDEMATRIX_HOME={home}".encode()
        return wanted in (proc / "environ").read_bytes().split(b"\0")
    return False


def daemon_pids(home: Path) -> list[int]:
    """The live daemons of this state dir (read from /proc, not from the daemon's records)."""
    home = home.resolve() if home.exists() else home
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _belongs(entry, home):
            with contextlib.suppress(OSError):
                state = (Path("/proc") / entry / "stat").read_text().rpartition(")")[2].split()
                if state and state[0] != "Z":
                    found.append(int(entry))
    return sorted(found)


def stop_daemons(home: Path, timeout: float = 20.0) -> None:
    """Stop this state dir's daemon as a user would, then SIGKILL anything left."""
    if (home / "daemon.sock").exists() or (home / "daemon.pid").exists():
        from claudematrix.daemon import stop

        with contextlib.suppress(Exception):
            stop(home)
    for pid in daemon_pids(home):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not daemon_pids(home), timeout, "the test's daemons to exit")


def stop_daemons_under(root: Path, timeout: float = 20.0) -> None:
    """SIGKILL every daemon whose state dir is inside `root` (the end of a test run)."""

    def found() -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                cwd = Path(os.readlink(Path("/proc") / entry / "cwd"))
                if cwd.is_relative_to(root) and _belongs(entry, cwd):
                    pids.append(int(entry))
        return pids

    for pid in found():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not found(), timeout, "the run's daemons to exit")
