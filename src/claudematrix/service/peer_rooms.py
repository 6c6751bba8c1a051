"""The rooms an identity shares with the sessions of paired machines, kept in line with its
mode, the pairings and the person's trust in whole machines.

- In public mode: each paired machine's public room, where the public sessions of different
  machines meet (this machine's own public room is the Directory's).
- In trusted or public mode, for each paired machine the person trusts as a whole: this
  machine's room for it (its sessions publish there for that machine's sessions) and, if
  that machine trusts this one back, its room for this one. A server ACL keeps each of these
  rooms to the two machines' homeservers (service/machine.py).

Every room here goes over federation, so joining is bounded in time, and one that fails (not
paired back, not trusted back, asleep) is tried again a minute later by whichever process of
this identity comes by. Rooms that are no longer wanted are withdrawn from and left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from claudematrix.config import Config
from claudematrix.errors import HomeserverError
from claudematrix.ids import RoomID
from claudematrix.matrix import MatrixClient
from claudematrix.service.machine import (
    PUBLIC_ROOM_ALIAS,
    trusted_machine_room,
    trusted_room_localpart,
)
from claudematrix.service.pairing import paired_machine_names, trusted_machine_servers
from claudematrix.store import Store
from claudematrix.types import Label

__all__ = ["PeerRooms", "TRUSTED_MACHINE", "QUICK_S"]

TRUSTED_MACHINE = "trusted-machine"  # the kind of room the store records these as
QUICK_S = 3.0  # what a session start waits for a paired machine at most
_JOIN_S = 15.0
_RETRY_S = 60.0
_SETTING = "peer_rooms"


@dataclass(frozen=True, order=True)
class Slot:
    kind: str  # "public" or TRUSTED_MACHINE
    server: str  # the paired machine's server name
    ours: bool  # this machine's room for it (else: its room)

    @property
    def key(self) -> str:
        return f"{self.kind}|{self.server}|{'ours' if self.ours else 'theirs'}"

    @classmethod
    def from_key(cls, key: str) -> Slot | None:
        kind, _, rest = key.partition("|")
        server, _, side = rest.rpartition("|")
        if kind not in ("public", TRUSTED_MACHINE) or side not in ("ours", "theirs"):
            return None
        return cls(kind, server, side == "ours")


class Host(Protocol):
    """What PeerRooms needs of the Directory it serves."""

    config: Config
    store: Store

    def mode(self) -> Label: ...

    def profile(self, mode: Label | None = None) -> dict[str, Any]: ...

    async def remember_joined(self, room: RoomID, kind: str) -> None: ...

    async def publish_in(
        self, room: RoomID, kind: str, profile: dict[str, Any], mode: Label
    ) -> None: ...

    async def withdraw(self, room: RoomID) -> None: ...

    def forget_room(self, room: RoomID, kind: str) -> None: ...


class PeerRooms:
    def __init__(self, host: Host, client: Callable[[], MatrixClient]) -> None:
        self.host = host
        self._client = client

    def rooms(self, kind: str) -> set[RoomID]:
        return {room for slot, room in self._joined().items() if slot.kind == kind}

    def _wanted(self, mode: Label) -> set[Slot]:
        peers = paired_machine_names(self.host.config)
        wanted: set[Slot] = set()
        if mode is Label.PUBLIC:
            wanted |= {Slot("public", server, False) for server in peers}
        if mode in (Label.TRUSTED, Label.PUBLIC):
            for server in trusted_machine_servers(self.host.config) & set(peers):
                wanted |= {
                    Slot(TRUSTED_MACHINE, server, True),
                    Slot(TRUSTED_MACHINE, server, False),
                }
        return wanted

    async def follow(self, mode: Label | None = None, timeout_s: float = _JOIN_S) -> None:
        """Join what is wanted and missing (when due), leave what is no longer wanted.
        `mode`: the one being put in force (default: the stored one)."""
        store = self.host.store
        mode = mode or self.host.mode()
        joined = self._joined()
        wanted = self._wanted(mode)
        if not wanted and not joined:
            return
        kept: dict[Slot, RoomID] = {}
        for slot, room in joined.items():
            if room not in store.rooms_of_kind(slot.kind):
                continue  # left with a change of mode
            if slot in wanted:
                kept[slot] = room
            else:
                await self._leave(room, slot.kind)
        now = time.time()
        for slot in sorted(wanted - set(kept)):
            tried = f"peer_room_try:{slot.key}"
            if now < float(store.setting(tried) or 0) + _RETRY_S:
                continue
            store.set_setting(tried, str(now))
            try:
                room = await asyncio.wait_for(self._join(slot), timeout_s)
            except (HomeserverError, TimeoutError):
                continue
            await self.host.remember_joined(room, slot.kind)
            kept[slot] = room
            await self.host.publish_in(room, slot.kind, self.host.profile(mode), mode)
        if kept != joined:
            value = {slot.key: room for slot, room in sorted(kept.items())}
            store.set_setting(_SETTING, json.dumps(value))

    async def _join(self, slot: Slot) -> RoomID:
        client = self._client()
        if slot.ours:
            return await client.join(await trusted_machine_room(self.host.config, slot.server))
        own_server = client.user_id.split(":", 1)[1]
        localpart = (
            PUBLIC_ROOM_ALIAS if slot.kind == "public" else trusted_room_localpart(own_server)
        )
        return await client.join(f"#{localpart}:{slot.server}")

    async def _leave(self, room: RoomID, kind: str) -> None:
        """Take back what I published there (if its homeservers still answer), and go."""
        with contextlib.suppress(HomeserverError, TimeoutError):
            await asyncio.wait_for(self.host.withdraw(room), QUICK_S)
        with contextlib.suppress(HomeserverError, TimeoutError):
            await asyncio.wait_for(self._client().leave(room), QUICK_S)
        self.host.forget_room(room, kind)

    def _joined(self) -> dict[Slot, RoomID]:
        try:
            found = json.loads(self.host.store.setting(_SETTING) or "{}")
        except ValueError:
            return {}
        joined: dict[Slot, RoomID] = {}
        for key, room in found.items() if isinstance(found, dict) else ():
            slot = Slot.from_key(str(key))
            if slot is not None and isinstance(room, str):
                joined[slot] = RoomID(room)
        return joined
