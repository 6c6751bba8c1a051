"""How messages, contacts and requests look to people and to Claude.

Headers have one format, in `claudematrix.local.headers` (which the hooks share); this module adapts
Message and Contact objects to it and frames bodies. Every field a sender controls passes
`claudematrix.local.untrusted` here, for the MCP tools, the CLI's text and its --json alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from claudematrix.local import headers
from claudematrix.local.headers import UNTRUSTED_NOTE, format_time, person
from claudematrix.local.untrusted import (
    FIELD_MAX,
    ID_MAX,
    NAME_MAX,
    STATUS_MAX,
    SUBJECT_MAX,
    body_text,
    fence,
    one_line,
    quoted,
)
from claudematrix.types import Contact, Message, Where

__all__ = [
    "waiting_note",
    "header_line",
    "message_json",
    "notification",
    "framed_body",
    "format_time",
    "UNTRUSTED_NOTE",
    "contact_line",
    "contact_json",
    "request_line",
    "held_device_note",
]

WhereOf = Callable[[Message], Where]
UNVERIFIED_DEVICE_NOTE = (
    "from a device nobody verified (its owner can compare emoji: `claudematrix verify <user>`)"
)


def _header(message: Message) -> headers.Header:
    return headers.Header(
        message.local_id or 0,
        message.sender,
        message.sender_name,
        message.subject,
        message.label.value,
        message.origin_ts,
        message.read,
        message.unverified_device,
    )


def header_line(message: Message, where: Where) -> str:
    """`#12 2026-11-21 20:51 from "Name" <@id:server> (same machine) "Subject" [private]`"""
    return headers.header_line(_header(message), where.value)


def notification(
    messages: Sequence[Message], where_of: WhereOf, *, newest: int = headers.NEWEST
) -> str:
    """A capped block of new-mail headers: a flood gives a count and the newest few."""
    shown = sorted(messages, key=lambda m: m.local_id or 0, reverse=True)[:newest]
    pairs = [(_header(m), where_of(m).value) for m in shown]
    where = {id(h): w for h, w in pairs}
    return headers.notification([h for h, _ in pairs], len(messages), lambda h: where[id(h)])


def framed_body(message: Message, where: Where, *, token: str | None = None) -> str:
    """A body as shown to Claude: our provenance first (the sender's Matrix ID, where they
    stand, the label), then everything the sender wrote inside a fence it cannot close."""
    sender = one_line(message.sender, ID_MAX)
    opening, text, closing = fence(
        "\n".join(
            [
                f"From: {quoted(message.sender_name, NAME_MAX)}",
                f"Subject: {quoted(message.subject, SUBJECT_MAX)}",
                "",
                body_text(message.body),
            ]
        ),
        token,
    )
    state = "" if message.read else ", unread"
    device = f", {UNVERIFIED_DEVICE_NOTE}" if message.unverified_device else ""
    return "\n".join(
        [
            f"#{message.local_id} {format_time(message.origin_ts)} from <{sender}> "
            f"({where.value}), label {message.label.value}{device}{state}",
            f"Everything between {opening} and {closing} was written by {sender} (display "
            f"name, subject and text). {UNTRUSTED_NOTE}",
            opening,
            text,
            closing,
        ]
    )


def message_json(message: Message, where: Where, *, body: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": message.local_id,
        "event_id": one_line(message.event_id, ID_MAX),
        "room_id": one_line(message.room_id, ID_MAX),
        "from": one_line(message.sender, ID_MAX),
        "from_name": one_line(message.sender_name, NAME_MAX),
        "where": where.value,
        "machine": where.machine,
        "to": one_line(message.recipient, ID_MAX) if message.recipient else None,
        "direction": message.direction.value,
        "subject": one_line(message.subject, SUBJECT_MAX),
        "label": message.label.value,
        "time": format_time(message.origin_ts),
        "timestamp_ms": message.origin_ts,
        "read": message.read,
        "unverified_device": message.unverified_device,
    }
    if message.reply_to:
        data["reply_to"] = one_line(message.reply_to, ID_MAX)
    if body:
        data["body"] = body_text(message.body)
    return data


def _state(contact: Contact) -> str:
    if contact.online:
        return "online"
    return f"seen {format_time(contact.last_seen_ts)}" if contact.last_seen_ts else "not seen"


def contact_line(contact: Contact) -> str:
    """`"name" <@id> (same project, online), short name "x": status "..."; task "..."`"""
    line = f"{person(contact.user_id, contact.display_name)} "
    line += f"({contact.where.value}, {_state(contact)})"
    short = one_line(contact.short_name, NAME_MAX)
    if short:
        line += f", short name {quoted(short, NAME_MAX)}"
    work = []
    if one_line(contact.status, STATUS_MAX):
        work.append(f"status {quoted(contact.status, STATUS_MAX)}")
    if one_line(contact.task, FIELD_MAX):
        work.append(f"task {quoted(contact.task, FIELD_MAX)}")
    return line + (": " + "; ".join(work) if work else "")


_CONTACT_FIELDS = {
    "display_name": NAME_MAX,
    "short_name": NAME_MAX,
    "status": STATUS_MAX,
    "project": FIELD_MAX,
    "branch": FIELD_MAX,
    "host": FIELD_MAX,
    "task": FIELD_MAX,
    "mode": 16,
}


def contact_json(contact: Contact) -> dict[str, Any]:
    data: dict[str, Any] = {
        "user_id": one_line(contact.user_id, ID_MAX),
        "audience": contact.audience.value,
        "where": contact.where.value,
        "machine": contact.machine,
        "last_seen_ts": contact.last_seen_ts,
        "dm_room": contact.dm_room,
        "online": contact.online,
    }
    for name, limit in _CONTACT_FIELDS.items():
        data[name] = one_line(getattr(contact, name), limit)
    return data


def request_line(user: str, name: str, received: str) -> str:
    """One waiting message request, for the person: who, when, what to run; never content."""
    who = one_line(user, ID_MAX)
    return (
        f"{received} {person(user, name)} wants to talk: `claudematrix accept {who}` or "
        f"`claudematrix block {who}`"
    )


def held_device_note(user: str, device: str) -> str:
    """Said after a send whose room key skipped a held device of a recipient."""
    return (
        f"Not sent to {one_line(user, ID_MAX)}'s device {one_line(device, ID_MAX)}: it is new "
        "or its keys changed since it was pinned. Only the person can confirm it: "
        f"`claudematrix devices {one_line(user, ID_MAX)}`."
    )


def waiting_note(machine: str, server: str, down_since_ms: int) -> str:
    """What a paired machine that cannot be reached means for mail sent to it."""
    return (
        f"mail to {machine} ({server}) waits: unreachable since {format_time(down_since_ms)}; "
        "it goes when that machine is back"
    )
