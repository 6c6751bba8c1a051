"""One clock per event loop: every check runs each period, a removed one no longer does,
and the clock stops when nobody is left and starts again for the next."""

from __future__ import annotations

import asyncio
import functools

import pytest

from claudematrix.service import task_clock
from claudematrix.service.task_clock import every_period


def test_one_clock_runs_every_check_and_stops_when_nobody_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(task_clock, "PERIOD_S", 0.01)

    async def main() -> None:
        seen: list[str] = []
        removers = [every_period(functools.partial(seen.append, n)) for n in ("a", "b", "c")]
        clock = task_clock._clocks[asyncio.get_running_loop()]
        await asyncio.sleep(0.055)
        assert {"a", "b", "c"} <= set(seen) and clock.task is not None
        removers[1]()
        seen.clear()
        await asyncio.sleep(0.035)
        assert "b" not in seen and {"a", "c"} <= set(seen)
        removers[0]()
        removers[2]()
        await asyncio.sleep(0.03)
        assert clock.task is None  # nothing to look at: no wakeups at all
        again: list[int] = []
        every_period(lambda: again.append(1))
        await asyncio.sleep(0.035)
        assert again

    asyncio.run(main())
