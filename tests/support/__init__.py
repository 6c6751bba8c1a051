"""What every tier of the tests shares: where things are, free loopback ports, and waiting
for a condition with a deadline (never a fixed sleep). support.synapse: the Synapse install
and its processes; support.hooks: running the hooks as Claude Code does.

Imported as `support` (tests/ is on sys.path, as for `integration` and `e2e`). The bench has
its own copies (bench/_env.py): it runs without the tests.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["REPO", "SRC", "CACHE", "free_port", "wait_until"]

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
CACHE = REPO / ".cache"

T = TypeVar("T")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05
) -> T:
    """Poll `condition` until it returns something truthy, and return that; AssertionError
    naming `what` once `timeout` seconds have passed. `interval` is only the poll period."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
