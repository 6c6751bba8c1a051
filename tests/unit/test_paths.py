"""claudematrix.paths: the state dir is private, and state files are written privately and
atomically, and read back; a corrupt one is moved aside, never lost."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from claudematrix.errors import StateCorrupt
from claudematrix.paths import read_json, state_dir, write_json_private


def test_state_dir_is_private(isolated_home: Path) -> None:
    isolated_home.mkdir(mode=0o755, parents=True)
    assert state_dir() == isolated_home
    assert stat.S_IMODE(isolated_home.stat().st_mode) == 0o700


def test_write_json_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "account.json"
    write_json_private(path, {"user_id": "@a:b"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_json(path) == {"user_id": "@a:b"}
    assert read_json(tmp_path / "absent.json") is None
    assert [p.name for p in path.parent.iterdir()] == ["account.json"]  # no temp files left


def test_corrupt_json_is_moved_aside_never_lost(tmp_path: Path) -> None:
    path = tmp_path / "account.json"
    path.write_text("{not json")
    with pytest.raises(StateCorrupt) as caught:
        read_json(path)
    assert "moved to account.json.corrupt" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not path.exists()
    assert (tmp_path / "account.json.corrupt").read_text() == "{not json"
    write_json_private(path, {"ok": True})
    assert json.loads(path.read_text()) == {"ok": True}
