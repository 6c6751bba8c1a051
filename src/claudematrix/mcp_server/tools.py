"""The MCP tools as plain functions of a connected Service: text in, text out.

The server (server.py) only wires them to the protocol; each can be called and tested with
a Service and nothing else. Anything that needs the person (opening up, trusting) takes a
`Confirm` that asks them, never the model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from claudematrix.ids import parse_user_id
from claudematrix.local.headers import person
from claudematrix.policy import opens_up
from claudematrix.render import (
    contact_line,
    framed_body,
    header_line,
    held_device_note,
    waiting_note,
)
from claudematrix.service import Service, peer_states
from claudematrix.types import Label, Message

__all__ = [
    "Confirm",
    "whoami",
    "contacts",
    "send",
    "inbox",
    "read",
    "search",
    "set_status",
    "set_mode",
    "trust",
]

Confirm = Callable[[str], Awaitable[bool]]  # asks the person a yes/no question
INBOX_MAX = 200
SEARCH_MAX = 100
_REQUESTS_NAMED = 5


async def whoami(s: Service) -> str:
    me = s.whoami()
    return (
        f"Matrix ID: {me.user_id}\nDisplay name: {me.display_name}\nMode: {me.mode}\n"
        f"Project: {me.project} (branch {me.branch or '-'}) on {me.host}\n"
        f"Homeserver: {me.homeserver}\nUnread ClaudeMatrix messages: {s.unread_count()}"
        + (f"\nEncryption problem: {me.device_problem}" if me.device_problem else "")
        + (f"\nEncryption note: {me.device_notice}" if me.device_notice else "")
    )


async def contacts(s: Service) -> str:
    found = s.contacts()
    if not found:
        return "No contacts yet: other sessions on this machine appear once they start."
    return "\n".join(contact_line(c) for c in found)


async def send(
    s: Service,
    to: str,
    text: str,
    subject: str = "",
    label: str | None = None,
    reply_to: str | None = None,
    call_key: str | None = None,
) -> str:
    """`call_key`: names this call uniquely; the same key again (a call the shim replayed
    after the daemon restarted) sends nothing new."""
    sent = await s.send(
        to,
        text,
        subject=subject,
        label=label,
        reply_to=reply_to.lstrip("#") if reply_to else None,
        call_key=call_key,
    )
    held = s.held_back.pop(sent.event_id, [])
    return (
        f"Sent #{sent.local_id} to {sent.recipient} ({s.where(sent).value}), "
        f"label {sent.label.value}, event {sent.event_id}"
    ) + "".join(f"\n{held_device_note(user, device)}" for user, device in held)


async def inbox(s: Service, include_read: bool = False, limit: int = 20) -> str:
    found = s.inbox(include_read=include_read, limit=max(1, min(limit, INBOX_MAX)))
    s.mark_announced(found)
    empty = "No ClaudeMatrix messages yet." if include_read else "No unread ClaudeMatrix messages."
    text = _headers(s, found, empty)
    waiting = s.requests()
    if waiting:
        who = ", ".join(person(r.inviter, r.display_name) for r in waiting[:_REQUESTS_NAMED])
        text += (
            f"\n{len(waiting)} message request(s) from outside your audience "
            f"({who}): only the person can accept them (`claudematrix requests`)."
        )
    for peer in await peer_states(s.config):
        if peer.down_since is not None:
            text += "\n" + waiting_note(peer.name, peer.server_name, peer.down_since) + "."
    return text


async def read(s: Service, id: str) -> str:  # noqa: A002 (the tool's argument name)
    message = s.read(id.lstrip("#"))
    s.mark_announced([message])
    return framed_body(message, s.where(message))


async def search(s: Service, query: str, limit: int = 10) -> str:
    return _headers(s, s.search(query, limit=max(1, min(limit, SEARCH_MAX))), "No matches.")


async def set_status(s: Service, status: str) -> str:
    return f"Status published: {await s.set_status(status)}"


async def set_mode(s: Service, mode: str, confirm: Confirm) -> str:
    new = Label.parse(mode)
    old = s.mode()
    if opens_up(old, new) and not await confirm(
        f"Switch this session's ClaudeMatrix mode from {old.value} to {new.value}? "
        "More people will see what it works on."
    ):
        return f"The person declined; mode stays {old.value}."
    return f"Mode is now {(await s.set_mode(new, confirmed=True)).value}."


async def trust(s: Service, user: str, confirm: Confirm) -> str:
    # Checked before the person is asked: the question must show only a Matrix ID,
    # whatever a message may have put into the model's arguments.
    user_id = parse_user_id(user.strip())
    if not await confirm(f"Trust {user_id} with trusted-labelled data?"):
        return "The person declined; nothing changed."
    return f"Trusted {await s.trust(user_id, confirmed=True)}."


def _headers(s: Service, messages: list[Message], empty: str) -> str:
    if not messages:
        return empty
    return "\n".join(header_line(m, s.where(m)) for m in messages)
