"""Making sure the embedded homeserver runs, once for everyone in this process who asks.

A daemon brings up dozens of identities at once (after a restart, all of them within a
second). Each asking `homeserver.start` itself would queue them on its file lock, each with
its own round of checks against a homeserver that is busy catching everyone up; one check
answers them all, and one that succeeded a moment ago still holds.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from claudematrix import homeserver
from claudematrix.config import Config

__all__ = ["ensure_homeserver"]

RECENT_S = 2.0

_running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Task[None]]] = (
    weakref.WeakKeyDictionary()
)
_answered_at: dict[Path, float] = {}


async def ensure_homeserver(
    config: Config, progress: Callable[[str], None], *, recent_s: float = RECENT_S
) -> None:
    """`homeserver.start(config)`, unless it answered within `recent_s`; callers that come
    while a start runs wait for that one."""
    key = config.home
    if time.monotonic() - _answered_at.get(key, float("-inf")) < recent_s:
        return
    starts = _running.setdefault(asyncio.get_running_loop(), {})
    task = starts.get(key)
    if task is None:
        task = asyncio.create_task(_start(config, progress))
        starts[key] = task
        task.add_done_callback(lambda _t: starts.pop(key, None))
    await asyncio.shield(task)


async def _start(config: Config, progress: Callable[[str], None]) -> None:
    await asyncio.to_thread(homeserver.start, config, progress)
    _answered_at[config.home] = time.monotonic()
