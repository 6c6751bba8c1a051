"""Store: messages, rooms, the sync token, settings and the outbox of one identity."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from claudematrix.errors import UnknownMessage
from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.local import mailbox
from claudematrix.store._connect import connect
from claudematrix.store._directory import (
    DirectoryTables,
    Membership,
    Person,
    Presence,
    Profile,
    Request,
)
from claudematrix.store._worker import WorkerTables
from claudematrix.store.migrations import migrate
from claudematrix.types import Direction, Label, Message

__all__ = ["Store", "SyncBatch", "RoomRecord"]


@dataclass(frozen=True)
class RoomRecord:
    room_id: RoomID
    kind: str  # 'dm' | 'lobby' | 'project' | 'circle' | 'public' | 'other'
    peer: UserID | None = None
    joined: bool = True
    # Nobody but its owner (me, or this machine's account) can bring anyone in: made by us
    # with owner-only power levels, and no other creator. Its members change only by us.
    sealed: bool = False


@dataclass
class SyncBatch:
    """Everything one /sync response changes; committed together with its token."""

    next_batch: str | None
    messages: list[Message] = field(default_factory=list)
    rooms: list[RoomRecord] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    memberships: list[Membership] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    presence: list[Presence] = field(default_factory=list)
    # Mail from senders outside my audience: kept unopened, announced only as a request.
    held: list[Message] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    # Encrypted events not readable yet (event id, room, the event as JSON); their
    # placeholders are in messages or held.
    undecrypted: list[tuple[EventID, RoomID, str]] = field(default_factory=list)


UNDECRYPTED_KEPT = 500  # encrypted events kept for keys that may still come, newest first

_MESSAGE_COLUMNS = (
    "id, event_id, room_id, sender, sender_name, recipient, direction, subject, body, label, "
    "origin_ts, reply_to, read, announced, unverified_device"
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _row_to_message(row: sqlite3.Row) -> Message:
    return Message(
        local_id=int(row["id"]),
        event_id=EventID(row["event_id"]),
        room_id=RoomID(row["room_id"]),
        sender=UserID(row["sender"]),
        sender_name=row["sender_name"],
        recipient=UserID(row["recipient"]) if row["recipient"] else None,
        direction=Direction(row["direction"]),
        subject=row["subject"],
        body=row["body"],
        label=Label(row["label"]),
        origin_ts=int(row["origin_ts"]),
        reply_to=EventID(row["reply_to"]) if row["reply_to"] else None,
        read=bool(row["read"]),
        announced=bool(row["announced"]),
        unverified_device=bool(row["unverified_device"]),
    )


def _fts_query(text: str) -> str:
    """Every word must appear; quoting keeps FTS5 operators in user text literal."""
    words = [w.replace('"', '""') for w in text.split()]
    return " ".join(f'"{w}"' for w in words)


class Store(DirectoryTables, WorkerTables):
    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._conn = connect(path)
        migrate(self._conn)

    @classmethod
    def in_memory(cls) -> Store:
        return cls(":memory:")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # --- sync -------------------------------------------------------------------------

    def next_batch(self) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'next_batch'").fetchone()
        return str(row[0]) if row else None

    def commit_sync(self, batch: SyncBatch) -> list[int]:
        """Commit a sync response atomically. Returns local ids of new incoming messages."""
        with self._transaction() as conn:
            new_ids = self._insert_messages(conn, batch.messages)
            for room in batch.rooms:
                conn.execute(
                    "INSERT INTO rooms (room_id, kind, peer, joined, sealed) "
                    "VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (room_id) DO UPDATE SET kind = excluded.kind, "
                    "peer = COALESCE(excluded.peer, rooms.peer), joined = excluded.joined, "
                    "sealed = MAX(rooms.sealed, excluded.sealed)",
                    (room.room_id, room.kind, room.peer, int(room.joined), int(room.sealed)),
                )
            self._apply_directory(
                conn, batch.people, batch.memberships, batch.profiles, batch.presence
            )
            self._hold(conn, batch.held)
            self._insert_requests(conn, batch.requests)
            received = _now_ms()
            conn.executemany(
                "INSERT OR IGNORE INTO undecrypted (event_id, room_id, event, received_ts) "
                "VALUES (?, ?, ?, ?)",
                [(e, r, raw, received) for e, r, raw in batch.undecrypted],
            )
            if batch.undecrypted:
                # Every arrival of keys tries them all again: a sender who fills the table
                # with ciphertext nobody can open must not make that unbounded. The oldest
                # go; their placeholders stay, saying the message was not readable.
                conn.execute(
                    "DELETE FROM undecrypted WHERE event_id NOT IN (SELECT event_id FROM "
                    "undecrypted ORDER BY received_ts DESC, rowid DESC LIMIT ?)",
                    (UNDECRYPTED_KEPT,),
                )
            if batch.next_batch is not None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('next_batch', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (batch.next_batch,),
                )
        return new_ids

    def _insert_messages(self, conn: sqlite3.Connection, messages: Iterable[Message]) -> list[int]:
        new_ids: list[int] = []
        received = _now_ms()
        for m in messages:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO messages (event_id, room_id, sender, sender_name, "
                "recipient, direction, subject, body, label, origin_ts, received_ts, reply_to, "
                "read, unverified_device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    m.event_id,
                    m.room_id,
                    m.sender,
                    m.sender_name,
                    m.recipient,
                    m.direction.value,
                    m.subject,
                    m.body,
                    m.label.value,
                    m.origin_ts,
                    received,
                    m.reply_to,
                    int(m.read or m.direction is Direction.OUT),
                    int(m.unverified_device),
                ),
            )
            if cursor.rowcount and m.direction is Direction.IN:
                new_ids.append(int(cursor.lastrowid or 0))
        return new_ids

    @staticmethod
    def _hold(conn: sqlite3.Connection, messages: Iterable[Message]) -> None:
        received = _now_ms()
        for m in messages:
            conn.execute(
                "INSERT OR IGNORE INTO held (event_id, room_id, sender, sender_name, recipient, "
                "subject, body, label, origin_ts, reply_to, received_ts, unverified_device) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    m.event_id,
                    m.room_id,
                    m.sender,
                    m.sender_name,
                    m.recipient,
                    m.subject,
                    m.body,
                    m.label.value,
                    m.origin_ts,
                    m.reply_to,
                    received,
                    int(m.unverified_device),
                ),
            )

    # --- encrypted mail whose key came late ------------------------------------------------

    def undecrypted(self) -> list[tuple[EventID, RoomID, str]]:
        rows = self._conn.execute(
            "SELECT event_id, room_id, event FROM undecrypted ORDER BY received_ts, rowid"
        ).fetchall()
        return [(EventID(r[0]), RoomID(r[1]), str(r[2])) for r in rows]

    def decrypted_late(self, messages: list[Message]) -> list[int]:
        """Put the readable text in place of each placeholder (inbox or held), as new mail
        again; returns the local ids of the inbox rows that changed."""
        changed: list[int] = []
        with self._transaction() as conn:
            for m in messages:
                fields = (
                    m.subject,
                    m.body,
                    m.label.value,
                    m.reply_to,
                    int(m.unverified_device),
                    m.event_id,
                )
                row = conn.execute(
                    "UPDATE messages SET subject = ?, body = ?, label = ?, reply_to = ?, "
                    "unverified_device = ?, read = 0, announced = 0 WHERE event_id = ? "
                    "RETURNING id",
                    fields,
                ).fetchone()
                if row is not None:
                    changed.append(int(row[0]))
                conn.execute(
                    "UPDATE held SET subject = ?, body = ?, label = ?, reply_to = ?, "
                    "unverified_device = ? WHERE event_id = ?",
                    fields,
                )
                conn.execute("DELETE FROM undecrypted WHERE event_id = ?", (m.event_id,))
        return changed

    def release_held(self, sender: UserID) -> list[int]:
        """Move the mail held from `sender` into the inbox (once accepted); new local ids."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT event_id, room_id, sender, sender_name, recipient, subject, body, label, "
                "origin_ts, reply_to, unverified_device FROM held WHERE sender = ? "
                "ORDER BY origin_ts",
                (sender,),
            ).fetchall()
            messages = [
                Message(
                    event_id=EventID(r["event_id"]),
                    room_id=RoomID(r["room_id"]),
                    sender=UserID(r["sender"]),
                    sender_name=r["sender_name"],
                    recipient=UserID(r["recipient"]) if r["recipient"] else None,
                    direction=Direction.IN,
                    subject=r["subject"],
                    body=r["body"],
                    label=Label(r["label"]),
                    origin_ts=int(r["origin_ts"]),
                    reply_to=EventID(r["reply_to"]) if r["reply_to"] else None,
                    unverified_device=bool(r["unverified_device"]),
                )
                for r in rows
            ]
            new_ids = self._insert_messages(conn, messages)
            conn.execute("DELETE FROM held WHERE sender = ?", (sender,))
        return new_ids

    def drop_held(self, sender: UserID) -> int:
        """Forget what `sender` wrote while held (they were blocked)."""
        return self._conn.execute("DELETE FROM held WHERE sender = ?", (sender,)).rowcount

    def held_count(self, sender: UserID | None = None) -> int:
        where, params = ("WHERE sender = ?", (sender,)) if sender else ("", ())
        return int(self._conn.execute(f"SELECT count(*) FROM held {where}", params).fetchone()[0])

    def has_event(self, event_id: EventID) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM messages WHERE event_id = ? UNION ALL "
            "SELECT 1 FROM held WHERE event_id = ?",
            (event_id, event_id),
        )
        return row.fetchone() is not None

    # --- whose store this is --------------------------------------------------------------

    def own_user_id(self) -> UserID | None:
        """The Matrix ID this store belongs to, as recorded when it was first connected."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'user_id'").fetchone()
        if row:
            return UserID(row[0])
        # Stores from before the ID was recorded: my own sent mail says who I am.
        row = self._conn.execute(
            "SELECT sender FROM messages WHERE direction = 'out' ORDER BY id LIMIT 1"
        ).fetchone()
        return UserID(row[0]) if row else None

    def set_own_user_id(self, user_id: UserID) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('user_id', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (user_id,),
        )

    def has_history(self) -> bool:
        """Has this identity ever been connected (a sync token, mail, or a recorded ID)?"""
        return bool(
            self._conn.execute(
                "SELECT 1 FROM meta WHERE key IN ('user_id', 'next_batch') "
                "UNION ALL SELECT 1 FROM messages LIMIT 1"
            ).fetchone()
        )

    # --- settings of this identity (mode, published display name) ----------------------

    def setting(self, key: str) -> str | None:
        return mailbox.setting(self._conn, key)

    def set_setting(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ("setting:" + key, value),
        )

    # --- reading ----------------------------------------------------------------------

    def inbox(self, *, include_read: bool = False, limit: int = 50) -> list[Message]:
        """Incoming messages, newest first."""
        where = "direction = 'in'" + ("" if include_read else " AND read = 0")
        rows = self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {where} ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [_row_to_message(r) for r in rows]

    def incoming_after(self, last_id: int, *, limit: int = 100) -> list[Message]:
        """Incoming messages stored after the one with id `last_id`, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE direction = 'in' AND id > ? "
            "ORDER BY id LIMIT ?",
            (last_id, limit),
        ).fetchall()
        return [_row_to_message(r) for r in rows]

    def newest_id(self) -> int:
        row = self._conn.execute("SELECT max(id) FROM messages").fetchone()
        return int(row[0] or 0)

    def message(self, ref: str) -> Message:
        """A message by its short local id or its Matrix event id."""
        ref = ref.strip()
        if ref.isdigit():
            row = self._conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (int(ref),)
            ).fetchone()
        else:
            row = self._conn.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE event_id = ?", (ref,)
            ).fetchone()
        if row is None:
            raise UnknownMessage(
                f"no message {ref!r} here: run `claudematrix inbox --all` to see message ids"
            )
        return _row_to_message(row)

    def mark_read(self, local_id: int) -> None:
        self._conn.execute("UPDATE messages SET read = 1 WHERE id = ?", (local_id,))

    def search(self, query: str, *, limit: int = 20) -> list[Message]:
        fts = _fts_query(query)
        if not fts:
            return []
        # Newest matches are chosen on the full-text index itself; sorting every match
        # after the join costs ~100 ms at 100k messages.
        columns = ", ".join("m." + c.strip() for c in _MESSAGE_COLUMNS.split(","))
        rows = self._conn.execute(
            f"SELECT {columns} FROM (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? "
            "ORDER BY rowid DESC LIMIT ?) hits JOIN messages m ON m.id = hits.rowid "
            "ORDER BY m.id DESC",
            (fts, limit),
        ).fetchall()
        return [_row_to_message(r) for r in rows]

    def unread_count(self) -> int:
        return mailbox.unread_count(self._conn)

    def where(self, user: UserID) -> str:
        """Where `user` stands by the rooms and trust this store knows of (a value of
        claudematrix.types.Audience short of "self"): the hooks' own query."""
        return mailbox.audiences(self._conn, {user}).get(user, "remote")

    def mark_announced(self, up_to_id: int) -> None:
        self._conn.execute(
            "UPDATE messages SET announced = 1 WHERE announced = 0 AND id <= ?", (up_to_id,)
        )

    # --- rooms ------------------------------------------------------------------------

    def dm_room(self, peer: UserID) -> RoomID | None:
        row = self._conn.execute(
            "SELECT room_id FROM rooms WHERE kind = 'dm' AND peer = ? AND joined = 1 "
            "ORDER BY rowid DESC LIMIT 1",
            (peer,),
        ).fetchone()
        return RoomID(row[0]) if row else None

    def room(self, room_id: RoomID) -> RoomRecord | None:
        row = self._conn.execute(
            "SELECT room_id, kind, peer, joined, sealed FROM rooms WHERE room_id = ?",
            (room_id,),
        ).fetchone()
        if row is None:
            return None
        peer = UserID(row["peer"]) if row["peer"] else None
        return RoomRecord(
            RoomID(row["room_id"]), row["kind"], peer, bool(row["joined"]), bool(row["sealed"])
        )

    def save_room(self, room: RoomRecord) -> None:
        self.commit_sync(SyncBatch(next_batch=None, rooms=[room]))

    def forget_rooms(self) -> None:
        """Rooms, their members and the sync position belong to one account: forgotten when
        the identity moves to a new one (its mail stays)."""
        with self._transaction() as conn:
            for table in ("rooms", "members", "profiles", "presence"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("DELETE FROM meta WHERE key IN ('next_batch', 'user_id')")
            conn.execute("DELETE FROM meta WHERE key LIKE 'setting:published%'")

    def rename_users(self, renamed: dict[UserID, UserID]) -> None:
        """Accounts that moved to new Matrix IDs (a homeserver renamed): their mail, trust,
        blocks and acceptance follow them; the devices pinned for the old IDs go."""
        with self._transaction() as conn:
            for old, new in renamed.items():
                conn.execute("UPDATE messages SET sender = ? WHERE sender = ?", (new, old))
                conn.execute("UPDATE messages SET recipient = ? WHERE recipient = ?", (new, old))
                for table in ("people", "trust", "blocks", "accepted"):
                    conn.execute(
                        f"UPDATE OR REPLACE {table} SET user_id = ? WHERE user_id = ?", (new, old)
                    )
                conn.execute("DELETE FROM devices WHERE user_id = ?", (old,))

    def lobby_room(self) -> RoomID | None:
        rooms = self.rooms_of_kind("lobby")
        return rooms[0] if rooms else None

    def rooms_of_kind(self, kind: str) -> list[RoomID]:
        rows = self._conn.execute(
            "SELECT room_id FROM rooms WHERE kind = ? AND joined = 1 ORDER BY rowid", (kind,)
        ).fetchall()
        return [RoomID(r[0]) for r in rows]

    def dm_rooms(self) -> dict[UserID, RoomID]:
        rows = self._conn.execute(
            "SELECT peer, room_id FROM rooms WHERE kind = 'dm' AND joined = 1 ORDER BY rowid"
        ).fetchall()
        return {UserID(r[0]): RoomID(r[1]) for r in rows if r[0]}

    # --- outbox: a send survives a crash and is retried with the same transaction id ----

    def outbox_add(self, txn_id: str, room_id: RoomID, recipient: str, content: str) -> None:
        self._conn.execute(
            "INSERT OR IGNORE INTO outbox (txn_id, room_id, recipient, content, created_ts) "
            "VALUES (?, ?, ?, ?, ?)",
            (txn_id, room_id, recipient, content, _now_ms()),
        )

    def outbox_pending(self) -> list[tuple[str, RoomID, str, str]]:
        rows = self._conn.execute(
            "SELECT txn_id, room_id, recipient, content FROM outbox ORDER BY created_ts"
        ).fetchall()
        return [(r[0], RoomID(r[1]), r[2], r[3]) for r in rows]

    def outbox_remove(self, txn_id: str) -> None:
        self._conn.execute("DELETE FROM outbox WHERE txn_id = ?", (txn_id,))

    def outbox_done(self, txn_id: str, sent: Message) -> None:
        with self._transaction() as conn:
            self._insert_messages(conn, [sent])
            conn.execute("DELETE FROM outbox WHERE txn_id = ?", (txn_id,))
