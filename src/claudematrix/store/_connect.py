"""Opening a store database: WAL so hooks read while the sync loop writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from claudematrix.errors import StateCorrupt

__all__ = ["connect"]


def connect(path: Path | str, *, readonly: bool = False) -> sqlite3.Connection:
    target = str(path)
    try:
        if readonly:
            conn = sqlite3.connect(
                f"file:{target}?mode=ro", uri=True, timeout=5.0, isolation_level=None
            )
        else:
            conn = sqlite3.connect(target, timeout=5.0, isolation_level=None)
            if target != ":memory:":
                Path(target).chmod(0o600)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StateCorrupt(
            f"the message store {target} cannot be opened ({exc}); move it aside and run "
            "the command again to resync from the homeserver"
        ) from None
    return conn
