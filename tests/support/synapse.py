"""The Synapse install the tests share, and the Synapse processes of a state dir."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from support import CACHE, wait_until

__all__ = ["synapse_venv", "config_path_of", "synapse_pids", "kill_synapses", "kill_synapses_of"]


def synapse_venv() -> Path:
    """The Synapse install tests share (made by .ci/run or scripts/setup-dev.sh), so no test
    pays for installing it."""
    return Path(os.environ.get("CLAUDEMATRIX_SYNAPSE_VENV") or CACHE / "synapse-venv")


def config_path_of(home: Path) -> Path:
    """The homeserver.yaml of the embedded homeserver of state dir `home`."""
    return home / "homeserver" / "homeserver.yaml"


def _processes(home: Path) -> list[int]:
    """Every live process whose command line runs this home's Synapse, read from /proc."""
    return _processes_of(config_path_of(home))


def _processes_of(config_path: Path) -> list[int]:
    wanted = str(config_path)
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = (Path("/proc") / entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if "synapse.app.homeserver" in args and wanted in args:
            pids.append(int(entry))
    return sorted(pids)


def _parent(pid: int) -> int | None:
    """The parent pid, from /proc/<pid>/stat (read here independently of the product's
    homeserver/_procs.py, whose finding of Synapses these helpers check)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])  # after "(comm)": state, then ppid


def synapse_pids(home: Path) -> list[int]:
    """The live Synapse homeservers of this home. A child Synapse forks (a library running a
    helper program) shows its parent's command line until it execs: not a second one."""
    found = _processes(home)
    return [pid for pid in found if _parent(pid) not in found]


def kill_synapses(home: Path, timeout: float = 15.0) -> None:
    """Last-resort cleanup: SIGKILL every Synapse process of this home, by pid, and wait for
    them to be gone."""
    kill_synapses_of(config_path_of(home), timeout)


def kill_synapses_of(config_path: Path, timeout: float = 15.0) -> None:
    """The same for the Synapse of any homeserver.yaml (a team server's)."""
    for pid in _processes_of(config_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _processes_of(config_path), timeout, "killed Synapse processes to exit")
