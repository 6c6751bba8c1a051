"""The directory: who is out there, how near they are, what they work on, and what I publish.

Nearness (audience) comes only from proven memberships and the person's own trust list;
what I publish about myself goes only to rooms my mode's label reaches (policy.allows).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from claudematrix import policy
from claudematrix.config import Config
from claudematrix.errors import HomeserverError
from claudematrix.identity import Identity, display_name_for, neutral_name
from claudematrix.ids import EventID, RoomID, UserID, server_name
from claudematrix.local import layout
from claudematrix.local.places import machine_of, trusted_place
from claudematrix.local.untrusted import FIELD_MAX, NAME_MAX, STATUS_MAX, one_line
from claudematrix.matrix import MatrixClient
from claudematrix.matrix.content import PRESENCE_EVENT, PROFILE_EVENT
from claudematrix.matrix.rooms import create_invite_only_room
from claudematrix.paths import identity_dir
from claudematrix.service.guard import Guard
from claudematrix.service.machine import (
    is_local,
    join_machine_rooms,
    public_room,
)
from claudematrix.service.pairing import paired_machine_names, trusted_machine_servers
from claudematrix.service.peer_rooms import QUICK_S as PEER_QUICK_S
from claudematrix.service.peer_rooms import TRUSTED_MACHINE, PeerRooms
from claudematrix.service.presence import Presence
from claudematrix.session_env import SessionEnv
from claudematrix.store import Membership, Person, RoomRecord, Store, SyncBatch
from claudematrix.types import Audience, Contact, Label, Where
from claudematrix.workspace import Workspace

__all__ = ["Directory", "Timing", "ROOM_AUDIENCE", "remember_room"]

# The audience a room of each kind reaches: what may be published there.
ROOM_AUDIENCE: dict[str, Audience] = {
    "project": Audience.PROJECT,
    "lobby": Audience.MACHINE,
    "circle": Audience.TRUSTED,
    TRUSTED_MACHINE: Audience.TRUSTED,
    "public": Audience.ANYONE,
}
# A presence change wakes every member's sync: none in the project room, whose members all
# share the lobby with me anyway.
_PRESENCE_KINDS = ("lobby", "circle", TRUSTED_MACHINE, "public")
_NEAREST_FIRST = list(Audience)


@dataclass(frozen=True)
class Timing:
    heartbeat_s: float
    ttl_ms: int
    hide_after_s: float

    @classmethod
    def from_env(cls, env: SessionEnv) -> Timing:
        heartbeat = float(env.get("CLAUDEMATRIX_HEARTBEAT_S") or "120")
        days = float(env.get("CLAUDEMATRIX_HIDE_AFTER_DAYS") or "7")
        return cls(heartbeat, int(heartbeat * 2500), days * 86400)


async def remember_room(
    store: Store, client: MatrixClient, room: RoomID, kind: str, *, sealed: bool = False
) -> None:
    """Record a room just joined, with its members as the homeserver says now."""
    members = await client.joined_members(room)
    store.commit_sync(
        SyncBatch(
            next_batch=None,
            rooms=[RoomRecord(room, kind, sealed=sealed)],
            memberships=[Membership(room, u, n, True) for u, n in members.items()],
            # Being a member says nothing about when they were last active.
            people=[Person(u, n, None) for u, n in members.items()],
        )
    )


class Directory:
    def __init__(
        self,
        config: Config,
        identity: Identity,
        workspace: Workspace,
        env: SessionEnv,
        store: Store,
        client: Callable[[], MatrixClient],
        me: Callable[[], UserID | None],
        owner: Callable[[], UserID | None],
        hidden: Callable[[], set[UserID | None]],
        progress: Callable[[str], None],
    ) -> None:
        self.config = config
        self.identity = identity
        self.workspace = workspace
        self.env = env
        self.store = store
        self._client = client
        self._me = me
        self._owner = owner
        self._hidden = hidden
        self._progress = progress
        self.guard = Guard(config, store, client, self.proven_audience_of, self.refresh_memberships)
        self.timing = Timing.from_env(env)
        self._task_file = identity_dir(identity.slug) / layout.TASK_FILE
        self._task_seen = 0
        self.long_lived = False  # set by the daemon (or MCP server), which keeps presence
        self.online_now = False  # what the long-lived presence loop says right now
        self.keeps_presence: Callable[[], bool] = lambda: True  # the Service says otherwise
        self.presence = Presence(client, store, lambda: self.timing.ttl_ms, progress)
        self.peer_rooms = PeerRooms(self, client)

    # --- nearness ----------------------------------------------------------------------

    def mode(self) -> Label:
        return Label.parse(self.store.setting("mode") or Label.PRIVATE.value)

    def audience_of(self, user: UserID) -> Audience:
        """Where `user` stands, as the store knows it (what contacts and headers show); a
        session of a machine the person trusts as a whole is a trusted remote contact."""
        if user in (self._me(), self._owner()):
            return Audience.SELF
        place = self.store.where(user)
        return Audience(trusted_place(place, user, trusted_machine_servers(self.config)))

    def proven_audience_of(self, user: UserID) -> Audience:
        """Where `user` stands, for deciding what may reach them. Membership of the lobby or
        a project room proves nearness only for an identity of this machine: anyone else
        found there was let in against the rules (and is removed when next met), and is as
        far as my trust says."""
        audience = self.audience_of(user)
        if audience in (Audience.PROJECT, Audience.MACHINE) and not is_local(self.config, user):
            trusted = user in self.store.trusted() or server_name(user) in (
                trusted_machine_servers(self.config)
            )
            return Audience.TRUSTED if trusted else Audience.ANYONE
        return audience

    def where_of(self, user: UserID) -> Where:
        """Where `user` stands, with the paired machine they are on if it is another one."""
        audience = self.audience_of(user)
        names = paired_machine_names(self.config)
        return Where(audience, machine_of(audience.value, user, names))

    def contacts(self, *, include_hidden: bool = False) -> list[Contact]:
        """Everyone I can reach: online first, then nearest, then most recently active."""
        now = int(time.time() * 1000)
        hidden = self._hidden() | self.store.blocked()
        profiles = self.store.profiles()
        presence = self.store.presence()
        dms = self.store.dm_rooms()
        found: list[Contact] = []
        people = self.store.people()
        owner = self._owner()
        if owner:
            people.setdefault(owner, Person(owner))
        reachable = self._reachable() | ({owner} if owner else set())
        for user, person in people.items():
            if user in hidden or user not in reachable:
                continue
            profile = profiles[user].content if user in profiles else {}
            seen = presence.get(user)
            last_seen = max(seen.last_active_ts if seen else 0, person.last_seen_ts or 0) or None
            online = bool(seen and seen.is_online(now))
            if not (include_hidden or online or last_seen is None) and (
                now - last_seen > self.timing.hide_after_s * 1000
            ):
                continue
            where = self.where_of(user)
            found.append(
                Contact(
                    user_id=user,
                    display_name=str(profile.get("display_name") or person.display_name),
                    audience=where.audience,
                    last_seen_ts=last_seen,
                    status=str(profile.get("status") or ""),
                    dm_room=dms.get(user),
                    short_name=str(profile.get("short_name") or ""),
                    project=str(profile.get("project") or ""),
                    branch=str(profile.get("branch") or ""),
                    host=str(profile.get("host") or ""),
                    task=str(profile.get("task") or ""),
                    mode=str(profile.get("mode") or ""),
                    online=online,
                    machine=where.machine,
                )
            )
        found.sort(
            key=lambda c: (
                not c.online,
                _NEAREST_FIRST.index(c.audience),
                -(c.last_seen_ts or 0),
            )
        )
        return found

    def _reachable(self) -> set[UserID]:
        """People in a directory room with me, DM partners, and those I trust."""
        found = set(self.store.dm_rooms()) | self.store.trusted()
        for kind in ROOM_AUDIENCE:
            for room in self.store.rooms_of_kind(kind):
                found |= set(self.store.members(room))
        return found

    # --- rooms I belong to because of where I work and my mode ---------------------------

    async def join_rooms(self, mode: Label | None = None) -> None:
        """Lobby and project room (unless secret), public room (if public)."""
        client = self._client()
        mode = mode or self.mode()
        if mode is Label.SECRET:
            return
        missing = [k for k in ("lobby", "project") if not self.store.rooms_of_kind(k)]
        if missing:
            joined = await join_machine_rooms(self.config, client, self.workspace, missing)
            # The machine made or hardened them before inviting me: only it brings anyone in.
            await asyncio.gather(
                *(self._remember_room(room, kind, sealed=True) for kind, room in joined)
            )
        own_public = set(self.store.rooms_of_kind("public")) - self.peer_rooms.rooms("public")
        if mode is Label.PUBLIC and not own_public:
            await self._join_public_room()
        await self.peer_rooms.follow(mode, timeout_s=PEER_QUICK_S)

    async def _remember_room(self, room: RoomID, kind: str, *, sealed: bool = False) -> None:
        await remember_room(self.store, self._client(), room, kind, sealed=sealed)

    async def remember_joined(self, room: RoomID, kind: str) -> None:
        await self._remember_room(room, kind)

    async def refresh_memberships(self) -> None:
        """Re-read members of the lobby and project room: the authority on nearness."""
        for kind in ("lobby", "project"):
            for room in self.store.rooms_of_kind(kind):
                await self._remember_room(room, kind)

    async def _join_public_room(self) -> None:
        client = self._client()
        room = await public_room(self.config)
        try:
            room = await client.join(room)
        except HomeserverError:  # emptied, closed or banned me: the machine keeps another
            room = await client.join(await public_room(self.config, avoid=room))
        await self._remember_room(room, "public")

    async def circle(self) -> RoomID:
        """My trusted circle: where trusted remote contacts see my profile."""
        existing = self.store.rooms_of_kind("circle")
        if existing:
            return existing[0]
        room = await create_invite_only_room(
            self._client(),
            None,
            f"Trusted circle of {self.identity.short}",
            "People this session trusts. Only its owner invites.",
            encrypted=True,
        )
        await self._remember_room(room, "circle", sealed=True)
        return room

    # --- what I publish -----------------------------------------------------------------

    def _task(self) -> str:
        try:
            data = json.loads(self._task_file.read_text())
        except (OSError, ValueError):
            return ""
        return str(data.get("task") or "") if isinstance(data, dict) else ""

    def task_changed(self) -> bool:
        try:
            stamp = self._task_file.stat().st_mtime_ns
        except OSError:
            return False
        changed = stamp != self._task_seen
        self._task_seen = stamp
        return changed

    def rich_name(self) -> str:
        return one_line(display_name_for(self.identity, self.workspace), NAME_MAX)

    def short_name(self) -> str:
        explicit = self.env.get("CLAUDEMATRIX_SESSION_NAME").strip()
        if explicit:
            return explicit
        if self.identity.is_owner:
            return "owner"
        return f"{self.workspace.project}-{self.identity.short}"

    def profile(self, mode: Label | None = None) -> dict[str, Any]:
        """What I publish about myself; every field one clean line (a directory name or a
        task line could hold anything)."""
        mode = mode or self.mode()
        return {
            "v": 1,
            "display_name": self.rich_name(),
            "short_name": one_line(self.short_name(), NAME_MAX),
            "project": one_line(self.workspace.project, FIELD_MAX),
            "branch": one_line(self.workspace.branch, FIELD_MAX),
            "host": one_line(self.workspace.host, FIELD_MAX),
            "mode": mode.value,
            "label": mode.value,
            "status": one_line(self.store.setting("status") or "", STATUS_MAX),
            "task": one_line(self._task(), FIELD_MAX),
        }

    async def publish(self, mode: Label | None = None) -> None:
        """Profile and presence into every room my mode reaches; withdrawn from the rest.

        Only a long-lived process (the session's MCP server) says it is online; a CLI run
        just leaves a fresh last-active time. Rooms are written concurrently.
        """
        client = self._client()
        mode = mode or self.mode()
        profile = self.profile(mode)
        jobs = [
            client.set_displayname(
                self.rich_name() if mode is Label.PUBLIC else neutral_name(self.identity)
            )
        ]
        for kind, audience in ROOM_AUDIENCE.items():
            for room in self.store.rooms_of_kind(kind):
                if policy.allows(mode, audience):
                    jobs.append(self.publish_in(room, kind, profile, mode))
                else:
                    jobs.append(self.withdraw(room))
        await asyncio.gather(*jobs)

    async def _reaches(self, room: RoomID, kind: str, mode: Label) -> bool:
        """May what my mode labels go into `room`, as its members are now?"""
        reach = await self.guard.audience(room, kind)
        if policy.allows(mode, reach):
            return True
        self._progress(
            f"claudematrix: not publishing into a {kind} room that someone {reach.value} "
            "was let into and cannot be removed from"
        )
        return False

    async def publish_in(
        self, room: RoomID, kind: str, profile: dict[str, Any], mode: Label
    ) -> None:
        if not await self._reaches(room, kind, mode):
            await self.withdraw(room)
            return
        client = self._client()
        event = await client.put_state(room, PROFILE_EVENT, profile, client.user_id)
        self._remember_published(room, event)
        self._remember_published(room, await client.set_room_displayname(room, self.rich_name()))
        if kind in _PRESENCE_KINDS and self.keeps_presence():
            # A long-lived process holds presence; a CLI run leaves a fresh last-active time,
            # unless the identity's own long-lived process (which syncs it) holds it.
            await self.presence.say([room], self.long_lived and self.online_now)

    def presence_rooms(self) -> list[tuple[RoomID, str]]:
        """The rooms my presence goes into, as my mode allows (from the store)."""
        mode = self.mode()
        return [
            (room, kind)
            for kind in _PRESENCE_KINDS
            if policy.allows(mode, ROOM_AUDIENCE[kind])
            for room in self.store.rooms_of_kind(kind)
        ]

    async def _presence_rooms_reached(self) -> list[RoomID]:
        mode = self.mode()
        rooms = self.presence_rooms()
        reached = await asyncio.gather(*(self._reaches(room, kind, mode) for room, kind in rooms))
        return [room for (room, _kind), ok in zip(rooms, reached, strict=True) if ok]

    async def say_presence(self, *, online: bool) -> None:
        """Every presence room says `online` (a room event only where that is news)."""
        self.online_now = online
        await self.presence.say(await self._presence_rooms_reached(), online)

    async def refresh_presence(self) -> None:
        """Keep presence alive: restart the delayed "offline"s, or beat where there are none."""
        await self.presence.refresh(await self._presence_rooms_reached(), self.online_now)

    def _remember_published(self, room: RoomID, event: EventID) -> None:
        key = f"published:{room}"
        events = json.loads(self.store.setting(key) or "[]")
        events.append(event)
        self.store.set_setting(key, json.dumps(events))

    async def withdraw(self, room: RoomID) -> None:
        """Take back what I published in a room: redact it, then leave empty state."""
        client = self._client()
        await self.presence.forget(room)  # no delayed "offline" may fire there later
        # Empty state first: after a redaction Synapse would treat `{}` as no change, and
        # other members would never hear that the profile is gone.
        await client.put_state(room, PROFILE_EVENT, {}, client.user_id)
        await client.put_state(room, PRESENCE_EVENT, {}, client.user_id)
        await client.set_room_displayname(room, neutral_name(self.identity))
        key = f"published:{room}"
        for event in json.loads(self.store.setting(key) or "[]"):
            await client.redact(room, EventID(event))  # and none left in the history
        self.store.set_setting(key, "[]")

    async def apply_mode(self, mode: Label) -> None:
        """Bring rooms and publications in line with `mode` (stored by the caller only once
        this has succeeded)."""
        client = self._client()
        for kind, audience in ROOM_AUDIENCE.items():
            if policy.allows(mode, audience):
                continue
            for room in self.store.rooms_of_kind(kind):
                await self.withdraw(room)
                if kind != "circle":  # it stays: it is my own
                    await client.leave(room)
                    self.forget_room(room, kind)
        await self.join_rooms(mode)
        await self.publish(mode)

    def forget_room(self, room: RoomID, kind: str) -> None:
        self.store.save_room(RoomRecord(room, kind, joined=False))
