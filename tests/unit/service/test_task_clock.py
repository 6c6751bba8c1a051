"""One clock per event loop: every check runs each period, a removed one no longer does,
and the clock stops when nobody is left and starts again for the next."""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Callable

import pytest

from claudematrix.service import task_clock
from claudematrix.service.task_clock import every_period


async def _until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def test_one_clock_runs_every_check_and_stops_when_nobody_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(task_clock, "PERIOD_S", 0.01)

    async def main() -> None:
        seen: collections.Counter[str] = collections.Counter()
        removers = {n: every_period(functools.partial(seen.update, n)) for n in "abc"}
        clock = task_clock._clocks[asyncio.get_running_loop()]
        await _until(lambda: min(seen[n] for n in "abc") >= 2, "every check, twice")
        removers["b"]()
        seen.clear()
        await _until(lambda: seen["a"] >= 2 and seen["c"] >= 2, "the others, twice more")
        assert seen["b"] == 0  # removed: not run again
        removers["a"]()
        removers["c"]()
        await _until(lambda: clock.task is None, "the clock to stop")  # no wake-ups at all
        again: list[int] = []
        every_period(lambda: again.append(1))
        await _until(lambda: bool(again), "a new clock for a new check")

    asyncio.run(main())
