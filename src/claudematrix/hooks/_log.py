"""The hooks' log: <state dir>/hooks.log (0600, one rotation at 1 MiB). Never stdout/stderr."""

from __future__ import annotations

import os
import time

from claudematrix.local.layout import HOOKS_LOG, state_dir

__all__ = ["log", "log_exception"]

_MAX_BYTES = 1 << 20


def log(event: str, text: str) -> None:
    base = state_dir()
    os.makedirs(base, mode=0o700, exist_ok=True)
    path = os.path.join(base, HOOKS_LOG)
    try:
        if os.stat(path).st_size > _MAX_BYTES:
            os.replace(path, path + ".1")
    except OSError:
        pass
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{stamp} pid={os.getpid()} {event}: {text.rstrip()}\n".encode())
    finally:
        os.close(fd)


def log_exception(event: str, exc: BaseException) -> None:
    import traceback

    log(event, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
