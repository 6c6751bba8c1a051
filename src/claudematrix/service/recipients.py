"""Turning what a person types as <to> into a Matrix target, and knowing how far it is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from claudematrix import homeserver
from claudematrix.config import Config
from claudematrix.errors import UnknownRecipient
from claudematrix.ids import (
    RoomID,
    UserID,
    is_room_ref,
    is_user_id,
    localpart,
    parse_room_alias,
    parse_room_id,
    parse_user_id,
    server_name,
)
from claudematrix.local.headers import person
from claudematrix.matrix import MatrixClient
from claudematrix.service.accounts import admin_credentials
from claudematrix.types import Contact

__all__ = ["Target", "parse_target", "match_contact", "existing_user"]


@dataclass(frozen=True)
class Target:
    user: UserID | None = None
    room: RoomID | None = None
    alias: str | None = None
    label: str = ""  # how to name it back to a person


def parse_target(to: str, contacts: Callable[[], list[Contact]]) -> Target:
    """`contacts` is only called for a name: an ID or a room needs no directory."""
    to = to.strip()
    if not to:
        raise UnknownRecipient("no recipient given: name a contact, a Matrix ID or a room")
    if is_user_id(to):
        user = parse_user_id(to)
        return Target(user=user, label=to)
    if is_room_ref(to):
        if to.startswith("!"):
            return Target(room=parse_room_id(to), label=to)
        return Target(alias=parse_room_alias(to), label=to)
    contact = match_contact(to, contacts())
    # The label goes into errors shown to Claude and the person: a name is a sender's text.
    return Target(user=contact.user_id, label=person(contact.user_id, contact.display_name))


def match_contact(name: str, contacts: list[Contact]) -> Contact:
    """Exact localpart or display name first, then a unique prefix."""
    wanted = name.lower()

    def keys(c: Contact) -> list[str]:
        lp = localpart(c.user_id).lower()
        return [lp, lp.removeprefix("cc-"), c.display_name.lower(), c.short_name.lower()]

    exact = [c for c in contacts if wanted in keys(c)]
    if len(exact) == 1:
        return exact[0]
    pool = exact or [c for c in contacts if any(k.startswith(wanted) for k in keys(c))]
    if len(pool) == 1:
        return pool[0]
    if not pool:
        raise UnknownRecipient(
            f"no contact matches {name!r}: run `claudematrix contacts` to see who you can "
            "reach, or give a Matrix ID like @name:server"
        )
    options = ", ".join(person(c.user_id, c.display_name) for c in pool[:5])
    raise UnknownRecipient(f"{name!r} matches several contacts: {options}; use the Matrix ID")


async def existing_user(config: Config, client: MatrixClient, user: UserID) -> str:
    """Their display name ("" if it is private), or UnknownRecipient if there is no such user.

    Profiles show only to people who share a room, so for anyone else the homeserver's admin
    API answers, where this state dir has admin power (the embedded homeserver); elsewhere a
    stranger's existence cannot be told, by us or by anyone.
    """
    name = await client.require_user(user)
    if name is not None:
        return name
    if server_name(user) == server_name(client.user_id):
        admin = await admin_credentials(config)
        if admin is not None:
            exists = await asyncio.to_thread(
                homeserver.user_exists, config.homeserver_url, admin.access_token, user
            )
            if not exists:
                raise UnknownRecipient(
                    f"no Matrix user {user} exists: check the ID, or run `claudematrix "
                    "contacts` to see who you can reach"
                )
    return ""
