"""A worker's tables in its identity's store: the commands it was given and each room's
Claude Code session. Facts only; what runs when is decided in claudematrix.worker."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from claudematrix.ids import EventID, RoomID, UserID

__all__ = ["WorkerTables", "Command", "WAITING", "RUNNING"]

WAITING = "queued"
RUNNING = "running"
_COLUMNS = (
    "id, event_id, room_id, sender, prompt, state, created_ts, started_ts, ended_ts, "
    "progress_event, process_group"
)


@dataclass(frozen=True)
class Command:
    id: int
    event_id: EventID
    room_id: RoomID
    sender: UserID
    prompt: str
    state: str  # queued, running, or how it ended: done, failed, timed out, cancelled, ...
    created_ts: int
    started_ts: int | None = None
    ended_ts: int | None = None
    progress_event: EventID | None = None
    process_group: int | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


class WorkerTables:
    _conn: sqlite3.Connection

    def add_command(
        self, event_id: EventID, room_id: RoomID, sender: UserID, prompt: str
    ) -> Command | None:
        """Store a command before anything else happens to it; None if that message was
        stored already (a replayed sync never runs anything twice)."""
        cursor = self._conn.execute(
            "INSERT OR IGNORE INTO worker_commands "
            "(event_id, room_id, sender, prompt, state, created_ts) VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, room_id, sender, prompt, WAITING, _now_ms()),
        )
        return self.command(int(cursor.lastrowid or 0)) if cursor.rowcount else None

    def command(self, command_id: int) -> Command | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM worker_commands WHERE id = ?", (command_id,)
        ).fetchone()
        return Command(*row) if row else None

    def commands_in(self, state: str) -> list[Command]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM worker_commands WHERE state = ? ORDER BY id", (state,)
        ).fetchall()
        return [Command(*r) for r in rows]

    def waiting_in(self, room_id: RoomID) -> list[Command]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM worker_commands WHERE room_id = ? AND state = ? ORDER BY id",
            (room_id, WAITING),
        ).fetchall()
        return [Command(*r) for r in rows]

    def ahead_of(self, command: Command) -> int:
        """How many commands of its room run or wait before it."""
        row = self._conn.execute(
            "SELECT count(*) FROM worker_commands WHERE room_id = ? AND id < ? AND state IN (?, ?)",
            (command.room_id, command.id, WAITING, RUNNING),
        ).fetchone()
        return int(row[0])

    def start_command(self, command_id: int, progress_event: EventID | None) -> None:
        self._conn.execute(
            "UPDATE worker_commands SET state = ?, started_ts = ?, progress_event = ? WHERE id = ?",
            (RUNNING, _now_ms(), progress_event, command_id),
        )

    def set_process_group(self, command_id: int, group: int | None) -> None:
        self._conn.execute(
            "UPDATE worker_commands SET process_group = ? WHERE id = ?", (group, command_id)
        )

    def end_command(self, command_id: int, outcome: str) -> None:
        self._conn.execute(
            "UPDATE worker_commands SET state = ?, ended_ts = ?, process_group = NULL WHERE id = ?",
            (outcome, _now_ms(), command_id),
        )

    def room_session(self, room_id: RoomID) -> str | None:
        row = self._conn.execute(
            "SELECT claude_session FROM worker_rooms WHERE room_id = ?", (room_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def set_room_session(self, room_id: RoomID, session: str) -> None:
        self._conn.execute(
            "INSERT INTO worker_rooms (room_id, claude_session) VALUES (?, ?) "
            "ON CONFLICT (room_id) DO UPDATE SET claude_session = excluded.claude_session",
            (room_id, session),
        )
