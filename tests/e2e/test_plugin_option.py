"""The plugin's `mode` option, set at install, makes every new session start in that mode:
through Claude Code's own plugin settings, .mcp.json and the MCP server, before the session
joins or publishes anything."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from e2e.support.claude_cli import PLUGIN_ID, REPO, TOOL_PREFIX, Claude
from e2e.support.fake_model import FakeModel, ToolUse, tool_results

pytestmark = pytest.mark.e2e

WHOAMI = TOOL_PREFIX + "whoami"


def test_the_mode_option_makes_new_sessions_secret(claude: Claude, fake_model: FakeModel) -> None:
    claude.marketplace_add(REPO)
    claude.run("plugin", "install", PLUGIN_ID, "--config", "mode=secret")
    session = str(uuid.uuid4())
    fake_model.script_for(session, ToolUse(WHOAMI), "noted")
    result = claude.run_print("Who am I?", session_id=session, timeout=240)
    assert result.returncode == 0, result.stderr
    (answer,) = [r["text"] for body in fake_model.turns(session) for r in tool_results(body)]
    assert "Mode: secret" in answer, answer
    # Never in the lobby: no machine room in its store, nothing published.
    state = Path(claude.env()["CLAUDEMATRIX_HOME"]) / "identities" / session
    with sqlite3.connect(f"file:{state / 'store.db'}?mode=ro", uri=True) as db:
        kinds = [k for (k,) in db.execute("SELECT kind FROM rooms WHERE joined = 1")]
        published = db.execute("SELECT value FROM meta WHERE key LIKE 'setting:published:%'")
        assert kinds == [] and all(json.loads(v) == [] for (v,) in published), kinds
