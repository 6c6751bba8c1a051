"""One clock per process for what the hooks change on disk behind our back (a session's task
file): a daemon holding fifty identities wakes once every few seconds to look at all of them,
not fifty times. Each identity's presence loop then sleeps until it has something to do."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

__all__ = ["PERIOD_S", "every_period"]

PERIOD_S = 5.0


class _Clock:
    def __init__(self) -> None:
        self.checks: dict[int, Callable[[], None]] = {}
        self.task: asyncio.Task[None] | None = None
        self._next_key = 0

    def add(self, check: Callable[[], None]) -> Callable[[], None]:
        key, self._next_key = self._next_key, self._next_key + 1
        self.checks[key] = check
        if self.task is None:
            self.task = asyncio.create_task(self._run())

        def remove() -> None:
            self.checks.pop(key, None)

        return remove

    async def _run(self) -> None:
        while self.checks:
            await asyncio.sleep(PERIOD_S)
            for check in list(self.checks.values()):
                check()
        self.task = None  # nobody left; the next `add` starts it again


_clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Clock] = weakref.WeakKeyDictionary()


def every_period(check: Callable[[], None]) -> Callable[[], None]:
    """Run `check` (quick, never raising) every PERIOD_S on this event loop's one clock;
    returns what removes it."""
    clock = _clocks.setdefault(asyncio.get_running_loop(), _Clock())
    return clock.add(check)
