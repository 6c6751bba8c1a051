"""Seeing a message land in sessions' stores from outside, cheaply and at once.

inotify (through ctypes) on each identity's directory wakes us when the store's WAL or the
mail.marker file is written; we then ask SQLite (read-only) whether the row is there. A short
fallback poll covers what inotify cannot see (the WAL index lives in shared memory) and
systems without inotify.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import sqlite3
import struct
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from bench._env import BenchError

__all__ = ["StoreWatch"]

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x8, 0x80, 0x100
_EVENT = struct.Struct("iIII")


def _inotify() -> tuple[int, Callable[[int, bytes, int], int]] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, AttributeError):
        return None
    if fd < 0:
        return None
    return fd, libc.inotify_add_watch


class StoreWatch:
    def __init__(self, dirs: Iterable[Path]) -> None:
        self.dirs = list(dirs)
        self._conns: dict[int, sqlite3.Connection] = {}
        self._wd: dict[int, int] = {}
        found = _inotify()
        self._fd = found[0] if found else None
        if found is not None:
            fd, add_watch = found
            mask = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
            for i, folder in enumerate(self.dirs):
                wd = add_watch(fd, str(folder).encode(), mask)
                if wd >= 0:
                    self._wd[wd] = i

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _conn(self, i: int) -> sqlite3.Connection | None:
        conn = self._conns.get(i)
        if conn is None:
            path = self.dirs[i] / "store.db"
            if not path.exists():
                return None
            conn = sqlite3.connect(
                f"file:{path}?mode=ro",
                uri=True,
                timeout=5.0,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA busy_timeout=5000")
            self._conns[i] = conn
        return conn

    def count(self, i: int, prefix: str) -> int:
        """Messages in store i whose body starts with `prefix`."""
        conn = self._conn(i)
        if conn is None:
            return 0
        try:
            row = conn.execute(
                "SELECT count(*) FROM messages WHERE body LIKE ?", (prefix + "%",)
            ).fetchone()
        except sqlite3.OperationalError:  # not migrated yet, or busy
            return 0
        return int(row[0])

    def row_id(self, i: int, prefix: str) -> int | None:
        """Local id of the newest message in store i whose body starts with `prefix`."""
        conn = self._conn(i)
        if conn is None:
            return None
        try:
            row = conn.execute(
                "SELECT max(id) FROM messages WHERE body LIKE ?", (prefix + "%",)
            ).fetchone()
        except sqlite3.OperationalError:
            return None
        return int(row[0]) if row and row[0] is not None else None

    def marker(self, i: int) -> int:
        """The newest local id the sync loop has announced in mail.marker (0 if none)."""
        try:
            text = (self.dirs[i] / "mail.marker").read_text().strip()
        except OSError:
            return 0
        return int(text) if text.isdigit() else 0

    def _touched(self, timeout: float) -> set[int] | None:
        """Indices whose directory changed, or None if the wait ended without an event."""
        if self._fd is None:
            time.sleep(timeout)
            return None
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return None
        touched: set[int] = set()
        try:
            data = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return touched
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            if wd in self._wd:
                touched.add(self._wd[wd])
        return touched

    def wait(
        self,
        check: Callable[[int], bool],
        indices: Iterable[int],
        timeout: float,
        what: str,
        poll: float = 0.005,
        abort: Callable[[], str | None] | None = None,
    ) -> dict[int, float]:
        """time.monotonic() at which check(i) first held, for every index; BenchError late.

        `abort`, asked every round, returns a reason to give up at once (a sender failed).
        """
        pending = set(indices)
        seen: dict[int, float] = {}
        deadline = time.monotonic() + timeout

        def look(candidates: Iterable[int]) -> None:
            for i in list(candidates):
                if i in pending and check(i):
                    seen[i] = time.monotonic()
                    pending.discard(i)

        look(list(pending))
        last_full = time.monotonic()
        while pending:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                raise BenchError(
                    f"timed out after {timeout:g} s waiting for {what} "
                    f"({len(pending)} of {len(seen) + len(pending)} stores still without it)"
                )
            reason = abort() if abort is not None else None
            if reason:
                raise BenchError(f"gave up waiting for {what}: {reason}")
            touched = self._touched(min(poll, left))
            if touched is None or time.monotonic() - last_full >= poll:
                look(list(pending))  # the fallback poll: every store, every `poll` seconds
                last_full = time.monotonic()
            else:
                look(touched & pending)
        return seen
