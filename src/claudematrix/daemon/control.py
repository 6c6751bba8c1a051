"""Starting, stopping and asking the daemon, from the CLI (and tests)."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claudematrix.local import layout
from claudematrix.paths import state_dir
from claudematrix.thin import link

__all__ = ["DaemonStatus", "start", "stop", "status", "reconcile_workers"]

_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class DaemonStatus:
    running: bool
    socket: str
    log_path: str
    pid: int | None = None
    version: str | None = None
    started: float | None = None
    sessions: int = 0
    identities: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)


def status(home: Path | None = None) -> DaemonStatus:
    home = home or state_dir()
    sock_path, log_path = str(home / layout.DAEMON_SOCKET), str(home / layout.DAEMON_LOG)
    try:
        sock, answer = link.connect("status", home=str(home))
    except link.DaemonUnavailable:
        return DaemonStatus(running=False, socket=sock_path, log_path=log_path)
    sock.close()
    return DaemonStatus(
        running=True,
        pid=int(answer["pid"]),
        version=str(answer.get("version")),
        started=float(answer.get("started") or 0),
        sessions=int(answer.get("sessions") or 0),
        identities=list(answer.get("identities") or []),
        workers=list(answer.get("workers") or []),
        socket=sock_path,
        log_path=log_path,
    )


def start(home: Path | None = None, python: str | None = None) -> DaemonStatus:
    home = home or state_dir()
    link.ensure_daemon(python, home=str(home))
    return status(home)


def reconcile_workers(home: Path | None = None) -> list[dict[str, Any]]:
    """Have the daemon (started if need be) run exactly the workers listed in the state dir;
    what it runs now."""
    home = home or state_dir()
    link.ensure_daemon(home=str(home))
    sock, answer = link.connect("workers", home=str(home), timeout=60.0)
    sock.close()
    return list(answer.get("workers") or [])


def stop(home: Path | None = None, timeout: float = _STOP_TIMEOUT_S) -> bool:
    """Stop the daemon (its identities say "offline" first); False if none was running.
    A daemon that does not answer is ended by its recorded pid."""
    home = home or state_dir()
    pid = _recorded_pid(home)
    try:
        sock, answer = link.connect("stop", home=str(home))
        sock.close()
        pid = int(answer.get("pid") or 0) or pid
    except link.DaemonUnavailable:
        if pid is None or not _is_our_daemon(pid):
            return False
        os.kill(pid, signal.SIGTERM)
    if pid is None:
        return True
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    return True


def _recorded_pid(home: Path) -> int | None:
    try:
        record = json.loads((home / layout.DAEMON_PID).read_text())
        return int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_our_daemon(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"daemon" in cmdline and b"run" in cmdline


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
