"""Message <-> Matrix event content.

Our fields ride beside a normal `body`, so Element and other clients show messages well
while sessions get subject and label back exactly.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.types import Direction, Label, Message

__all__ = [
    "NAMESPACE",
    "PROFILE_EVENT",
    "PRESENCE_EVENT",
    "MEMBER_STATE",
    "MAX_CONTENT_BYTES",
    "MAX_ENCRYPTED_CONTENT_BYTES",
    "content_size",
    "build_content",
    "message_from_event",
    "unreadable_message",
    "UNREADABLE_SUBJECT",
    "subject_from_text",
    "read_fields",
]

NAMESPACE = "com.claudematrix"
# Room state, one per user (state_key = their user ID): what they publish about themselves.
PROFILE_EVENT = "com.claudematrix.profile"
# Room state, one per user: a heartbeat (last_active, ttl_ms, online), apart from the profile
# so that withdrawing a profile never has to chase thousands of heartbeats.
PRESENCE_EVENT = "com.claudematrix.presence"
MEMBER_STATE = [PROFILE_EVENT, PRESENCE_EVENT]
_SUBJECT_FROM_BODY_CHARS = 72


# Synapse refuses events over 64 KiB; this leaves room for the event's own fields.
MAX_CONTENT_BYTES = 60 * 1024
# Encrypted, content grows by a third (base64 of the ciphertext) plus the envelope; this
# keeps the event under the homeserver's 64 KiB.
MAX_ENCRYPTED_CONTENT_BYTES = 45 * 1024


def build_content(
    subject: str,
    text: str,
    label: Label,
    reply_to: EventID | None = None,
    *,
    for_people: bool = False,
) -> dict[str, Any]:
    """The text travels once, in `body` ("[subject] text", which every client shows well);
    subject and label ride beside it, and the exact text is rebuilt from `body` on receipt.
    Every extra copy costs the homeserver per byte, so the HTML rendering of Markdown is
    added only `for_people` (a person's client shows it) and only where the text has any."""
    content: dict[str, Any] = {
        "msgtype": "m.text",
        "body": f"[{subject}] {text}" if subject else text,
        NAMESPACE: {"v": 1, "subject": subject, "label": label.value},
    }
    formatted = markdown_html(subject, text) if for_people else None
    if formatted is not None:
        content["format"] = "org.matrix.custom.html"
        content["formatted_body"] = formatted
    if reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


_PLAIN_HTML = re.compile(r"</?p>|<br ?/?>")


def markdown_html(subject: str, text: str) -> str | None:
    """The text's Markdown (CommonMark; raw HTML shown as text, never passed through) as
    HTML, the subject in bold above it; None if the text has no formatting at all."""
    from markdown_it import MarkdownIt  # ~50 ms to import: only when a person is written to

    rendered = MarkdownIt("commonmark", {"html": False}).render(text)
    if not re.search(r"<", _PLAIN_HTML.sub("", rendered)):
        return None
    head = f"<p><strong>{html.escape(subject)}</strong></p>\n" if subject else ""
    return head + str(rendered).strip()


def subject_from_text(text: str) -> str:
    """People in ordinary clients send no subject: use the start of the first line."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    if len(first) <= _SUBJECT_FROM_BODY_CHARS:
        return first
    return first[: _SUBJECT_FROM_BODY_CHARS - 1].rstrip() + "…"


def _label(value: Any) -> Label:
    try:
        return Label(str(value))
    except ValueError:
        # An unknown label must not travel further than the strictest one allows.
        return Label.SECRET


def read_fields(content: dict[str, Any]) -> tuple[str, Label, str]:
    """(subject, label, text) of message content, ours or any other client's."""
    ours = content.get(NAMESPACE)
    body = str(content.get("body", ""))
    if not isinstance(ours, dict):  # a person in an ordinary client: no subject, no label
        return subject_from_text(body), Label.PRIVATE, body
    subject = str(ours.get("subject") or "")
    label = _label(ours.get("label", Label.PRIVATE.value))
    text = ours.get("text")  # only in messages from before the text travelled once
    if not isinstance(text, str):
        prefix = f"[{subject}] " if subject else ""
        text = body[len(prefix) :] if body.startswith(prefix) else body
    return subject, label, text


def message_from_event(
    event: dict[str, Any],
    room_id: RoomID,
    me: UserID,
    *,
    sender_name: str = "",
    peer: UserID | None = None,
) -> Message | None:
    """A room event as a Message, or None if it is not a text message."""
    if event.get("type") != "m.room.message" or "event_id" not in event:
        return None
    content = event.get("content") or {}
    if not isinstance(content, dict) or content.get("msgtype") not in ("m.text", "m.notice"):
        return None
    subject, label, text = read_fields(content)
    relates = content.get("m.relates_to") or {}
    reply = relates.get("m.in_reply_to", {}) if isinstance(relates, dict) else {}
    reply_to = reply.get("event_id") if isinstance(reply, dict) else None
    return _message(
        event,
        room_id,
        me,
        sender_name,
        peer,
        (subject, text, label),
        EventID(reply_to) if isinstance(reply_to, str) else None,
    )


def _message(
    event: dict[str, Any],
    room_id: RoomID,
    me: UserID,
    sender_name: str,
    peer: UserID | None,
    fields: tuple[str, str, Label],
    reply_to: EventID | None = None,
) -> Message:
    """A room event (with an event id) as a Message: mine go out to the peer."""
    subject, body, label = fields
    sender = UserID(str(event.get("sender", "")))
    outgoing = sender == me
    return Message(
        event_id=EventID(str(event["event_id"])),
        room_id=room_id,
        sender=sender,
        sender_name=sender_name,
        direction=Direction.OUT if outgoing else Direction.IN,
        subject=subject,
        body=body,
        label=label,
        origin_ts=int(event.get("origin_server_ts", 0)),
        reply_to=reply_to,
        recipient=peer if outgoing else me,
    )


UNREADABLE_SUBJECT = "encrypted message, not readable yet"
UNREADABLE_BODY = (
    "This message came end-to-end encrypted and its key has not reached this session yet. "
    "It is kept, and shown in full here as soon as the sender's client sends the key."
)


def unreadable_message(
    event: dict[str, Any],
    room_id: RoomID,
    me: UserID,
    *,
    sender_name: str = "",
    peer: UserID | None = None,
) -> Message | None:
    """What stands in for an encrypted event we cannot decrypt yet: never dropped unseen."""
    if "event_id" not in event:
        return None
    # Label secret: nothing of it may travel further.
    fields = (UNREADABLE_SUBJECT, UNREADABLE_BODY, Label.SECRET)
    return _message(event, room_id, me, sender_name, peer, fields)


def content_size(content: dict[str, Any]) -> int:
    return len(json.dumps(content, ensure_ascii=False).encode())
