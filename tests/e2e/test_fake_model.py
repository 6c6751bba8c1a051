"""The harness itself: the real `claude -p` against the scripted fake model (no plugin)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from e2e.support.claude_cli import Claude
from e2e.support.fake_model import FakeModel, ToolUse, session_of

pytestmark = pytest.mark.e2e


def test_print_returns_scripted_text_and_request_is_recorded(
    claude: Claude, fake_model: FakeModel
) -> None:
    fake_model.script("Hello from the fake model")
    sid = str(uuid.uuid4())

    result = claude.run_print("hi there, fake", session_id=sid)

    assert result.returncode == 0, result.stderr
    assert result.text == "Hello from the fake model"
    assert result.json["session_id"] == sid
    assert fake_model.pending == 0
    assert "hi there, fake" in fake_model.seen_text()
    assert [session_of(body) for body in fake_model.turns()] == [sid]
    assert fake_model.turns(sid) == fake_model.turns()


def test_responder_reacts_to_tool_results(claude: Claude, fake_model: FakeModel) -> None:
    """A callable reply sees each request: call a built-in tool until its result comes back."""

    def until_result(body: dict[str, Any]) -> ToolUse | str:
        done = [r for r in fake_model.tool_results() if "marker-42" in r["text"]]
        return "saw it" if done else ToolUse("Bash", {"command": "echo marker-42"})

    fake_model.default = until_result
    result = claude.run_print("run it", allowed_tools=["Bash(echo:*)"])

    assert result.returncode == 0, result.stderr
    assert result.text == "saw it"
    assert any("marker-42" in r["text"] for r in fake_model.tool_results())


def test_stream_session_stays_alive_between_turns(claude: Claude, fake_model: FakeModel) -> None:
    fake_model.script("first answer", "second answer")
    with claude.stream_session() as session:
        session.send("turn one")
        assert session.wait_result(timeout=60)["result"] == "first answer"
        assert session.proc.poll() is None  # idle, still running
        session.send("turn two")
        assert session.wait_result(timeout=60)["result"] == "second answer"
        assert session.init_event()["session_id"] == session.session_id
    texts = fake_model.seen_text()
    assert "turn one" in texts and "turn two" in texts
    assert {session_of(b) for b in fake_model.turns()} == {session.session_id}


def test_two_sessions_get_their_own_scripts(claude: Claude, fake_model: FakeModel) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    fake_model.script_for(a, "I am A")
    fake_model.script_for(b, "I am B")
    with claude.stream_session(session_id=a) as sa, claude.stream_session(session_id=b) as sb:
        sb.send("who are you, B?")
        sa.send("who are you, A?")
        fake_model.wait_for(lambda f: len(f.turns()) == 2, timeout=60)
        assert sa.wait_result()["result"] == "I am A"
        assert sb.wait_result()["result"] == "I am B"
    assert "who are you, A?" in fake_model.seen_text(a)
    assert "who are you, A?" not in fake_model.seen_text(b)
