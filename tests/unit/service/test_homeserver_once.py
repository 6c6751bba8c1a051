"""Identities coming up together make one homeserver check between them, not one each."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

import claudematrix.homeserver
from claudematrix.config import load_config
from claudematrix.errors import HomeserverUnavailable
from claudematrix.service import homeserver_once
from claudematrix.service.homeserver_once import ensure_homeserver


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> list[float]:
    """Each homeserver.start call, as the time it began (a start takes 50 ms)."""
    monkeypatch.setattr(homeserver_once, "_answered_at", {})
    calls: list[float] = []
    lock = threading.Lock()

    def start(_config: object, _progress: object) -> None:
        with lock:
            calls.append(time.monotonic())
        time.sleep(0.05)

    monkeypatch.setattr(claudematrix.homeserver, "start", start)
    return calls


def test_identities_asking_at_once_share_one_start(starts: list[float]) -> None:
    config = load_config()

    async def main() -> None:
        await asyncio.gather(*(ensure_homeserver(config, print) for _ in range(50)))
        await ensure_homeserver(config, print)  # it answered a moment ago

    asyncio.run(main())
    assert len(starts) == 1


def test_a_restart_after_a_failure_checks_again(starts: list[float]) -> None:
    config = load_config()
    asyncio.run(ensure_homeserver(config, print))
    asyncio.run(ensure_homeserver(config, print, recent_s=0))  # sync found it gone
    assert len(starts) == 2


def test_a_failed_start_reaches_every_caller_and_is_not_remembered(
    monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    monkeypatch.setattr(homeserver_once, "_answered_at", {})
    calls: list[int] = []

    def start(_config: object, _progress: object) -> None:
        calls.append(1)
        time.sleep(0.02)
        raise HomeserverUnavailable("the homeserver did not start")

    monkeypatch.setattr(claudematrix.homeserver, "start", start)
    config = load_config()

    async def main() -> list[BaseException | None]:
        return await asyncio.gather(
            *(ensure_homeserver(config, print) for _ in range(5)), return_exceptions=True
        )

    results = asyncio.run(main())
    assert all(isinstance(r, HomeserverUnavailable) for r in results)
    assert len(calls) == 1
    with pytest.raises(HomeserverUnavailable):
        asyncio.run(ensure_homeserver(config, print))
    assert len(calls) == 2
