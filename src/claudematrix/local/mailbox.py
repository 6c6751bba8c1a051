"""The store queries the hooks run, and that claudematrix.store runs through the same code
(schema: claudematrix/store/migrations.py).

The hooks do not import claudematrix.store: it pulls in dataclasses, typing and the message
types (~20 ms), several times a hook's budget. They open the existing database (never create
it), read headers (never bodies), and flip `announced` in one write transaction, so two hooks
racing for the same mail announce it once. The Store reads unread counts, settings and where
a sender stands with these same functions, on its own connection.
"""

from __future__ import annotations

import sqlite3

from claudematrix.local.headers import NEWEST, Header
from claudematrix.local.layout import STORE_DB

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~7 ms
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["connect", "claim", "unread_count", "setting", "audiences"]

_BUSY_TIMEOUT_S = 2.0
_HEADER_COLUMNS = "id, sender, sender_name, subject, label, origin_ts, read, unverified_device"
_UNANNOUNCED = "announced = 0 AND direction = 'in'"


def _uri(path: str) -> str:
    return "file:" + path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def connect(identity: str) -> sqlite3.Connection | None:
    """The session's store, or None if it does not exist (yet) or has no schema."""
    try:
        conn = sqlite3.connect(
            _uri(identity + "/" + STORE_DB) + "?mode=rw",
            uri=True,
            timeout=_BUSY_TIMEOUT_S,
            isolation_level=None,
        )
    except sqlite3.OperationalError:
        return None
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) < 1:
        conn.close()
        return None
    # As the store's own connection: in WAL mode, no fsync per commit (an `announced` flag
    # lost to a power cut only means the header is said again).
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def claim(
    conn: sqlite3.Connection,
    say: Callable[[list[Header], int, list[tuple[str, str]], int], str | None],
    limit: int = NEWEST,
) -> str | None:
    """Mark every unannounced incoming message and message request announced (never read),
    and return what `say` makes of them.

    `say(headers, count, requests, asked)` gets the newest `limit` message headers (newest
    first), how many messages there are, the newest `limit` requests as (inviter, display
    name), and how many requests there are. It runs inside the write transaction: if it
    fails, nothing is marked, so nothing is announced without being said.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        rows = conn.execute(
            f"SELECT {_HEADER_COLUMNS} FROM messages WHERE {_UNANNOUNCED} ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        count = 0
        if rows:
            newest = int(rows[0][0])
            count = int(
                conn.execute(
                    f"SELECT count(*) FROM messages WHERE {_UNANNOUNCED} AND id <= ?", (newest,)
                ).fetchone()[0]
            )
            conn.execute(
                f"UPDATE messages SET announced = 1 WHERE {_UNANNOUNCED} AND id <= ?", (newest,)
            )
        requests: list[tuple[str, str]] = []
        asked = 0
        if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= 2:
            found = conn.execute(
                "SELECT inviter, display_name FROM requests WHERE announced = 0 "
                "ORDER BY received_ts DESC"
            ).fetchall()
            asked = len(found)
            requests = [(str(r[0]), str(r[1])) for r in found[:limit]]
            if found:
                conn.execute("UPDATE requests SET announced = 1 WHERE announced = 0")
        headers = [
            Header(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                str(r[4]),
                int(r[5]),
                bool(r[6]),
                bool(r[7]),
            )
            for r in rows
        ]
        text = say(headers, count, requests, asked) if headers or requests else None
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return text


def unread_count(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM messages WHERE direction = 'in' AND read = 0"
    ).fetchone()
    return int(row[0])


def setting(conn: sqlite3.Connection, key: str) -> str | None:
    """A per-identity setting as claudematrix.store.Store.setting reads it."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", ("setting:" + key,)).fetchone()
    return str(row[0]) if row else None


# Nearness as claudematrix.service.directory.Directory.audience_of decides it (self and the
# owner are checked by the caller): a shared project room, else the machine lobby, else trust.
_WHERE = """
SELECT CASE
  WHEN EXISTS (SELECT 1 FROM members m JOIN rooms r ON r.room_id = m.room_id
               WHERE m.user_id = :user AND r.kind = 'project' AND r.joined = 1)
    THEN 'same project'
  WHEN EXISTS (SELECT 1 FROM members m JOIN rooms r ON r.room_id = m.room_id
               WHERE m.user_id = :user AND r.kind = 'lobby' AND r.joined = 1)
    THEN 'same machine'
  WHEN EXISTS (SELECT 1 FROM trust WHERE user_id = :user) THEN 'trusted remote'
  ELSE 'remote'
END
"""


def audiences(conn: sqlite3.Connection, users: set[str]) -> dict[str, str]:
    """Where each user stands (values of claudematrix.types.Audience)."""
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) < 2:
        return {}
    return {u: str(conn.execute(_WHERE, {"user": u}).fetchone()[0]) for u in sorted(users)}
