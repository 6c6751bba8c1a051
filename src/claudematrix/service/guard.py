"""Who is really in a room, asked of the homeserver just before anything goes into it.

A room's audience is that of its least-near member joined or invited there (an invited user
reads from the moment of the invitation), never the peer a DM was opened with or the kind of
room it was meant to be. Before measuring, whoever should not be there is removed where we
have the power: strangers in the lobby or a project room by the machine account, untrusted
people in my circle and third parties in a DM by me. Whoever cannot be removed counts.

A sealed room (store.RoomRecord.sealed: made by us with owner-only power levels) changes
members only by our own hand, so the members my sync recorded are the room's members and the
homeserver need not be asked again on every send.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from claudematrix.config import Config
from claudematrix.errors import HomeserverError
from claudematrix.ids import RoomID, UserID
from claudematrix.matrix import MatrixClient
from claudematrix.service.machine import local_users, machine_user, remove_strangers
from claudematrix.store import Store
from claudematrix.types import Audience

__all__ = ["Guard", "MACHINE_ROOMS", "farthest"]

MACHINE_ROOMS = ("lobby", "project")
_ORDER = list(Audience)


def farthest(audiences: Iterable[Audience]) -> Audience:
    """The least-near of some audiences (SELF if there are none)."""
    return max(audiences, key=_ORDER.index, default=Audience.SELF)


class Guard:
    def __init__(
        self,
        config: Config,
        store: Store,
        client: Callable[[], MatrixClient],
        audience_of: Callable[[UserID], Audience],
        refresh: Callable[[], Awaitable[None]],
    ) -> None:
        self.config = config
        self.store = store
        self._client = client
        self._audience_of = audience_of
        self._refresh = refresh

    async def audience(self, room: RoomID, kind: str) -> Audience:
        """The audience of `room` now, after removing who should not be there."""
        client = self._client()
        record = self.store.room(room)
        if record is not None and record.sealed:
            if kind in MACHINE_ROOMS:  # only the machine invites, and only its identities
                return Audience.PROJECT if kind == "project" else Audience.MACHINE
            mine = set(self.store.members(room)) - {client.user_id}
            return farthest(self._audience_of(u) for u in mine)
        members = set(await client.members(room)) - {client.user_id}
        if kind in MACHINE_ROOMS:
            # Membership is the proof of nearness here, so the test is who holds an
            # identity of this machine, not who the room says is near.
            strangers = self._strangers(members)
            if strangers:
                await remove_strangers(self.config, room)
                strangers = self._strangers(set(await client.members(room)))
            if strangers:
                return Audience.ANYONE
            return Audience.PROJECT if kind == "project" else Audience.MACHINE
        if kind == "public":
            return Audience.ANYONE
        audiences = await self._audiences(members)
        if kind == "circle":  # mine: only people I trust belong there
            outsiders = [u for u, a in audiences.items() if a is Audience.ANYONE]
            if outsiders:
                await self._kick(room, outsiders)
                members = set(await client.members(room)) - {client.user_id}
                audiences = await self._audiences(members)
        return farthest(audiences.values())

    async def dm_holds_only(self, room: RoomID, peer: UserID) -> bool:
        """Make a DM hold just me and `peer`: third parties are removed if I can. False if
        one stays, or the peer is gone (then the conversation needs a new room)."""
        client = self._client()
        record = self.store.room(room)
        if record is not None and record.sealed and peer in self.store.members(room):
            return True
        members = set(await client.members(room))
        if peer not in members:
            return False
        extra = members - {client.user_id, peer}
        if not extra:
            return True
        if not await self._kick(room, extra):
            return False
        return set(await client.members(room)) <= {client.user_id, peer}

    def _strangers(self, members: set[UserID]) -> set[UserID]:
        allowed = local_users(self.config)
        machine = machine_user(self.config)
        if machine is not None:
            allowed.add(machine)
        return {u for u in members if u not in allowed}

    async def _audiences(self, members: set[UserID]) -> dict[UserID, Audience]:
        found = {u: self._audience_of(u) for u in members}
        if any(a is Audience.ANYONE for a in found.values()):
            # Someone may have joined the lobby since my last sync: ask the homeserver.
            await self._refresh()
            found = {u: self._audience_of(u) for u in members}
        return found

    async def _kick(self, room: RoomID, users: Iterable[UserID]) -> bool:
        """Remove them; False if any could not be removed (I lack the power)."""
        client = self._client()
        ok = True
        for user in users:
            try:
                await client.kick(room, user)
            except HomeserverError:
                ok = False
        return ok
