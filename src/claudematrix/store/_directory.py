"""Directory tables of a store: people, room members, published profiles, trust, blocks,
and message requests. Facts only; who counts as what audience is decided in service/."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from claudematrix.ids import RoomID, UserID

__all__ = [
    "DirectoryTables",
    "Person",
    "Membership",
    "Profile",
    "Presence",
    "Request",
    "Device",
]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Person:
    user_id: UserID
    display_name: str = ""
    last_seen_ts: int | None = None


@dataclass(frozen=True)
class Membership:
    room_id: RoomID
    user_id: UserID
    display_name: str
    joined: bool


@dataclass(frozen=True)
class Profile:
    """What a user published about themselves in a room (their own state event)."""

    user_id: UserID
    room_id: RoomID
    content: dict[str, Any]
    updated_ts: int


@dataclass(frozen=True)
class Presence:
    user_id: UserID
    last_active_ts: int
    ttl_ms: int
    online: bool

    def is_online(self, now_ms: int) -> bool:
        return self.online and now_ms - self.last_active_ts <= self.ttl_ms


@dataclass(frozen=True)
class Request:
    """Someone outside my audience who wants to talk: an invitation I have not joined
    (kind "invite"), or messages they wrote in a room I am in, held unopened ("message")."""

    room_id: RoomID
    inviter: UserID
    display_name: str
    received_ts: int
    is_direct: bool = True
    announced: bool = False
    kind: str = "invite"


_LOOKUP_CHUNK = 500  # bound variables per query, well under SQLite's limit


@dataclass(frozen=True)
class Device:
    """A contact's encryption device as I know it: pinned (sent to) or held (new or changed
    since I pinned, not sent to until the person confirms it)."""

    user_id: UserID
    device_id: str
    ed25519: str
    state: str  # "pinned" | "held"
    verified: bool = False  # by emoji (`claudematrix verify`), for this very key


class DirectoryTables:
    _conn: sqlite3.Connection

    # --- written inside a sync transaction ----------------------------------------------

    @staticmethod
    def _apply_directory(
        conn: sqlite3.Connection,
        people: Sequence[Person],
        memberships: Sequence[Membership],
        profiles: Sequence[Profile],
        presence: Sequence[Presence] = (),
    ) -> None:
        for pr_ in presence:
            conn.execute(
                "INSERT INTO presence (user_id, last_active_ts, ttl_ms, online) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                "last_active_ts = excluded.last_active_ts, ttl_ms = excluded.ttl_ms, "
                "online = excluded.online WHERE excluded.last_active_ts >= presence.last_active_ts",
                (pr_.user_id, pr_.last_active_ts, pr_.ttl_ms, int(pr_.online)),
            )
        for p in people:
            conn.execute(
                "INSERT INTO people (user_id, display_name, last_seen_ts) VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET display_name = CASE "
                "WHEN excluded.display_name != '' THEN excluded.display_name "
                "ELSE people.display_name END, "
                "last_seen_ts = MAX(COALESCE(excluded.last_seen_ts, 0), "
                "COALESCE(people.last_seen_ts, 0))",
                (p.user_id, p.display_name, p.last_seen_ts),
            )
        for m in memberships:
            if m.joined:
                conn.execute(
                    "INSERT INTO members (room_id, user_id, display_name) VALUES (?, ?, ?) "
                    "ON CONFLICT (room_id, user_id) DO UPDATE SET "
                    "display_name = excluded.display_name",
                    (m.room_id, m.user_id, m.display_name),
                )
            else:
                conn.execute(
                    "DELETE FROM members WHERE room_id = ? AND user_id = ?",
                    (m.room_id, m.user_id),
                )
        for pr in profiles:
            if pr.content:
                conn.execute(
                    "INSERT INTO profiles (user_id, room_id, content, updated_ts) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                    "room_id = excluded.room_id, content = excluded.content, "
                    "updated_ts = excluded.updated_ts "
                    "WHERE excluded.updated_ts >= profiles.updated_ts",
                    (pr.user_id, pr.room_id, json.dumps(pr.content), pr.updated_ts),
                )
            else:  # withdrawn (secret mode): forget what they published there
                conn.execute(
                    "DELETE FROM profiles WHERE user_id = ? AND room_id = ?",
                    (pr.user_id, pr.room_id),
                )

    # --- people -------------------------------------------------------------------------

    def people(self) -> dict[UserID, Person]:
        rows = self._conn.execute(
            "SELECT user_id, display_name, last_seen_ts FROM people"
        ).fetchall()
        return {UserID(r[0]): Person(UserID(r[0]), r[1], r[2]) for r in rows}

    def members(self, room_id: RoomID) -> dict[UserID, str]:
        rows = self._conn.execute(
            "SELECT user_id, display_name FROM members WHERE room_id = ?", (room_id,)
        ).fetchall()
        return {UserID(r[0]): r[1] for r in rows}

    def display_names(
        self, users: Collection[UserID]
    ) -> tuple[dict[UserID, str], dict[UserID, str]]:
        """For `users` only: the names they published in a profile, and the names their
        memberships carry (a sync looks up its senders, not the whole directory)."""
        wanted = sorted(set(users))
        published: dict[UserID, str] = {}
        names: dict[UserID, str] = {}
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for user, content in self._conn.execute(
                f"SELECT user_id, content FROM profiles WHERE user_id IN ({marks})", chunk
            ):
                data = json.loads(content)
                if isinstance(data, dict) and data.get("display_name"):
                    published[UserID(user)] = str(data["display_name"])
            for user, name in self._conn.execute(
                f"SELECT user_id, display_name FROM people WHERE user_id IN ({marks})", chunk
            ):
                if name:
                    names[UserID(user)] = str(name)
        return published, names

    def publishers(self, users: Collection[UserID]) -> set[UserID]:
        """Which of `users` publish a ClaudeMatrix profile (sessions do; people do not)."""
        if not users:
            return set()
        marks = ",".join("?" * len(users))
        rows = self._conn.execute(
            f"SELECT DISTINCT user_id FROM profiles WHERE user_id IN ({marks})", tuple(users)
        ).fetchall()
        return {UserID(r[0]) for r in rows}

    def profiles(self) -> dict[UserID, Profile]:
        rows = self._conn.execute(
            "SELECT user_id, room_id, content, updated_ts FROM profiles"
        ).fetchall()
        return {
            UserID(r[0]): Profile(UserID(r[0]), RoomID(r[1]), json.loads(r[2]), int(r[3]))
            for r in rows
        }

    def presence(self) -> dict[UserID, Presence]:
        rows = self._conn.execute(
            "SELECT user_id, last_active_ts, ttl_ms, online FROM presence"
        ).fetchall()
        return {
            UserID(r[0]): Presence(UserID(r[0]), int(r[1]), int(r[2]), bool(r[3])) for r in rows
        }

    # --- trust and blocks: changed only by the person, never by a message -----------------

    def trusted(self) -> set[UserID]:
        return {UserID(r[0]) for r in self._conn.execute("SELECT user_id FROM trust")}

    def set_trusted(self, user_id: UserID, trusted: bool) -> None:
        if trusted:
            self._conn.execute(
                "INSERT OR IGNORE INTO trust (user_id, since_ts) VALUES (?, ?)",
                (user_id, _now_ms()),
            )
        else:
            self._conn.execute("DELETE FROM trust WHERE user_id = ?", (user_id,))

    def blocked(self) -> set[UserID]:
        return {UserID(r[0]) for r in self._conn.execute("SELECT user_id FROM blocks")}

    def set_blocked(self, user_id: UserID, blocked: bool) -> None:
        if blocked:
            self._conn.execute(
                "INSERT OR IGNORE INTO blocks (user_id, since_ts) VALUES (?, ?)",
                (user_id, _now_ms()),
            )
            self._conn.execute("DELETE FROM trust WHERE user_id = ?", (user_id,))
            self._conn.execute("DELETE FROM accepted WHERE user_id = ?", (user_id,))
        else:
            self._conn.execute("DELETE FROM blocks WHERE user_id = ?", (user_id,))

    # --- requests: invitations from outside my audience, held unopened ---------------------

    def add_request(self, request: Request) -> None:
        self._insert_requests(self._conn, [request])

    @staticmethod
    def _insert_requests(conn: sqlite3.Connection, requests: Sequence[Request]) -> None:
        for r in requests:
            conn.execute(
                "INSERT OR IGNORE INTO requests (room_id, inviter, display_name, received_ts, "
                "is_direct, kind) VALUES (?, ?, ?, ?, ?, ?)",
                (r.room_id, r.inviter, r.display_name, r.received_ts, int(r.is_direct), r.kind),
            )

    def requests(self) -> list[Request]:
        rows = self._conn.execute(
            "SELECT room_id, inviter, display_name, received_ts, is_direct, announced, kind "
            "FROM requests ORDER BY received_ts DESC"
        ).fetchall()
        return [
            Request(RoomID(r[0]), UserID(r[1]), r[2], int(r[3]), bool(r[4]), bool(r[5]), r[6])
            for r in rows
        ]

    def drop_requests_from(self, user_id: UserID) -> list[Request]:
        found = [r for r in self.requests() if r.inviter == user_id]
        self._conn.execute("DELETE FROM requests WHERE inviter = ?", (user_id,))
        return found

    # --- whom I accepted mail from although they are outside my audience -------------------

    def accepted(self) -> set[UserID]:
        return {UserID(r[0]) for r in self._conn.execute("SELECT user_id FROM accepted")}

    def set_accepted(self, user_id: UserID, accepted: bool) -> None:
        if accepted:
            self._conn.execute(
                "INSERT OR IGNORE INTO accepted (user_id, since_ts) VALUES (?, ?)",
                (user_id, _now_ms()),
            )
        else:
            self._conn.execute("DELETE FROM accepted WHERE user_id = ?", (user_id,))

    # --- contacts' encryption devices (pinned on first use) --------------------------------

    def devices(self, user_id: UserID | None = None) -> list[Device]:
        query = "SELECT user_id, device_id, ed25519, state, verified FROM devices"
        args: tuple[str, ...] = ()
        if user_id is not None:
            query += " WHERE user_id = ?"
            args = (user_id,)
        rows = self._conn.execute(query + " ORDER BY user_id, seen_ts", args).fetchall()
        return [Device(UserID(r[0]), str(r[1]), str(r[2]), str(r[3]), bool(r[4])) for r in rows]

    def note_devices(self, found: Sequence[Device]) -> None:
        """Record devices as decided (a held one keeps the key it was held with)."""
        self._conn.executemany(
            "INSERT INTO devices (user_id, device_id, ed25519, state, seen_ts) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, device_id) DO UPDATE SET "
            "verified = devices.verified AND devices.ed25519 = excluded.ed25519, "
            "ed25519 = excluded.ed25519, state = excluded.state",
            [(d.user_id, d.device_id, d.ed25519, d.state, _now_ms()) for d in found],
        )

    def verified_device(self, user_id: UserID, device_id: str, ed25519: str) -> None:
        """Verified by emoji: pinned, and marked verified while its key stays this one."""
        self._conn.execute(
            "INSERT INTO devices (user_id, device_id, ed25519, state, seen_ts, verified) "
            "VALUES (?, ?, ?, 'pinned', ?, 1) ON CONFLICT (user_id, device_id) DO UPDATE SET "
            "ed25519 = excluded.ed25519, state = 'pinned', verified = 1",
            (user_id, device_id, ed25519, _now_ms()),
        )

    def confirm_device(self, user_id: UserID, device_id: str) -> bool:
        """The person confirmed a held device: pinned from now on. False if none was held."""
        cursor = self._conn.execute(
            "UPDATE devices SET state = 'pinned' WHERE user_id = ? AND device_id = ? "
            "AND state = 'held'",
            (user_id, device_id),
        )
        return cursor.rowcount > 0
