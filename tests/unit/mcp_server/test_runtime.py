"""The MCP server's background under supervision: a failure of any kind is reported to the
tools as one line at once (not after the start timeout), retried with backoff, and sync being
down shows as presence "offline".

The Service here is real (its store in a temp state dir) with its network side replaced by
scripted failures: what is tested is the supervision, not Matrix (tests/mcp_stdio and
tests/integration run the real thing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from claudematrix.config import load_config
from claudematrix.errors import HomeserverUnavailable
from claudematrix.identity import Identity
from claudematrix.ids import IdentityName
from claudematrix.mcp_server import runtime as runtime_module
from claudematrix.mcp_server.runtime import NotReady, Runtime
from claudematrix.service import Service

IDENTITY = Identity(IdentityName("runtime-test"), False, False)


class Scripted(Service):
    """connect/sync fail as scripted; presence records what it would publish."""

    def __init__(self, connect_failures: list[Exception], sync_failures: list[Exception]):
        super().__init__(load_config(), IDENTITY, progress=lambda _line: None)
        self.connect_failures = connect_failures
        self.sync_failures = sync_failures
        self.published: list[bool] = []
        self.connects = 0

    async def connect(self, **_: object) -> None:
        self.connects += 1
        if self.connect_failures:
            raise self.connect_failures.pop(0)

    def try_own_sync(self) -> bool:
        return True

    async def sync_forever(
        self, stop: asyncio.Event, on_health: Callable[[bool], None] | None = None
    ) -> None:
        if self.sync_failures:
            raise self.sync_failures.pop(0)
        assert on_health is not None
        on_health(True)
        await stop.wait()

    async def heartbeat_forever(
        self, stop: asyncio.Event, online: Callable[[], bool] = lambda: True
    ) -> None:
        while not stop.is_set():
            if not self.published or self.published[-1] != online():
                self.published.append(online())
            await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "RETRY_START_S", 0.05)


async def until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def run_with(service: Scripted, body: Callable[[Runtime], Awaitable[None]]) -> None:
    async def main() -> None:
        runtime = Runtime(IDENTITY, make_service=lambda: service)
        runtime.start()
        try:
            await body(runtime)
        finally:
            await runtime.shutdown(grace=1.0)

    asyncio.run(main())


def test_a_crash_while_connecting_reaches_the_tools_at_once_then_is_retried() -> None:
    service = Scripted([RuntimeError("disk on fire")], [])

    async def body(runtime: Runtime) -> None:
        with pytest.raises(NotReady) as refused:
            await runtime.ready_service(timeout=5.0)  # at once: not the 180 s start timeout
        line = str(refused.value)
        assert "RuntimeError: disk on fire" in line and "retrying" in line and "\n" not in line
        await until(lambda: service.connects == 2, "a second attempt")
        assert await runtime.ready_service(timeout=5.0) is service
        assert runtime.problem is None

    run_with(service, body)


def test_our_own_error_while_connecting_is_shown_as_it_is() -> None:
    unreachable = HomeserverUnavailable("cannot reach the homeserver at http://127.0.0.1:1")
    service = Scripted([unreachable] * 50, [])

    async def body(runtime: Runtime) -> None:
        with pytest.raises(NotReady, match="cannot reach the homeserver at http://127.0.0.1:1"):
            await runtime.ready_service(timeout=5.0)

    run_with(service, body)


def test_a_failed_sync_shows_offline_and_a_problem_until_it_runs_again() -> None:
    service = Scripted([], [ValueError("bad batch")])

    async def body(runtime: Runtime) -> None:
        assert await runtime.ready_service(timeout=5.0) is service
        await until(lambda: False in service.published, "presence offline while sync is down")
        await until(lambda: service.published[-1] is True, "online again after the retry")
        assert runtime.problem is None

    run_with(service, body)


def test_while_sync_is_down_the_tools_hear_why() -> None:
    service = Scripted([], [ValueError("bad batch")] * 50)

    async def body(runtime: Runtime) -> None:
        await runtime.ready_service(timeout=5.0)
        await until(lambda: runtime.problem is not None, "the problem reported")
        assert "new mail is not arriving: ValueError: bad batch" in str(runtime.problem)
        await until(lambda: service.published[-1:] == [False], "presence offline")

    run_with(service, body)
