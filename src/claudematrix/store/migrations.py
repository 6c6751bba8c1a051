"""Ordered schema migrations, tracked by PRAGMA user_version. Append, never edit."""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "migrate", "SCHEMA_VERSION"]

MIGRATIONS: list[str] = [
    # 1: messages with their headers, full-text index, sync token, rooms, contacts, outbox
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        room_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        sender_name TEXT NOT NULL DEFAULT '',
        recipient TEXT,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        subject TEXT NOT NULL DEFAULT '',
        body TEXT NOT NULL,
        label TEXT NOT NULL,
        origin_ts INTEGER NOT NULL,
        received_ts INTEGER NOT NULL,
        reply_to TEXT,
        read INTEGER NOT NULL DEFAULT 0,
        announced INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_by_direction ON messages (direction, id);
    CREATE INDEX messages_unread ON messages (direction, read, id);
    CREATE INDEX messages_unannounced ON messages (announced, direction, id);
    CREATE VIRTUAL TABLE messages_fts USING fts5 (
        subject, body, sender_name, content='messages', content_rowid='id'
    );
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, subject, body, sender_name)
        VALUES (new.id, new.subject, new.body, new.sender_name);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, subject, body, sender_name)
        VALUES ('delete', old.id, old.subject, old.body, old.sender_name);
    END;
    CREATE TABLE rooms (
        room_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        peer TEXT,
        joined INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX rooms_by_peer ON rooms (peer);
    CREATE TABLE people (
        user_id TEXT PRIMARY KEY,
        display_name TEXT NOT NULL DEFAULT '',
        last_seen_ts INTEGER
    );
    CREATE TABLE outbox (
        txn_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        content TEXT NOT NULL,
        created_ts INTEGER NOT NULL
    );
    """,
    # 2: the directory (room members, published profiles), trust, blocks, message requests
    """
    CREATE TABLE members (
        room_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (room_id, user_id)
    );
    CREATE INDEX members_by_user ON members (user_id);
    CREATE TABLE profiles (
        user_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        content TEXT NOT NULL,
        updated_ts INTEGER NOT NULL
    );
    CREATE TABLE presence (
        user_id TEXT PRIMARY KEY,
        last_active_ts INTEGER NOT NULL,
        ttl_ms INTEGER NOT NULL,
        online INTEGER NOT NULL
    );
    CREATE TABLE trust (user_id TEXT PRIMARY KEY, since_ts INTEGER NOT NULL);
    CREATE TABLE blocks (user_id TEXT PRIMARY KEY, since_ts INTEGER NOT NULL);
    CREATE TABLE requests (
        room_id TEXT PRIMARY KEY,
        inviter TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        received_ts INTEGER NOT NULL,
        is_direct INTEGER NOT NULL DEFAULT 1,
        announced INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 3: mail from outside my audience held unopened (requests may now be messages in a room
    # I am in, from several senders: keyed by room and sender), who I accepted mail from, and
    # which rooms only their owner can bring anyone into
    """
    CREATE TABLE requests_by_sender (
        room_id TEXT NOT NULL,
        inviter TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        received_ts INTEGER NOT NULL,
        is_direct INTEGER NOT NULL DEFAULT 1,
        announced INTEGER NOT NULL DEFAULT 0,
        kind TEXT NOT NULL DEFAULT 'invite' CHECK (kind IN ('invite', 'message')),
        PRIMARY KEY (room_id, inviter)
    );
    INSERT INTO requests_by_sender
        (room_id, inviter, display_name, received_ts, is_direct, announced)
        SELECT room_id, inviter, display_name, received_ts, is_direct, announced FROM requests;
    DROP TABLE requests;
    ALTER TABLE requests_by_sender RENAME TO requests;
    CREATE TABLE held (
        event_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        sender_name TEXT NOT NULL DEFAULT '',
        recipient TEXT,
        subject TEXT NOT NULL DEFAULT '',
        body TEXT NOT NULL,
        label TEXT NOT NULL,
        origin_ts INTEGER NOT NULL,
        reply_to TEXT,
        received_ts INTEGER NOT NULL
    );
    CREATE INDEX held_by_sender ON held (sender, origin_ts);
    CREATE TABLE accepted (user_id TEXT PRIMARY KEY, since_ts INTEGER NOT NULL);
    ALTER TABLE rooms ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: encrypted mail whose room key has not arrived yet: the event kept as it came, so it
    # is decrypted in place (same local id) once the key does; search follows a changed row
    """
    CREATE TABLE undecrypted (
        event_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        event TEXT NOT NULL,
        received_ts INTEGER NOT NULL
    );
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF subject, body, sender_name ON messages
    BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, subject, body, sender_name)
        VALUES ('delete', old.id, old.subject, old.body, old.sender_name);
        INSERT INTO messages_fts (rowid, subject, body, sender_name)
        VALUES (new.id, new.subject, new.body, new.sender_name);
    END;
    """,
    # 5: contacts' encryption devices, pinned on first use; a new or changed one is held
    """
    CREATE TABLE devices (
        user_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        ed25519 TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pinned', 'held')),
        seen_ts INTEGER NOT NULL,
        PRIMARY KEY (user_id, device_id)
    );
    """,
    # 6: mail encrypted by a device nobody verified, marked in its header; devices verified
    # by emoji (while their key stays the one verified)
    """
    ALTER TABLE messages ADD COLUMN unverified_device INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE held ADD COLUMN unverified_device INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN verified INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: a worker's commands (each message run at most once, stored before it is
    # acknowledged) and the Claude Code session each room's conversation resumes
    """
    CREATE TABLE worker_commands (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        room_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        prompt TEXT NOT NULL,
        state TEXT NOT NULL,
        created_ts INTEGER NOT NULL,
        started_ts INTEGER,
        ended_ts INTEGER,
        progress_event TEXT,
        process_group INTEGER
    );
    CREATE INDEX worker_commands_by_room ON worker_commands (room_id, state, id);
    CREATE TABLE worker_rooms (room_id TEXT PRIMARY KEY, claude_session TEXT NOT NULL);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection) -> None:
    """Bring a database of any earlier version up to SCHEMA_VERSION, one step per transaction."""
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for version in range(current, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have migrated while we waited for the write lock.
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) > version:
                conn.execute("COMMIT")
                continue
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
