"""Who the CLI acts as, and how state files are written and read."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from claudematrix.errors import InvalidInput, StateCorrupt
from claudematrix.identity import OWNER, resolve_identity
from claudematrix.paths import read_json, state_dir, write_json_private

SESSION = "1a2b3c4d-0000-4000-8000-00000000abcd"


def test_identity_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    owner = resolve_identity(None)
    assert owner.name == OWNER and owner.is_owner
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", SESSION)
    session = resolve_identity(None)
    assert session.name == SESSION and session.from_session_env and not session.is_owner
    assert session.short == "1a2b3c4d"
    assert session.localpart_candidates()[0] == "cc-1a2b3c4d"
    chosen = resolve_identity("reviewer")  # --as wins over the session variable
    assert chosen.name == "reviewer" and not chosen.from_session_env
    assert chosen.localpart_candidates()[0] == "cc-reviewer"
    assert resolve_identity("owner").is_owner


def test_bad_session_names_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidInput):
        resolve_identity("../escape")
    monkeypatch.setenv("CLAUDE_CODE_SESSION_ID", "not/a/session")
    with pytest.raises(InvalidInput):
        resolve_identity(None)


def test_localpart_candidates_are_distinct() -> None:
    candidates = resolve_identity("Team.Lead").localpart_candidates()
    assert len(set(candidates)) == 3
    assert candidates[0] == "cc-team.lead"


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
