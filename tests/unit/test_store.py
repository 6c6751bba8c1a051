"""The local store: schema, sync commits, inbox, search, outbox and settings."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from claudematrix.errors import StateCorrupt, UnknownMessage
from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.store import Membership, Request, RoomRecord, Store, SyncBatch
from claudematrix.store.migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from claudematrix.types import Direction, Label, Message

ME = UserID("@cc-me:localhost")
PEER = UserID("@cc-peer:localhost")
ROOM = RoomID("!dm:localhost")


def msg(
    n: int,
    *,
    subject: str | None = None,
    body: str | None = None,
    direction: Direction = Direction.IN,
    label: Label = Label.PRIVATE,
    sender_name: str = "Peer",
) -> Message:
    incoming = direction is Direction.IN
    return Message(
        event_id=EventID(f"$event{n}"),
        room_id=ROOM,
        sender=PEER if incoming else ME,
        sender_name=sender_name,
        direction=direction,
        subject=f"subject {n}" if subject is None else subject,
        body=f"body {n}" if body is None else body,
        label=label,
        origin_ts=1_700_000_000_000 + n,
        recipient=ME if incoming else PEER,
    )


# Schema version 1 exactly as the first release (commit 75cef89) created it: databases in
# the field look like this, so migrations must carry them forward (never edit a released one).
@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = Store.in_memory() if request.param == "memory" else Store(tmp_path / "store.db")
    try:
        yield s
    finally:
        s.close()


# --- schema ---------------------------------------------------------------------------


def test_blank_database_is_migrated_to_the_current_schema(store: Store) -> None:
    conn = store._conn
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"meta", "messages", "messages_fts", "rooms", "outbox"} <= names


def test_migrate_is_idempotent_and_reopening_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store(path) as s:
        s.commit_sync(SyncBatch(next_batch="t1", messages=[msg(1)]))
        migrate(s._conn)  # a second run changes nothing
        assert s._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    with Store(path) as again:
        assert again.next_batch() == "t1"
        assert [m.subject for m in again.inbox()] == ["subject 1"]


def test_file_store_is_private_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store(path) as s:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_garbage_file_is_reported_as_corrupt_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    garbage = b"definitely not a database " * 100
    path.write_bytes(garbage)
    with pytest.raises(StateCorrupt, match="cannot be opened"):
        Store(path)
    assert path.read_bytes() == garbage


def _schema(conn: sqlite3.Connection) -> dict[str, set[str]]:
    tables = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name NOT LIKE 'messages_fts_%'"
        )
    ]
    return {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_database_of_every_earlier_version_migrates_to_the_current_schema(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as old:
        for script in MIGRATIONS[:version]:
            old.executescript(script)
        old.execute(
            "INSERT INTO messages (event_id, room_id, sender, direction, subject, body, label, "
            "origin_ts, received_ts) VALUES ('$old', '!r:x', '@a:x', 'in', 'kept', 'old body', "
            "'private', 1, 1)"
        )
        old.execute("INSERT INTO meta (key, value) VALUES ('next_batch', 's1')")
        old.execute(f"PRAGMA user_version = {version}")
    old.close()
    with Store(path) as migrated, Store.in_memory() as blank:
        assert migrated._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        # Everything a blank database has, the migrated one has too (tables and columns).
        assert _schema(migrated._conn) == _schema(blank._conn)
        assert migrated.next_batch() == "s1"
        assert migrated.message("$old").body == "old body"
        assert [m.event_id for m in migrated.search("old body")] == ["$old"]
        migrated.commit_sync(SyncBatch(next_batch="s2", messages=[msg(1)]))
        assert [m.subject for m in migrated.inbox()] == ["subject 1", "kept"]


# --- sync commits ---------------------------------------------------------------------


def test_commit_sync_dedupes_by_event_id(store: Store) -> None:
    first = store.commit_sync(SyncBatch(next_batch="t1", messages=[msg(1), msg(2)]))
    assert len(first) == 2
    # The same events again (a replayed /sync after a crash) add nothing, the token moves on.
    again = store.commit_sync(SyncBatch(next_batch="t2", messages=[msg(2), msg(1), msg(3)]))
    assert len(again) == 1
    assert store.next_batch() == "t2"
    assert [m.subject for m in store.inbox(include_read=True)] == [
        "subject 3",
        "subject 2",
        "subject 1",
    ]
    count = store._conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == 3


def test_commit_sync_returns_only_new_incoming_ids(store: Store) -> None:
    ids = store.commit_sync(
        SyncBatch(next_batch="t1", messages=[msg(1), msg(2, direction=Direction.OUT)])
    )
    assert len(ids) == 1
    assert store.message(str(ids[0])).event_id == "$event1"


def test_commit_sync_is_all_or_nothing(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t1", messages=[msg(1)]))
    broken = msg(3)
    object.__setattr__(broken, "label", "not a Label")  # fails in the middle of the batch
    with pytest.raises(AttributeError):
        store.commit_sync(SyncBatch(next_batch="t2", messages=[msg(2), broken]))
    assert store.next_batch() == "t1"  # the token did not move without its events
    assert not store.has_event(EventID("$event2"))
    # And the store is usable afterwards (no transaction left open).
    store.commit_sync(SyncBatch(next_batch="t3", messages=[msg(2)]))
    assert store.has_event(EventID("$event2"))


def test_token_only_batch_and_no_token_batch(store: Store) -> None:
    assert store.next_batch() is None
    store.commit_sync(SyncBatch(next_batch="t1"))
    assert store.next_batch() == "t1"
    store.commit_sync(SyncBatch(next_batch=None, messages=[msg(1)]))
    assert store.next_batch() == "t1"


def test_outgoing_messages_are_read_and_not_in_inbox(store: Store) -> None:
    store.outbox_add("txn1", RoomID("!r:x"), "@b:x", "{}")
    store.outbox_done("txn1", msg(1, direction=Direction.OUT))
    assert store.outbox_pending() == []
    assert store.inbox(include_read=True) == []
    assert store.unread_count() == 0
    assert store.message("$event1").read


# --- reading --------------------------------------------------------------------------


def test_inbox_is_newest_first_with_unread_filter_and_limit(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t", messages=[msg(i) for i in range(1, 6)]))
    assert [m.subject for m in store.inbox()] == [f"subject {i}" for i in (5, 4, 3, 2, 1)]
    assert [m.subject for m in store.inbox(limit=2)] == ["subject 5", "subject 4"]
    local_ids = [m.local_id or 0 for m in store.inbox()]
    assert local_ids == sorted(local_ids, reverse=True)
    assert store.unread_count() == 5


def test_mark_read(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t", messages=[msg(1), msg(2)]))
    first = store.message("$event1")
    assert not first.read
    assert first.local_id is not None
    store.mark_read(first.local_id)
    assert store.message(str(first.local_id)).read
    assert [m.subject for m in store.inbox()] == ["subject 2"]
    assert [m.subject for m in store.inbox(include_read=True)] == ["subject 2", "subject 1"]
    assert store.unread_count() == 1


def test_message_by_local_id_event_id_and_unknown(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t", messages=[msg(7)]))
    by_event = store.message("$event7")
    assert by_event.body == "body 7"
    assert store.message(f" {by_event.local_id} ") == by_event
    for bad in ("9999", "$nope", "abc"):
        with pytest.raises(UnknownMessage, match="inbox --all"):
            store.message(bad)


def test_announcing_is_separate_from_reading(store: Store) -> None:
    store.commit_sync(SyncBatch(next_batch="t", messages=[msg(1), msg(2), msg(3)]))
    ids = {m.subject: m.local_id or 0 for m in store.inbox()}
    store.mark_announced(ids["subject 2"])
    flags = {m.subject: (m.announced, m.read) for m in store.inbox(include_read=True)}
    assert flags == {
        "subject 3": (False, False),
        "subject 2": (True, False),
        "subject 1": (True, False),
    }
    assert store.unread_count() == 3  # announcing never marks read


# --- search ---------------------------------------------------------------------------


def test_search_finds_subject_body_and_sender(store: Store) -> None:
    store.commit_sync(
        SyncBatch(
            next_batch="t",
            messages=[
                msg(1, subject="Tokenizer review", body="please look at parser.py"),
                msg(2, subject="Lunch", body="pizza at noon", sender_name="Zed"),
                msg(3, subject="Other", body="the tokenizer is fine", direction=Direction.OUT),
            ],
        )
    )
    assert {m.event_id for m in store.search("tokenizer")} == {"$event1", "$event3"}
    assert [m.event_id for m in store.search("pizza noon")] == ["$event2"]
    assert [m.event_id for m in store.search("zed")] == ["$event2"]
    assert store.search("pizza tokenizer") == []  # every word must appear
    assert store.search("   ") == []


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '""',
        'foo"bar',
        "AND",
        "OR NOT",
        "a AND (b",
        "NEAR(x y)",
        "*",
        "tok*",
        "subject:secret",
        "-minus",
        "^caret",
        "(",
        ")",
        "{subject body}: x",
        "'; DROP TABLE messages; --",
        "日本語 テキスト",
    ],
)
def test_search_with_fts_syntax_in_the_query_does_not_crash(store: Store, query: str) -> None:
    store.commit_sync(
        SyncBatch(next_batch="t", messages=[msg(1, body='say "AND" (or NOT) near* x:y')])
    )
    assert isinstance(store.search(query), list)
    assert store._conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1


def test_search_treats_operators_as_words(store: Store) -> None:
    store.commit_sync(
        SyncBatch(next_batch="t", messages=[msg(1, body="cats AND dogs"), msg(2, body="cats")])
    )
    assert [m.event_id for m in store.search("cats AND dogs")] == ["$event1"]
    assert [m.event_id for m in store.search("cats OR dogs")] == []  # "or" is just a word


# --- rooms and contacts ---------------------------------------------------------------


def test_rooms_and_dm_lookup(store: Store) -> None:
    assert store.dm_room(PEER) is None
    store.save_room(RoomRecord(ROOM, "dm", PEER))
    store.save_room(RoomRecord(RoomID("!lobby:localhost"), "lobby"))
    assert store.dm_room(PEER) == ROOM
    assert store.lobby_room() == "!lobby:localhost"
    assert store.room(ROOM) == RoomRecord(ROOM, "dm", PEER, True)
    store.commit_sync(SyncBatch(next_batch=None, rooms=[RoomRecord(ROOM, "dm", None, False)]))
    assert store.dm_room(PEER) is None  # left: no longer used for sending
    assert store.room(ROOM) == RoomRecord(ROOM, "dm", PEER, False)  # peer kept


# --- outbox and settings --------------------------------------------------------------


def test_outbox_add_pending_done(store: Store) -> None:
    assert store.outbox_pending() == []
    store.outbox_add("txn1", ROOM, PEER, '{"body": "one"}')
    store.outbox_add("txn2", ROOM, PEER, '{"body": "two"}')
    store.outbox_add("txn1", ROOM, PEER, '{"body": "changed"}')  # same txn: ignored
    assert store.outbox_pending() == [
        ("txn1", ROOM, PEER, '{"body": "one"}'),
        ("txn2", ROOM, PEER, '{"body": "two"}'),
    ]
    store.outbox_done("txn1", msg(1, direction=Direction.OUT))
    assert [p[0] for p in store.outbox_pending()] == ["txn2"]
    assert store.has_event(EventID("$event1"))
    # Done twice (a retry that got the same event id back) records it once.
    store.outbox_done("txn2", msg(1, direction=Direction.OUT))
    assert store.outbox_pending() == []
    assert store._conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1


def test_settings(store: Store) -> None:
    assert store.setting("mode") is None
    store.set_setting("mode", "trusted")
    store.set_setting("display_name", "x")
    store.set_setting("mode", "public")
    assert store.setting("mode") == "public"
    assert store.setting("display_name") == "x"
    assert store.next_batch() is None  # settings never collide with the sync token


def test_requests_of_schema_2_survive_the_move_to_one_per_sender(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as old:
        for script in MIGRATIONS[:2]:
            old.executescript(script)
        old.execute(
            "INSERT INTO requests (room_id, inviter, display_name, received_ts, is_direct, "
            "announced) VALUES ('!r:x', '@eve:x', 'Eve', 5, 1, 1)"
        )
        old.execute("PRAGMA user_version = 2")
    old.close()
    with Store(path) as migrated:
        (request,) = migrated.requests()
        assert (request.room_id, request.inviter, request.display_name) == ("!r:x", "@eve:x", "Eve")
        assert (request.announced, request.kind, request.received_ts) == (True, "invite", 5)
        # Now one room may hold requests from several senders.
        migrated.add_request(
            Request(RoomID("!r:x"), UserID("@mallory:x"), "", 6, False, False, "message")
        )
        assert {r.inviter for r in migrated.requests()} == {"@eve:x", "@mallory:x"}


def test_where_a_user_stands_by_rooms_and_trust(store: Store) -> None:
    """The hooks' query, which Directory.audience_of uses too: a shared project room, else
    the machine lobby, else trust; rooms I left prove nothing."""
    users = {
        "same project": UserID("@cc-proj:localhost"),
        "same machine": UserID("@cc-lobby:localhost"),
        "both": UserID("@cc-both:localhost"),
        "trusted remote": UserID("@t:example.org"),
        "left room": UserID("@cc-left:localhost"),
        "remote": UserID("@s:example.org"),
    }
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
                Membership(project, users["same project"], "", True),
                Membership(lobby, users["same machine"], "", True),
                Membership(project, users["both"], "", True),
                Membership(lobby, users["both"], "", True),
                Membership(gone, users["left room"], "", True),
            ],
        )
    )
    store.set_trusted(users["trusted remote"], True)
    expected = {
        "same project": "same project",
        "same machine": "same machine",
        "both": "same project",
        "trusted remote": "trusted remote",
        "left room": "remote",
        "remote": "remote",
    }
    assert {k: store.where(u) for k, u in users.items()} == expected
