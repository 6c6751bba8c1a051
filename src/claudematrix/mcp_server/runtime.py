"""The session's Service for the MCP server's lifetime, kept running under supervision.

Connecting (which may first install and start the homeserver) runs in the background while
the MCP handshake answers at once. Then two loops run: sync (new mail into the store and the
hooks' markers) and presence. Whatever fails, whether a homeserver error or a bug, is logged
to stderr with its traceback, shown to the tools as one line, and retried with backoff;
presence says "offline" while sync is down, so nobody waits on a session that cannot hear.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

from claudematrix.config import load_config
from claudematrix.errors import ClaudeMatrixError, LockHeld
from claudematrix.identity import Identity
from claudematrix.service import Service

__all__ = ["Runtime", "NotReady"]

READY_TIMEOUT_S = 180.0  # the first start may install the homeserver
RETRY_START_S = 1.0
RETRY_MAX_S = 30.0
_HEALTHY_RUN_S = 60.0  # a loop that ran this long before failing starts its backoff afresh
_LOCK_RETRY_S = 5.0
_CLOSE_GRACE_S = 1.0
_PRESENCE_AFTER_SYNC_S = 5.0


class NotReady(ClaudeMatrixError):
    """The tools cannot work yet: still starting, or connecting keeps failing."""


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Runtime:
    def __init__(
        self, identity: Identity, make_service: Callable[[], Service] | None = None
    ) -> None:
        self.identity = identity
        self._make_service = make_service or (
            lambda: Service(load_config(), identity, progress=log, long_lived=True)
        )
        self.service: Service | None = None
        self.stop = asyncio.Event()
        self._settled = asyncio.Event()  # the first connection attempt has ended, either way
        self._connected = False
        self._main: asyncio.Task[None] | None = None
        self._presence_task: asyncio.Task[Service | None] | None = None
        self._problems: dict[str, str] = {}  # loop -> what is wrong with it now
        self._sync_up = False
        self._sync_heard = asyncio.Event()  # the first sync since connecting ended, either way

    # --- what the tools see --------------------------------------------------------------

    async def ready_service(self, timeout: float = READY_TIMEOUT_S) -> Service:
        """The connected Service, or NotReady with one line saying why not."""
        try:
            await asyncio.wait_for(self._settled.wait(), timeout=timeout)
        except asyncio.TimeoutError:
            raise NotReady(
                "ClaudeMatrix is still starting (installing or starting the homeserver); "
                "try again in a minute"
            ) from None
        if self.service is None or not self._connected:
            raise NotReady(self._problems.get("connect") or "ClaudeMatrix is not connected yet")
        return self.service

    def connected_service(self) -> Service | None:
        """The Service if it is connected now (no waiting)."""
        return self.service if self._connected else None

    @property
    def problem(self) -> str | None:
        """One line on what is wrong in the background right now, if anything."""
        return "; ".join(self._problems.values()) or None

    def sync_is_up(self) -> bool:
        return self._sync_up

    # --- the background ------------------------------------------------------------------

    def start(self) -> None:
        self._main = asyncio.create_task(self.run())

    async def run(self) -> None:
        """Connect, then keep sync and presence running until `stop`."""
        service = await self._supervised("connect", self._connect, until_done=True)
        if service is None:
            return
        self._connected = True
        self._sync_up = True  # until a sync fails: connecting just reached the homeserver
        self._presence_task = asyncio.create_task(self._supervised("presence", self._presence))
        await asyncio.gather(self._supervised("sync", self._sync), self._presence_task)

    async def shutdown(self, grace: float = _CLOSE_GRACE_S) -> None:
        """Stop: presence gets `grace` seconds to say "offline", the rest is cancelled."""
        self.stop.set()
        if self._presence_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._presence_task), timeout=grace)
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main
        if self.service is not None:
            await self.service.close()

    async def _connect(self) -> Service:
        if self.service is None:
            self.service = self._make_service()
        await self.service.connect()
        return self.service

    async def _sync(self) -> None:
        service = self._require()
        while not self.stop.is_set():
            if not service.try_own_sync():  # another process syncs this identity already
                self._set_sync_up(True)  # and keeps the store current for the hooks
                await _sleep_unless(self.stop, _LOCK_RETRY_S)
                continue
            with contextlib.suppress(LockHeld):
                await service.sync_forever(self.stop, on_health=self._sync_health)

    def _sync_health(self, up: bool) -> None:
        self._set_sync_up(up)
        self._sync_heard.set()
        if up:
            self._problems.pop("sync", None)
        else:
            self._problems["sync"] = (
                "ClaudeMatrix: new mail is not arriving: the homeserver is unreachable (retrying)"
            )

    def _set_sync_up(self, up: bool) -> None:
        if up != self._sync_up and self.service is not None:
            self.service.nudge_presence()  # presence says it now, not at its next wake
        self._sync_up = up

    async def _presence(self) -> None:
        # Mail first: after a restart, every identity's first sync brings what was missed;
        # presence (kept alive by a restart of each delayed event) can wait for it a moment.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._sync_heard.wait(), timeout=_PRESENCE_AFTER_SYNC_S)
        await self._require().heartbeat_forever(self.stop, online=self.sync_is_up)

    def _require(self) -> Service:
        assert self.service is not None, "connect runs first"
        return self.service

    async def _supervised(
        self, name: str, body: Callable[[], Awaitable[Service | None]], *, until_done: bool = False
    ) -> Service | None:
        """Run `body` until `stop` (or, with until_done, until it returns once); after a
        failure log it, report it to the tools and run it again after a growing pause."""
        delay = RETRY_START_S
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                result = await body()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # supervision: every failure is reported and retried
                if time.monotonic() - started >= _HEALTHY_RUN_S:
                    delay = RETRY_START_S
                self._failed(name, exc, delay)
                if name == "sync":
                    self._set_sync_up(False)
                    self._sync_heard.set()
                self._settled.set()
                await _sleep_unless(self.stop, delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self._problems.pop(name, None)
            self._settled.set()
            if until_done:
                return result
        return None

    def _failed(self, name: str, exc: Exception, retry_in: float) -> None:
        if isinstance(exc, ClaudeMatrixError):
            reason = str(exc)
            log(f"claudematrix: {name}: {reason}")
        else:  # a bug: keep the whole story for the log, one line for the tools
            reason = f"{type(exc).__name__}: {exc}"
            log(f"claudematrix: {name} failed:\n{traceback.format_exc().rstrip()}")
        what = {"connect": "not connected", "sync": "new mail is not arriving"}.get(
            name, f"{name} is failing"
        )
        self._problems[name] = f"ClaudeMatrix {what}: {reason} (retrying in {retry_in:.0f} s)"


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
