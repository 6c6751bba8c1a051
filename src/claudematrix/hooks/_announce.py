"""Claiming new mail and saying it: the one step every announcing hook (and the idle waiter)
shares. Marks mail announced (never read) and returns the block of headers to show."""

from __future__ import annotations

import os

from claudematrix.hooks import _jsonlite
from claudematrix.local import mailbox, places
from claudematrix.local.headers import Header, notification, requests_block
from claudematrix.local.layout import ACCOUNT, ANNOUNCED_MARKER

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~7 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["announce", "own_user_ids"]

# claudematrix.types.Audience values (a unit test checks they match).
SELF = "self"
REMOTE = "remote"


def _touch(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.utime(path, None)


def announce(identity: str) -> str | None:
    """Claim all unannounced mail of this identity and return its notification block.

    The announced marker is touched *before* the store is read: mail committed after that
    leaves mail.marker at least as new, so the next hook looks again. If claiming fails the
    marker is removed, so the next hook retries instead of believing all was said.
    """
    marker = identity + "/" + ANNOUNCED_MARKER
    try:
        _touch(marker)
    except FileNotFoundError:
        return None  # no identity dir: no store, no mail
    try:
        conn = mailbox.connect(identity)
        if conn is None:
            return None

        def say(
            headers: list[Header], count: int, requests: list[tuple[str, str]], asked: int
        ) -> str | None:
            blocks = []
            if headers:
                blocks.append(notification(headers, count, _where_of(identity, conn, headers)))
            if requests:
                blocks.append(requests_block(requests, asked))
            return "\n".join(blocks) or None

        try:
            return mailbox.claim(conn, say)
        finally:
            conn.close()
    except BaseException:
        try:  # noqa: SIM105 - contextlib costs an import on the hot path
            os.unlink(marker)
        except OSError:
            pass
        raise


def own_user_ids(identity: str) -> tuple[str | None, str | None]:
    """(this session's Matrix ID, the owner's Matrix ID), from their account.json files."""
    return _account_user(identity), _account_user(os.path.dirname(identity) + "/owner")


def _account_user(identity: str) -> str | None:
    try:
        with open(identity + "/" + ACCOUNT, encoding="utf-8") as handle:
            data = _jsonlite.loads(handle.read())
    except (OSError, ValueError):
        return None
    user = data.get("user_id") if isinstance(data, dict) else None
    return user if isinstance(user, str) and user else None


def _where_of(identity: str, conn: Any, headers: list[Header]) -> Any:
    """Where each sender stands, as claudematrix.service.Service.where decides it."""
    me, owner = own_user_ids(identity)
    selves = {u for u in (me, owner) if u}
    known = mailbox.audiences(conn, {h.sender for h in headers} - selves)
    remote = {known.get(h.sender, REMOTE) for h in headers if h.sender not in selves}
    far = remote & {REMOTE, "trusted remote"}
    paired = _paired(os.path.dirname(os.path.dirname(identity))) if far else None
    names = places.machine_names(paired)
    trusted = places.trusted_servers(paired)

    def where(h: Header) -> str:
        if h.sender in selves:
            return SELF
        place = places.trusted_place(known.get(h.sender, REMOTE), h.sender, trusted)
        return places.with_machine(place, h.sender, names)

    return where


def _paired(state_dir: str) -> object:
    """machines.json as loaded; None if this machine is paired with nobody."""
    try:
        with open(places.paired_file(state_dir), encoding="utf-8") as handle:
            return _jsonlite.loads(handle.read())
    except (OSError, ValueError):
        return None
