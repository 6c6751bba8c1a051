"""What a session works on reaches other sessions: its task list, through the hooks.

A real `claude -p` session whose scripted model creates a task and starts it; another
identity on the machine then sees that task in `claudematrix contacts`. The model's last
reply waits for that, so the session (and its MCP server, which publishes) is still alive.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from typing import Any

import pytest

from e2e.support.claude_cli import MCP_SERVER, REPO, Claude
from e2e.support.fake_model import FakeModel, ToolUse, tool_results
from support import wait_until

pytestmark = pytest.mark.e2e

TASK = "Refactor the tokenizer error paths"
SEEN_WITHIN_S = 60.0


def _contacts(claude: Claude, as_name: str) -> list[dict[str, Any]]:
    proc = claude.claudematrix("--as", as_name, "contacts", "--json")
    assert proc.returncode == 0, proc.stderr
    value = json.loads(proc.stdout)
    assert isinstance(value, list)
    return value


def _task_of(claude: Claude, observer: str, user_id: str) -> str:
    for contact in _contacts(claude, observer):
        if contact["user_id"] == user_id:
            return str(contact.get("task") or "")
    return ""


def test_the_task_in_progress_shows_in_other_sessions_contacts(
    claude: Claude, fake_model: FakeModel
) -> None:
    claude.install_plugin_from(REPO)
    sid = str(uuid.uuid4())
    me = f"@cc-{sid[:8]}:localhost"
    observer = f"observer-{uuid.uuid4().hex[:6]}"
    seen: dict[str, str] = {}

    def start_the_task(body: dict[str, Any]) -> ToolUse:
        created = " ".join(r["text"] for r in tool_results(body))
        match = re.search(r"#(\w+)", created)
        return ToolUse(
            "TaskUpdate", {"taskId": match.group(1) if match else "1", "status": "in_progress"}
        )

    def observed() -> bool:
        seen["task"] = _task_of(claude, observer, me)
        return seen["task"] == TASK

    def wait_until_observed(_body: dict[str, Any]) -> str:
        with contextlib.suppress(AssertionError):  # what was seen is asserted below
            wait_until(observed, SEEN_WITHIN_S, "the observer to see the task")
        return "done"

    fake_model.script_for(
        sid,
        ToolUse("TaskCreate", {"subject": TASK, "description": "Make every error say what to do"}),
        start_the_task,
        wait_until_observed,
    )
    result = claude.run_print(
        "Plan the refactor",
        session_id=sid,
        allowed_tools=(MCP_SERVER, "TaskCreate", "TaskUpdate"),
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    failures = [r for r in fake_model.tool_results(sid) if r.get("is_error")]
    assert not failures, failures
    assert seen.get("task") == TASK, f"{observer} saw {seen.get('task')!r} for {me}"
