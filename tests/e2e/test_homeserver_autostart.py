"""A Claude Code session starts the embedded homeserver itself; concurrent sessions share one.

Real `claude -p` (pinned CLI) with the plugin from the local marketplace, the scripted fake
model calling `whoami`, and the real Synapse that the MCP server starts in CLAUDEMATRIX_HOME.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from e2e.support.claude_cli import REPO, TOOL_PREFIX, Claude, PrintResult
from e2e.support.fake_model import FakeModel, ToolUse
from support.synapse import kill_synapses, synapse_pids

pytestmark = pytest.mark.e2e

WHOAMI = TOOL_PREFIX + "whoami"
MATRIX_ID = re.compile(r"Matrix ID: (@[a-z0-9._=/+-]+:[A-Za-z0-9.:-]+)")
SESSION_TIMEOUT = 180.0  # includes the homeserver's start-up, which the MCP server waits for


def _state_dir(claude: Claude) -> Path:
    return Path(claude.env()["CLAUDEMATRIX_HOME"])


def _pid_file(claude: Claude) -> Path:
    return _state_dir(claude) / "homeserver" / "homeserver.pid"


def _synapse_pids(claude: Claude) -> set[int]:
    return set(synapse_pids(_state_dir(claude)))


def _claudematrix(claude: Claude, *args: str) -> subprocess.CompletedProcess[str]:
    return claude.claudematrix(*args)


def _status(claude: Claude) -> dict[str, Any]:
    proc = _claudematrix(claude, "homeserver", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    value = json.loads(proc.stdout)
    assert isinstance(value, dict), proc.stdout
    return value


def _tool_text(fake: FakeModel, session_id: str, call: ToolUse) -> str:
    """What the model got back for `call` (unwrapping FastMCP's {"result": ...}, which Claude
    Code 2.1.330 shows instead of the text; see test_two_sessions.py)."""
    found = [r for r in fake.tool_results(session_id) if r.get("tool_use_id") == call.id]
    assert found, f"no tool result for {call.name} in session {session_id}"
    assert not found[0].get("is_error"), found[0]
    text = str(found[0]["text"])
    with contextlib.suppress(ValueError):
        value = json.loads(text)
        if isinstance(value, dict) and isinstance(value.get("result"), str):
            text = value["result"]
    return text


def _matrix_id(text: str) -> str:
    match = MATRIX_ID.search(text)
    assert match, f"no Matrix ID in whoami's result:\n{text}"
    return match.group(1)


def _ok(result: PrintResult) -> PrintResult:
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def _whoami_session(claude: Claude, fake: FakeModel) -> tuple[str, ToolUse]:
    """Script one new session's model to call whoami, then end. Returns (session id, call)."""
    sid, call = str(uuid.uuid4()), ToolUse(WHOAMI)
    fake.script_for(sid, call, "that is me")
    return sid, call


def _run(claude: Claude, sid: str) -> PrintResult:
    return claude.run_print("Who am I on Matrix?", session_id=sid, timeout=SESSION_TIMEOUT)


class _Watch:
    """Every Synapse pid of the home seen while running (polled until stopped)."""

    def __init__(self, claude: Claude) -> None:
        self.claude = claude
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.seen |= _synapse_pids(self.claude)
            if self._stop.wait(0.05):
                return

    def __enter__(self) -> _Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.seen |= _synapse_pids(self.claude)


@pytest.fixture
def plugin(claude: Claude) -> Iterator[Claude]:
    """The plugin installed (the `claude` fixture gave it a free port, not the default 18008).
    At the end, after the harness's stop (`claudematrix down`), no Synapse of this home may
    survive."""
    claude.install_plugin_from(REPO)
    try:
        yield claude
    finally:
        claude.stop_all()  # sessions, then `claudematrix down` if there is a pid file
        kill_synapses(_state_dir(claude))  # last resort: a Synapse without a pid file


def test_session_starts_the_homeserver(plugin: Claude, fake_model: FakeModel) -> None:
    assert not _pid_file(plugin).exists()
    assert not _synapse_pids(plugin)
    assert _status(plugin)["running"] is False

    sid, call = _whoami_session(plugin, fake_model)
    _ok(_run(plugin, sid))

    assert _matrix_id(_tool_text(fake_model, sid, call)).startswith("@cc-")
    state = _status(plugin)
    assert state["running"] is True, state
    assert state["url"] == f"http://127.0.0.1:{plugin.env_extra['CLAUDEMATRIX_PORT']}"
    pid = int(_pid_file(plugin).read_text())
    assert state["pid"] == pid and _synapse_pids(plugin) == {pid}
    # The homeserver outlives the session that started it (it is shared by all sessions).


@pytest.mark.parametrize("before", ["never started", "stopped"])
def test_concurrent_sessions_share_one_homeserver(
    plugin: Claude, fake_model: FakeModel, before: str
) -> None:
    if before == "stopped":
        up = _claudematrix(plugin, "up", "--json")
        assert up.returncode == 0 and json.loads(up.stdout)["running"] is True, up.stderr
        down = _claudematrix(plugin, "down")
        assert down.returncode == 0, down.stderr
    assert not _synapse_pids(plugin) and not _pid_file(plugin).exists()
    assert _status(plugin)["running"] is False

    sessions = [_whoami_session(plugin, fake_model) for _ in range(2)]
    with _Watch(plugin) as watch, ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda s: _run(plugin, s[0]), sessions))
    for result in results:
        _ok(result)

    users = [_matrix_id(_tool_text(fake_model, sid, call)) for sid, call in sessions]
    assert len(set(users)) == 2 and all(u.startswith("@cc-") for u in users), users
    state = _status(plugin)
    assert state["running"] is True, state
    pid = int(_pid_file(plugin).read_text())
    assert state["pid"] == pid
    assert watch.seen == {pid}, f"Synapse processes seen: {sorted(watch.seen)} (pid file {pid})"
    assert _synapse_pids(plugin) == {pid}
