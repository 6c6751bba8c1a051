"""claudematrix.identity: who the CLI acts as (--as, else the Claude Code session, else the
owner), and the Matrix usernames it tries."""

from __future__ import annotations

import pytest

from claudematrix.errors import InvalidInput
from claudematrix.identity import OWNER, resolve_identity

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
