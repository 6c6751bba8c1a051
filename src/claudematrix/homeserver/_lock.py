"""An exclusive lock on a file (fcntl.flock), waited for with a deadline."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from claudematrix.errors import LockHeld

__all__ = ["file_lock"]


@contextmanager
def file_lock(
    path: Path,
    *,
    timeout: float,
    waiting: Callable[[], None] | None = None,
    held_message: str,
) -> Iterator[None]:
    """Hold an exclusive flock on `path`; call `waiting` once if another process has it.

    The lock goes with the open file: it is released when the block ends or the process
    dies, and children spawned with close_fds (subprocess's default) do not inherit it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        notified = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(held_message) from None
                if waiting is not None and not notified:
                    waiting()
                    notified = True
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
