"""claudematrix.store.migrations: a blank database gets the current schema, and a database of
every earlier version is carried forward with its data."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from claudematrix.ids import RoomID, UserID
from claudematrix.store import Request, Store, SyncBatch
from claudematrix.store.migrations import MIGRATIONS, SCHEMA_VERSION, migrate
from unit.store.conftest import msg


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
