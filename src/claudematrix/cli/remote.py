"""Running a command line in the daemon for a `claudematrix` process elsewhere.

The command is the very same click command, run in a worker thread with that process's
environment (`_app.REMOTE`) and its output captured for it; the Service work runs on the
daemon's event loop. Only the commands claudematrix.thin.cli forwards come here: none of
them asks the person anything.
"""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from claudematrix.cli._app import REMOTE, Remote
from claudematrix.cli._main import run
from claudematrix.ids import IdentityName
from claudematrix.service import Service
from claudematrix.session_env import SessionEnv

__all__ = ["run_command"]

_captured = threading.local()


class _PerThread(io.TextIOBase):
    """sys.stdout / sys.stderr for the daemon: a command's thread writes to its own buffer,
    everything else to the real stream (the daemon's log)."""

    def __init__(self, real: TextIO, name: str) -> None:
        self._real = real
        self._name = name

    def _target(self) -> TextIO:
        buffer: TextIO | None = getattr(_captured, self._name, None)
        return buffer if buffer is not None else self._real

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return "strict"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def fileno(self) -> int:
        return self._real.fileno()


_install_lock = threading.Lock()
_COMMANDS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="claudematrix-command")


def _install() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _PerThread):
            sys.stdout = _PerThread(sys.stdout, "out")
        if not isinstance(sys.stderr, _PerThread):
            sys.stderr = _PerThread(sys.stderr, "err")


async def run_command(
    argv: list[str], env: SessionEnv, held: Callable[[IdentityName], Service | None]
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `claudematrix <argv>` run for a caller elsewhere."""
    _install()
    loop = asyncio.get_running_loop()

    def work() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        _captured.out, _captured.err = out, err
        token = REMOTE.set(Remote(env, loop, held))
        try:
            code = run(list(argv))
        except SystemExit as exc:  # (no forwarded command exits, but never take the daemon)
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # a bug: one line for the caller, the story for the log
            print(f"claudematrix: {type(exc).__name__}: {exc}", file=err)
            code = 1
            traceback.print_exc(file=sys.__stderr__)
        finally:
            REMOTE.reset(token)
            _captured.out = _captured.err = None
        return code, out.getvalue(), err.getvalue()

    # Their own threads: a command waits there for its Service work on the loop, which may
    # itself need the loop's default executor (to_thread), so the two never share one.
    return await loop.run_in_executor(_COMMANDS, work)
