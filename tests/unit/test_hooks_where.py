"""The hooks word "where" a sender stands with their own SQL (hooks/_db.py); it must agree with
claudematrix.service.directory.Directory.audience_of on the same store."""

from __future__ import annotations

from claudematrix.ids import RoomID, UserID
from claudematrix.types import Audience


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
        progress=lambda _line: None,
    )
    conn: sqlite3.Connection = store._conn
    ours = _db.audiences(conn, set(users.values()))
    for user in users.values():
        assert ours[user] == directory.audience_of(user).value, user
    assert directory.audience_of(me) is Audience.SELF  # the hooks check self/owner by ID
