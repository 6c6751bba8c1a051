"""The bench's safety net: when the bench process dies, however it dies, clean up after it.

Started by the bench in a session of its own (so Ctrl-C does not reach it) with a pipe on
stdin. When that pipe closes (the bench exited, crashed or was killed with -9) it stops
every process that carries this run's marker in its environment or this run's directory in
its command line (the embedded Synapse, MCP servers, peers), then deletes the run dir.

Standard library only; run as `python -I bench/_janitor.py <run dir> <bench pid> [--keep]`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time

MARKER_ENV = "CMBENCH_RUN"


def ours(pid: int, run_dir: str, spared: set[int]) -> bool:
    if pid in spared:
        return False
    marker = f"{MARKER_ENV}={run_dir}".encode()
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            if marker in handle.read().split(b"\0"):
                return True
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return run_dir.encode() in handle.read()
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def sweep(run_dir: str, spared: set[int], grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL after `grace` seconds, every process of this run. Returns them."""
    found = [int(p) for p in os.listdir("/proc") if p.isdigit() and ours(int(p), run_dir, spared)]
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in found:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while any(alive(p) for p in found) and time.monotonic() < deadline:
            time.sleep(0.05)
    return found


def main() -> None:
    run_dir, bench_pid = sys.argv[1], int(sys.argv[2])
    keep = "--keep" in sys.argv[3:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        sys.stdin.buffer.read()  # returns at EOF: the bench has exited (or closed us)
    sweep(run_dir, {os.getpid(), bench_pid})
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
