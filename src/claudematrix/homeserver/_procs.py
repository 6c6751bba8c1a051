"""Finding our Synapse process: a pid file, checked against the process's command line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from claudematrix.paths import write_private

__all__ = ["MODULE", "find_our_synapses", "is_gone", "is_our_synapse", "read_pid", "write_pid"]

MODULE = "synapse.app.homeserver"
_PROC = Path("/proc")


def _cmdline(pid: int) -> list[str] | None:
    """The process's argv, or None if it is gone (a zombie has an empty one)."""
    if _PROC.is_dir():
        try:
            raw = (_PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        parts = raw.decode(errors="replace").split("\0")
        return [part for part in parts if part] or None
    try:  # no /proc (macOS): ask ps
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.split() or None


def _matches(argv: list[str], config_path: Path) -> bool:
    joined = " ".join(argv)
    return MODULE in argv and (str(config_path) in argv or joined.endswith(str(config_path)))


def is_our_synapse(pid: int, config_path: Path) -> bool:
    """True if `pid` is alive and is a Synapse running `config_path` (not a reused pid)."""
    if pid <= 0:
        return False
    argv = _cmdline(pid)
    return argv is not None and _matches(argv, config_path)


def is_gone(pid: int) -> bool:
    """True once `pid` has exited completely (gone or a zombie), its files and sockets closed.

    is_our_synapse() turns False a little earlier: a dying process loses its command line
    before the kernel closes its sockets.
    """
    if _PROC.is_dir():
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            return True
        return stat.rpartition(")")[2].split()[0] in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _parent(pid: int) -> int | None:
    try:
        status = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    return None


def find_our_synapses(config_path: Path) -> list[int]:
    """Every live Synapse running `config_path`, found without the pid file."""
    pids: list[int] = []
    if _PROC.is_dir():
        for entry in os.listdir(_PROC):
            if entry.isdigit() and is_our_synapse(int(entry), config_path):
                pids.append(int(entry))
        # A child Synapse forks shows its parent's command line until it execs.
        return sorted(pid for pid in pids if _parent(pid) not in pids)
    try:
        out = subprocess.run(
            ["ps", "-axo", "pid=,command="],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    for line in out.splitlines():
        pid_text, _, command = line.strip().partition(" ")
        if pid_text.isdigit() and _matches(command.split(), config_path):
            pids.append(int(pid_text))
    return sorted(pids)


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(path: Path, pid: int) -> None:
    write_private(path, f"{pid}\n")
