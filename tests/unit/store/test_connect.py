"""claudematrix.store._connect: opening a store file: private, WAL, and a file that is no
database reported, never overwritten."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from claudematrix.errors import StateCorrupt
from claudematrix.store import Store


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
