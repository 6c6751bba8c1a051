"""Rooms ClaudeMatrix creates, made so that they stay ours (docs/security.md, defence 1).

Synapse's presets let any member invite (`invite: 0`), and `trusted_private_chat` makes the
invitee a second creator with unlimited power in room version 12. Every room we create is
therefore a `private_chat` or `public_chat` whose power levels give invite, kick, ban, redact,
every state change and power itself to the creator alone; members may only talk and publish
their own directory entries (state keyed by their own user ID, which the homeserver enforces).
History is visible from the invitation on, so whoever is let in later never reads what was
said before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from claudematrix.ids import RoomID, UserID
from claudematrix.matrix.client import MatrixClient
from claudematrix.matrix.content import MEMBER_STATE
from claudematrix.matrix.crypto import crypto_available

__all__ = [
    "OWNER_ONLY",
    "power_levels",
    "create_dm",
    "create_invite_only_room",
    "create_public_room",
    "create_machine_pair_room",
    "harden",
    "HISTORY_FROM_INVITE",
]

OWNER = 100
# Everything but talking (and members' own directory entries) needs the owner.
OWNER_ONLY: dict[str, Any] = {
    "invite": OWNER,
    "kick": OWNER,
    "ban": OWNER,
    "redact": OWNER,
    "state_default": OWNER,
    "events_default": 0,
    "users_default": 0,
    "notifications": {"room": OWNER},
}
HISTORY_FROM_INVITE = "invited"


def power_levels(member_state: Iterable[str] = ()) -> dict[str, Any]:
    """Power levels for a room we own. `users` is left out: the creator keeps its own entry
    (room versions before 12) or its unlimited power (version 12)."""
    events = {
        "m.room.power_levels": OWNER,
        "m.room.history_visibility": OWNER,
        "m.room.join_rules": OWNER,
        "m.room.encryption": OWNER,
        "m.room.server_acl": OWNER,
        "m.room.tombstone": OWNER,
    }
    events.update({event_type: 0 for event_type in member_state})
    return {**OWNER_ONLY, "events": events}


async def create_dm(client: MatrixClient, peer: UserID) -> RoomID:
    """A direct chat that nobody but me can add a third person to, end-to-end encrypted
    where this install can encrypt and the peer has a device to read it with."""
    encrypted = crypto_available() and await client.has_device_keys(peer)
    return await client.create_room(
        public=False,
        power_levels=power_levels(),
        history_visibility=HISTORY_FROM_INVITE,
        invite=(peer,),
        direct=True,
        encrypted=encrypted,
    )


async def create_invite_only_room(
    client: MatrixClient,
    alias_localpart: str | None,
    name: str,
    topic: str,
    *,
    encrypted: bool = False,
) -> RoomID:
    """An invite-only directory room (lobby, project room, circle) whose members publish
    their own profile and presence (state events, which encryption never covers)."""
    return await client.create_room(
        public=False,
        power_levels=power_levels(MEMBER_STATE),
        history_visibility=HISTORY_FROM_INVITE,
        alias_localpart=alias_localpart,
        name=name,
        topic=topic,
        encrypted=encrypted and crypto_available(),
    )


async def create_public_room(
    client: MatrixClient, alias_localpart: str, name: str, topic: str
) -> RoomID:
    """Anyone may join and read it: only public-labelled profiles go there."""
    return await client.create_room(
        public=True,
        power_levels=power_levels(MEMBER_STATE),
        history_visibility="shared",
        alias_localpart=alias_localpart,
        name=name,
        topic=topic,
    )


async def create_machine_pair_room(
    client: MatrixClient, alias_localpart: str, name: str, topic: str, servers: tuple[str, ...]
) -> RoomID:
    """A room open to every account of exactly two homeservers (this one and a paired
    machine's) and to nobody else: a server ACL (`servers`: the patterns it allows), enforced
    by both homeservers on every join and event, admits nobody from a third one."""
    return await client.create_room(
        public=True,
        power_levels=power_levels(MEMBER_STATE),
        history_visibility=HISTORY_FROM_INVITE,
        alias_localpart=alias_localpart,
        name=name,
        topic=topic,
        only_servers=servers,
    )


async def harden(client: MatrixClient, room: RoomID, member_state: Iterable[str] = ()) -> None:
    """Bring a room I created before these rules to them: owner-only power levels (keeping
    who holds which level) and history from the invitation on."""
    current = await client.get_state(room, "m.room.power_levels") or {}
    wanted = power_levels(member_state)
    merged = {**current, **{k: v for k, v in wanted.items() if k != "events"}}
    merged["events"] = {**(current.get("events") or {}), **wanted["events"]}
    if merged != current:
        await client.put_state(room, "m.room.power_levels", merged)
    history = await client.get_state(room, "m.room.history_visibility") or {}
    if history.get("history_visibility") != HISTORY_FROM_INVITE:
        await client.put_state(
            room, "m.room.history_visibility", {"history_visibility": HISTORY_FROM_INVITE}
        )
