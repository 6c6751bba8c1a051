"""One sync step: a /sync response becomes one store transaction (events + token together).

Invites are acted on before the token is committed, so a crash never loses one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nio

from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.matrix.client import MatrixClient
from claudematrix.matrix.content import message_from_event
from claudematrix.store import RoomRecord, Store, SyncBatch
from claudematrix.types import Audience, Contact, Message

__all__ = ["Invite", "SyncOutcome", "sync_once", "BACKFILL_PAGES"]

# A bound on history fetched for one gap: 50 pages of 100 events.
BACKFILL_PAGES = 50


@dataclass(frozen=True)
class Invite:
    room_id: RoomID
    inviter: UserID
    is_direct: bool


# Called for each pending invite; returns the room record to keep, or None to leave it pending.
InviteHandler = Callable[[Invite], Awaitable[RoomRecord | None]]


@dataclass
class SyncOutcome:
    new_message_ids: list[int] = field(default_factory=list)
    next_batch: str | None = None
    joined_rooms: int = 0


def _invites(resp: nio.SyncResponse, me: UserID) -> list[Invite]:
    found: list[Invite] = []
    for room_id, info in resp.rooms.invite.items():
        inviter, direct = "", False
        for event in info.invite_state:
            source = getattr(event, "source", None) or {}
            if source.get("type") == "m.room.member" and source.get("state_key") == me:
                inviter = str(source.get("sender", ""))
                direct = bool((source.get("content") or {}).get("is_direct"))
        if inviter:
            found.append(Invite(RoomID(room_id), UserID(inviter), direct))
    return found


def _member_contact(event: dict[str, Any], me: UserID, now_ms: int) -> Contact | None:
    user = event.get("state_key")
    if not isinstance(user, str) or user == me:
        return None
    content = event.get("content") or {}
    if content.get("membership") != "join":
        return None
    return Contact(
        user_id=UserID(user),
        display_name=str(content.get("displayname") or ""),
        audience=Audience.MACHINE,
        last_seen_ts=int(event.get("origin_server_ts", now_ms)),
    )


async def _backfill(
    client: MatrixClient, store: Store, room_id: RoomID, token: str | None, seen: set[str]
) -> list[dict[str, Any]]:
    """Events missing before a limited timeline, oldest first, stopping at what we have."""
    gathered: list[dict[str, Any]] = []
    for _ in range(BACKFILL_PAGES):
        if token is None:
            break
        events, token = await client.messages_before(room_id, token)
        if not events:
            break
        reached_known = False
        for event in events:
            event_id = event.get("event_id", "")
            if event_id in seen or store.has_event(EventID(event_id)):
                reached_known = True
                continue
            seen.add(event_id)
            gathered.append(event)
        if reached_known:
            break
    gathered.reverse()
    return gathered


async def sync_once(
    client: MatrixClient,
    store: Store,
    *,
    timeout_ms: int,
    on_invite: InviteHandler,
    full_state: bool = False,
) -> SyncOutcome:
    me = client.user_id
    resp = await client.sync(store.next_batch(), timeout_ms, full_state=full_state)
    batch = SyncBatch(next_batch=resp.next_batch)

    invited = 0
    for invite in _invites(resp, me):
        record = await on_invite(invite)
        if record is not None:
            batch.rooms.append(record)
            invited += 1

    lobby = store.lobby_room()
    names = {c.user_id: c.display_name for c in store.contacts()}
    for room_id_str, info in resp.rooms.join.items():
        room_id = RoomID(room_id_str)
        record = store.room(room_id)
        if record is None:
            record = RoomRecord(room_id, "other")
            batch.rooms.append(record)
        timeline = [e.source for e in info.timeline.events if isinstance(e.source, dict)]
        state = [e.source for e in info.state if isinstance(getattr(e, "source", None), dict)]
        if info.timeline.limited or store.next_batch() is None:
            seen = {str(e.get("event_id", "")) for e in timeline}
            timeline = (
                await _backfill(client, store, room_id, info.timeline.prev_batch, seen) + timeline
            )
        for event in state + timeline:
            if event.get("type") != "m.room.member":
                continue
            content = event.get("content") or {}
            user = event.get("state_key")
            if isinstance(user, str) and content.get("displayname"):
                names[UserID(user)] = str(content["displayname"])
            if room_id == lobby:
                contact = _member_contact(event, me, resp_time(event))
                if contact is not None:
                    batch.contacts.append(contact)
                elif content.get("membership") in ("leave", "ban") and isinstance(user, str):
                    batch.lobby_left.append(UserID(user))
        for event in timeline:
            message = message_from_event(
                event,
                room_id,
                me,
                sender_name=names.get(UserID(str(event.get("sender", ""))), ""),
                peer=record.peer,
            )
            if message is not None:
                batch.messages.append(message)
                if message.sender != me and message.sender not in names:
                    batch.contacts.append(_stranger(message))

    for room_id_str in resp.rooms.leave:
        batch.rooms.append(RoomRecord(RoomID(room_id_str), _kind_of(store, room_id_str), None,
                                      joined=False))

    new_ids = store.commit_sync(batch)
    return SyncOutcome(new_ids, resp.next_batch, joined_rooms=invited)


def resp_time(event: dict[str, Any]) -> int:
    return int(event.get("origin_server_ts", 0))


def _kind_of(store: Store, room_id: str) -> str:
    record = store.room(RoomID(room_id))
    return record.kind if record else "other"


def _stranger(message: Message) -> Contact:
    """Someone who wrote to us without being in the lobby: reachable, but remote."""
    return Contact(
        user_id=message.sender,
        display_name=message.sender_name,
        audience=Audience.ANYONE,
        last_seen_ts=message.origin_ts,
    )
