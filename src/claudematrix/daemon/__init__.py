"""The per-machine daemon that owns every local identity's Matrix side (docs/daemon.md)."""

from claudematrix.daemon.control import DaemonStatus, reconcile_workers, start, status, stop
from claudematrix.daemon.host import Daemon, run_daemon

__all__ = [
    "Daemon",
    "DaemonStatus",
    "run_daemon",
    "start",
    "status",
    "stop",
    "reconcile_workers",
]
