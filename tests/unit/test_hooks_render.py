"""The hooks format headers with claudematrix.hooks._render (claudematrix.render costs too much
to import on the hot path). Same inputs, same text as claudematrix.render."""

from __future__ import annotations

import pytest

from claudematrix import render
from claudematrix.hooks import _events, _render
from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.types import Audience, Direction, Label, Message

TS = 1_795_000_000_000
WHERE = [Audience.MACHINE, Audience.ANYONE, Audience.PROJECT, Audience.SELF, Audience.TRUSTED]


def message(n: int, **changes: object) -> Message:
    fields: dict[str, object] = {
        "event_id": EventID(f"$e{n}"),
        "room_id": RoomID("!r:localhost"),
        "sender": UserID(f"@cc-peer{n % 3}:localhost"),
        "sender_name": f"proj@main on vm (peer{n % 3})",
        "direction": Direction.IN,
        "subject": f"Subject {n}",
        "body": "body",
        "label": list(Label)[n % 4],
        "origin_ts": TS + n * 61_000,
        "recipient": UserID("@cc-me:localhost"),
        "local_id": n,
        "read": n % 5 == 0,
        **changes,
    }
    return Message(**fields)  # type: ignore[arg-type]


def header(m: Message) -> _render.Header:
    return _render.Header(
        m.local_id or 0, m.sender, m.sender_name, m.subject, m.label.value, m.origin_ts, m.read
    )


def test_constants_match() -> None:
    assert _render.UNTRUSTED_NOTE == render.UNTRUSTED_NOTE
    assert _render.format_time(TS) == render.format_time(TS)
    assert (Audience.SELF.value, Audience.ANYONE.value) == (_events._SELF, _events._REMOTE)


@pytest.mark.parametrize("n", range(1, 13))
def test_header_line_matches(n: int) -> None:
    changes: dict[str, object] = {}
    if n == 4:
        changes["subject"] = ""
    if n == 7:
        changes["sender_name"] = ""
    m = message(n, **changes)
    where = WHERE[n % len(WHERE)]
    assert _render.header_line(header(m), where.value) == render.header_line(m, where)


@pytest.mark.parametrize("count", [1, 2, 5, 6, 40])
def test_notification_matches(count: int) -> None:
    messages = [message(n) for n in range(1, count + 1)]

    def where_of(m: Message) -> Audience:
        return WHERE[(m.local_id or 0) % len(WHERE)]

    newest = sorted(messages, key=lambda m: m.local_id or 0, reverse=True)[: _render.NEWEST]
    ours = _render.notification(
        [header(m) for m in newest], count, lambda h: WHERE[h.local_id % len(WHERE)].value
    )
    assert ours == render.notification(messages, where_of)


def test_clean_keeps_one_line_and_caps_length() -> None:
    assert _render.clean("a\nb\r\tc\x00d\u2028e\x7f", 100) == "a b  c d e"
    capped = _render.clean("x" * 500, 100)
    assert len(capped) == 100 and capped.endswith("\u2026")


def test_where_matches_the_directory(isolated_home: object) -> None:
    """hooks/_db.py words "where" with its own SQL; it must agree with
    claudematrix.service.directory.Directory.audience_of on the same store."""
    import sqlite3

    from claudematrix.config import load_config
    from claudematrix.hooks import _db
    from claudematrix.identity import Identity
    from claudematrix.ids import IdentityName
    from claudematrix.service.directory import Directory
    from claudematrix.store import Membership, RoomRecord, Store, SyncBatch
    from claudematrix.workspace import detect_workspace

    me, owner = UserID("@cc-me:localhost"), UserID("@person:localhost")
    users = {
        "proj": UserID("@cc-proj:localhost"),
        "lobby": UserID("@cc-lobby:localhost"),
        "both": UserID("@cc-both:localhost"),
        "trusted": UserID("@t:example.org"),
        "left-room": UserID("@cc-left:localhost"),
        "stranger": UserID("@s:example.org"),
    }
    store = Store(":memory:")
    project, lobby, gone = RoomID("!p:l"), RoomID("!l:l"), RoomID("!g:l")
    store.commit_sync(
        SyncBatch(
            next_batch="s",
            rooms=[
                RoomRecord(project, "project"),
                RoomRecord(lobby, "lobby"),
                RoomRecord(gone, "project", joined=False),
            ],
            memberships=[
                Membership(project, users["proj"], "", True),
                Membership(lobby, users["lobby"], "", True),
                Membership(project, users["both"], "", True),
                Membership(lobby, users["both"], "", True),
                Membership(gone, users["left-room"], "", True),
            ],
        )
    )
    store.set_trusted(users["trusted"], True)
    directory = Directory(
        load_config(),
        Identity(IdentityName("me"), False, False),
        detect_workspace(),
        store,
        client=lambda: None,  # type: ignore[arg-type, return-value]
        me=lambda: me,
        owner=lambda: owner,
        hidden=lambda: set(),
    )
    conn: sqlite3.Connection = store._conn
    ours = _db.audiences(conn, set(users.values()))
    for user in users.values():
        assert ours[user] == directory.audience_of(user).value, user
    assert directory.audience_of(me) is Audience.SELF  # the hooks check self/owner by ID
