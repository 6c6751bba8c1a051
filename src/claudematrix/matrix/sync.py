"""One sync step: a /sync response becomes one store transaction (events + token together).

Invites are acted on before the token is committed, so a crash never loses one. Mail from a
sender the caller does not welcome (outside my audience, whatever room it arrives in) is held
unopened and becomes a message request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.matrix.client import MatrixClient
from claudematrix.matrix.content import (
    PRESENCE_EVENT,
    PROFILE_EVENT,
    message_from_event,
    unreadable_message,
)
from claudematrix.matrix.crypto import ENCRYPTED_EVENT, ENCRYPTION_STATE, Crypto, Decrypted
from claudematrix.store import (
    Membership,
    Person,
    Presence,
    Profile,
    Request,
    RoomRecord,
    Store,
    SyncBatch,
)
from claudematrix.types import Message

__all__ = ["Invite", "SyncOutcome", "WelcomeCheck", "sync_once", "BACKFILL_PAGES"]

# Rooms that carry profiles and presence, never mail: what is posted there is not read as
# mail (the public room, and the rooms shared with a machine trusted as a whole).
_DIRECTORY_ONLY = ("public", "trusted-machine")

# A bound on history fetched for one gap: 50 pages of 100 events.
BACKFILL_PAGES = 50


@dataclass(frozen=True)
class Invite:
    room_id: RoomID
    inviter: UserID
    is_direct: bool


# Called for each pending invite; returns the room record to keep, or None to leave it pending.
InviteHandler = Callable[[Invite], Awaitable[RoomRecord | None]]
# Given the senders of new mail, returns those whose mail goes to the inbox.
WelcomeCheck = Callable[[set[UserID]], Awaitable[set[UserID]]]
# Is this device of this user vouched for without emoji (this machine's own session)?
DeviceCheck = Callable[[UserID, str], bool]


@dataclass
class SyncOutcome:
    new_message_ids: list[int] = field(default_factory=list)
    next_batch: str | None = None
    joined_rooms: int = 0
    held: int = 0


def _events(section: Any) -> list[dict[str, Any]]:
    events = section.get("events") if isinstance(section, dict) else None
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


def _rooms(resp: dict[str, Any], kind: str) -> dict[str, Any]:
    rooms = resp.get("rooms")
    section = rooms.get(kind) if isinstance(rooms, dict) else None
    return section if isinstance(section, dict) else {}


def _invites(resp: dict[str, Any], me: UserID) -> list[Invite]:
    found: list[Invite] = []
    for room_id, info in _rooms(resp, "invite").items():
        inviter, direct = "", False
        for event in _events(info.get("invite_state") if isinstance(info, dict) else None):
            if event.get("type") == "m.room.member" and event.get("state_key") == me:
                inviter = str(event.get("sender", ""))
                direct = bool((event.get("content") or {}).get("is_direct"))
        if inviter:
            found.append(Invite(RoomID(room_id), UserID(inviter), direct))
    return found


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
    welcome: WelcomeCheck,
    vouched: DeviceCheck = lambda _user, _device: False,
    full_state: bool = False,
) -> SyncOutcome:
    me = client.user_id
    resp = await client.sync(store.next_batch(), timeout_ms, full_state=full_state)
    next_batch = resp.get("next_batch")
    batch = SyncBatch(next_batch=str(next_batch) if next_batch else None)
    crypto = client.crypto
    keys_came = crypto.receive(resp) if crypto is not None else False

    invited = 0
    for invite in _invites(resp, me):
        record = await on_invite(invite)
        if record is not None:
            batch.rooms.append(record)
            invited += 1

    blocked = store.blocked()
    # Names this response brings; the store's are looked up for the senders alone, below.
    names: dict[UserID, str] = {}
    published: dict[UserID, str] = {}
    with_mail: list[tuple[RoomID, RoomRecord, list[dict[str, Any]]]] = []
    for room_id_str, info in _rooms(resp, "join").items():
        room_id = RoomID(room_id_str)
        record = store.room(room_id)
        if record is None:
            record = RoomRecord(room_id, "other")
            batch.rooms.append(record)
        section = info.get("timeline") if isinstance(info, dict) else None
        timeline = _events(section)
        state = _events(info.get("state") if isinstance(info, dict) else None)
        limited = isinstance(section, dict) and bool(section.get("limited"))
        if limited or store.next_batch() is None:
            prev = section.get("prev_batch") if isinstance(section, dict) else None
            seen = {str(e.get("event_id", "")) for e in timeline}
            timeline = await _backfill(client, store, room_id, prev, seen) + timeline
        for event in state + timeline:
            _directory_event(event, room_id, batch, names, published)
            if event.get("type") == ENCRYPTION_STATE and event.get("state_key") == "":
                client.note_encrypted(room_id)
            elif event.get("type") == "m.room.member":
                client.membership_changed(room_id)
        if record.kind not in _DIRECTORY_ONLY:
            with_mail.append((room_id, record, timeline))

    # Messages after every room's directory events: a sender's profile may come in this
    # same response, in a room listed after the one their message is in.
    found: list[tuple[RoomRecord, Message]] = []
    unreadable: dict[EventID, dict[str, Any]] = {}
    senders = {UserID(str(e.get("sender", ""))) for _r, _k, tl in with_mail for e in tl}
    if crypto is not None:
        sealed: dict[str, set[str]] = {}
        for _, _, tl in with_mail:
            for event in tl:
                if _encrypted(event) and event.get("sender") != me:
                    keys = sealed.setdefault(str(event.get("sender")), set())
                    content = event.get("content")
                    key = content.get("sender_key") if isinstance(content, dict) else None
                    if isinstance(key, str) and key:
                        keys.add(key)
        await crypto.know_devices(sealed)
    stored_published, stored_names = store.display_names(senders - blocked)
    for room_id, record, timeline in with_mail:
        for event in timeline:
            sender = UserID(str(event.get("sender", "")))
            if sender in blocked:
                continue
            name = (
                published.get(sender)
                or stored_published.get(sender)
                or names.get(sender)
                or stored_names.get(sender, "")
            )
            if event.get("type") == ENCRYPTED_EVENT:
                plain = crypto.decrypt(event, room_id) if crypto is not None else None
                if plain is None:
                    message = unreadable_message(
                        event, room_id, me, sender_name=name, peer=record.peer
                    )
                    if message is not None:
                        batch.undecrypted.append(
                            (message.event_id, room_id, json.dumps(event, separators=(",", ":")))
                        )
                        unreadable[message.event_id] = event
                else:
                    message = _from_decrypted(
                        plain, room_id, me, vouched, sender_name=name, peer=record.peer
                    )
            else:
                message = message_from_event(event, room_id, me, sender_name=name, peer=record.peer)
                if message is not None and message.sender != me and client.known_encrypted(room_id):
                    # Plaintext where everything is encrypted: no device vouches for it, and
                    # a stolen login must not get round the mark by leaving encryption out.
                    message = replace(message, unverified_device=True)
            if message is not None:
                found.append((record, message))
    others = {m.sender for _, m in found if m.sender != me}
    welcomed = await welcome(others) if others else set()
    for record, message in found:
        if message.sender != me and message.sender not in welcomed:
            batch.held.append(message)
            batch.requests.append(
                Request(
                    message.room_id,
                    message.sender,
                    message.sender_name,
                    message.origin_ts,
                    is_direct=record.kind == "dm",
                    kind="message",
                )
            )
            continue
        batch.messages.append(message)
        if message.event_id in unreadable and crypto is not None:
            # Welcomed senders only: a stranger's mail must not make us send anything.
            crypto.ask_for_key(unreadable[message.event_id], message.room_id)
        if message.sender != me:
            batch.people.append(Person(message.sender, message.sender_name, message.origin_ts))

    for room_id_str in _rooms(resp, "leave"):
        batch.rooms.append(
            RoomRecord(RoomID(room_id_str), _kind_of(store, room_id_str), None, joined=False)
        )

    new_ids = store.commit_sync(batch)
    if crypto is not None:
        if keys_came:
            new_ids += store.decrypted_late(_decrypt_late(crypto, store, me, vouched))
        await crypto.maintain()
    return SyncOutcome(new_ids, batch.next_batch, joined_rooms=invited, held=len(batch.held))


def _decrypt_late(crypto: Crypto, store: Store, me: UserID, vouched: DeviceCheck) -> list[Message]:
    """Kept encrypted mail that the keys just received make readable."""
    readable: list[Message] = []
    for _event_id, room_id, raw in store.undecrypted():
        plain = crypto.decrypt(json.loads(raw), room_id)
        message = _from_decrypted(plain, room_id, me, vouched) if plain is not None else None
        if message is not None:
            readable.append(message)
    return readable


def _from_decrypted(
    plain: Decrypted,
    room_id: RoomID,
    me: UserID,
    vouched: DeviceCheck,
    *,
    sender_name: str = "",
    peer: UserID | None = None,
) -> Message | None:
    """A decrypted message, marked if its device is neither verified by emoji nor this
    machine's own session's."""
    message = message_from_event(plain.event, room_id, me, sender_name=sender_name, peer=peer)
    if message is None or message.sender == me:
        return message
    trusted = plain.verified or vouched(message.sender, plain.device_id)
    return message if trusted else replace(message, unverified_device=True)


def _encrypted(event: dict[str, Any]) -> bool:
    return event.get("type") == ENCRYPTED_EVENT


def _kind_of(store: Store, room_id: str) -> str:
    record = store.room(RoomID(room_id))
    return record.kind if record else "other"


def _directory_event(
    event: dict[str, Any],
    room_id: RoomID,
    batch: SyncBatch,
    names: dict[UserID, str],
    published: dict[UserID, str],
) -> None:
    """Memberships and self-published profiles; a profile about someone else is ignored."""
    kind = event.get("type")
    user = event.get("state_key")
    if not isinstance(user, str):
        return
    content = event.get("content") or {}
    ts = int(event.get("origin_server_ts", 0))
    if kind == "m.room.member":
        joined = content.get("membership") == "join"
        name = str(content.get("displayname") or "")
        if joined and name:
            names[UserID(user)] = name
        batch.memberships.append(Membership(room_id, UserID(user), name, joined))
        if joined:
            batch.people.append(Person(UserID(user), name, ts))
    elif event.get("sender") != user or not isinstance(content, dict):
        return  # nobody may speak for someone else
    elif kind == PROFILE_EVENT:
        batch.profiles.append(Profile(UserID(user), room_id, dict(content), ts))
        if content.get("display_name"):
            published[UserID(user)] = str(content["display_name"])
    elif kind == PRESENCE_EVENT and not content:  # withdrawn: gone, as of now
        batch.presence.append(Presence(UserID(user), ts, 0, False))
    elif kind == PRESENCE_EVENT:
        try:
            batch.presence.append(
                Presence(
                    UserID(user),
                    int(content.get("last_active", ts)),
                    int(content.get("ttl_ms", 0)),
                    bool(content.get("online", False)),
                )
            )
        except (TypeError, ValueError):
            return
