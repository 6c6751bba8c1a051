"""Saying "online" without traffic: presence held by the homeserver.

Where the homeserver has delayed events (MSC4140; the embedded Synapse does), "online" is
published once per room, together with a delayed "offline" copy that the homeserver itself
publishes if we stop restarting it. Restarting it is a plain request: no room event, nobody's
sync wakes. A session that crashes (or a daemon killed with everything in it) turns "offline"
within its TTL, with no one left to say so. A room event is made only when something changes.

Where the homeserver has no delayed events (an external one may not), presence falls back to
heartbeats: the state again every heartbeat, "online" until its TTL runs out.

The delay ids are kept in the store. A run that ended without saying "offline" (killed, with
its daemon) left its "online" standing and its delayed "offline"s pending: the next run takes
them over by restarting them, again without a room event. Saying "online" afresh instead would
wake the sync of every member of every room at once, just when the restarted daemon needs the
homeserver to catch up. The ones that fired meanwhile are said again.

"online" held this way carries a long expiry of its own (HELD_TTL_MS) in case the homeserver
loses its delayed events; it is said again well before that expiry runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from claudematrix.errors import (
    Forbidden,
    HomeserverError,
    HomeserverUnavailable,
    NotFound,
    UnknownToken,
)
from claudematrix.ids import RoomID
from claudematrix.matrix import MatrixClient
from claudematrix.matrix.content import PRESENCE_EVENT
from claudematrix.store import Store

__all__ = ["Presence", "HELD_TTL_MS"]

# "online" held by a delayed "offline" needs no expiry of its own; this bound only covers a
# homeserver that loses its delayed events.
HELD_TTL_MS = 24 * 3600 * 1000
_RESAY_AFTER_MS = HELD_TTL_MS // 2
_DELAYS_KEY = "presence_delays"


def _now_ms() -> int:
    return int(time.time() * 1000)


class Presence:
    def __init__(
        self,
        client: Callable[[], MatrixClient],
        store: Store,
        ttl_ms: Callable[[], int],
        progress: Callable[[str], None],
    ) -> None:
        self._client = client
        self._store = store
        self._ttl_ms = ttl_ms
        self._progress = progress
        self.held: bool | None = None  # delayed events work here (None: not tried yet)
        self._said: dict[RoomID, bool] = {}  # what each room last heard from this run
        # What the store names: this run's delayed events, and any an earlier run left.
        self._delays: dict[RoomID, str] = {}
        self._online_since: dict[RoomID, int] = {}  # when each held "online" was said (ms)
        self._load()
        self._lock = asyncio.Lock()

    def content(self, *, online: bool, held: bool = False) -> dict[str, Any]:
        return {
            "v": 1,
            "last_active": int(time.time() * 1000),
            "ttl_ms": HELD_TTL_MS if held else self._ttl_ms(),
            "online": online,
        }

    def _offline_later(self) -> dict[str, Any]:
        # No last_active: readers take the time the homeserver published it.
        return {"v": 1, "ttl_ms": self._ttl_ms(), "online": False}

    async def resume(self) -> None:
        """Take over the "online" an earlier run left standing (it was killed): restart its
        delayed "offline"s, which makes them this run's, with no room event. A room whose
        delayed event fired or is gone hears "online" again with the next `say`."""
        async with self._lock:
            for room, delay_id in list(self._delays.items()):
                if room in self._said:
                    continue
                try:
                    await self._client().delayed_event(delay_id, "restart")
                except NotFound:
                    self._drop(room)
                    continue
                except HomeserverError:  # kept: the next refresh restarts it or finds it gone
                    continue
                self.held = True
                self._said[room] = True
            self._save()

    async def say(self, rooms: list[RoomID], online: bool) -> None:
        """Make each room say `online`, with a room event only where that is news."""
        async with self._lock:
            await asyncio.gather(*(self._say_in(room, online) for room in rooms))
            self._save()

    async def refresh(self, rooms: list[RoomID], online: bool) -> None:
        """Periodically: restart the delayed "offline"s (no room event); without delayed
        events, the heartbeat itself. A room that lost its delayed event is told again."""
        async with self._lock:
            if self.held is False:
                for room in rooms:
                    self._said.pop(room, None)
            else:
                await asyncio.gather(*(self._restart(room) for room in rooms if online))
                self._resay_the_aging(rooms)
            await asyncio.gather(*(self._say_in(room, online) for room in rooms))
            self._save()

    def _resay_the_aging(self, rooms: list[RoomID]) -> None:
        """A held "online" is said again before its own expiry could make it read offline."""
        due = _now_ms() - _RESAY_AFTER_MS
        for room in rooms:
            if self._said.get(room) is True and self._online_since.get(room, 0) <= due:
                self._said.pop(room, None)

    async def forget(self, room: RoomID) -> None:
        """Before a room is withdrawn from or left: nothing of ours may fire in it later."""
        async with self._lock:
            self._said.pop(room, None)
            await self._cancel(room)
            self._save()

    # --- one room --------------------------------------------------------------------------

    async def _say_in(self, room: RoomID, online: bool) -> None:
        if self._said.get(room) == online:
            return
        client = self._client()
        if online:
            held = await self._schedule(room)
            await client.put_state(
                room, PRESENCE_EVENT, self.content(online=True, held=held), client.user_id
            )
            self._online_since[room] = _now_ms()
        else:
            await self._cancel(room)
            await client.put_state(room, PRESENCE_EVENT, self.content(online=False), client.user_id)
        self._said[room] = online

    async def _schedule(self, room: RoomID) -> bool:
        """A delayed "offline" for `room`; False where the homeserver has none to give."""
        if self.held is False:
            return False
        if room in self._delays:
            return True
        client = self._client()
        try:
            self._delays[room] = await client.put_state_later(
                room, PRESENCE_EVENT, self._offline_later(), client.user_id, self._ttl_ms()
            )
        except (HomeserverUnavailable, UnknownToken, Forbidden, NotFound):
            raise
        except HomeserverError as exc:
            self.held = False
            self._progress(
                f"claudematrix: presence by heartbeat: the homeserver has no delayed events ({exc})"
            )
            return False
        self.held = True
        return True

    async def _restart(self, room: RoomID) -> None:
        delay_id = self._delays.get(room)
        if delay_id is None:
            self._said.pop(room, None)  # never held here: tell it afresh
            return
        try:
            await self._client().delayed_event(delay_id, "restart")
        except NotFound:  # it fired (we were too late) or the homeserver lost it
            self._drop(room)

    async def _cancel(self, room: RoomID) -> None:
        delay_id = self._delays.get(room)
        if delay_id is None:
            return
        with contextlib.suppress(NotFound):  # (it fired already)
            await self._client().delayed_event(delay_id, "cancel")
        self._drop(room)  # only once cancelled: else it is tried again

    def _drop(self, room: RoomID) -> None:
        self._delays.pop(room, None)
        self._online_since.pop(room, None)
        self._said.pop(room, None)

    def _load(self) -> None:
        """An entry written before the time was kept counts as due to be said again."""
        for room, entry in json.loads(self._store.setting(_DELAYS_KEY) or "{}").items():
            delay_id, since = (entry, 0) if isinstance(entry, str) else entry
            self._delays[RoomID(room)] = str(delay_id)
            self._online_since[RoomID(room)] = int(since)

    def _save(self) -> None:
        entries = {room: [d, self._online_since.get(room, 0)] for room, d in self._delays.items()}
        self._store.set_setting(_DELAYS_KEY, json.dumps(entries, sort_keys=True))
