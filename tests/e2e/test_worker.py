"""A worker: a person's message in a Matrix room starts a real Claude Code run (the pinned CLI
against the scripted fake model), and its progress and outcome come back into the room.

The person is matrix-nio used directly (tests/support/person.py), in an encrypted DM as
Element makes one: an independent client, not our code. A session of the same machine that
was not allowed to command the worker is refused, and the model never hears of it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from claudematrix.homeserver import register_account
from e2e.support.claude_cli import Claude
from e2e.support.fake_model import FakeModel, Text, ToolUse, message_texts
from support.person import Person

pytestmark = pytest.mark.e2e

STEP_TIMEOUT = 90.0


def _cli(claude: Claude, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "claudematrix", *args],
        cwd=claude.project,
        env=claude.env(env),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"claudematrix {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _person(claude: Claude, tmp_path: Path, name: str) -> Person:
    state = Path(claude.env()["CLAUDEMATRIX_HOME"])
    url = json.loads(_cli(claude, "status", "--json"))["homeserver"]
    secret = (state / "homeserver" / "registration_shared_secret").read_text().strip()
    made = register_account(url, secret, f"{name}{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16))
    return Person(url, made.user_id, made.access_token, made.device_id, tmp_path / name)


def test_a_persons_command_runs_claude_code_and_streams_back(
    claude: Claude, fake_model: FakeModel, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    fake_model.script(
        [Text("Looking."), ToolUse("Bash", {"command": f"echo tool-ran-{tag}"})],
        Text(f"Finished **{tag}**."),
    )
    env = {"CLAUDEMATRIX_CLAUDE": str(claude.binary)}
    _cli(claude, "up")
    person = _person(claude, tmp_path, "person")
    started = _cli(
        claude, "worker", "start", "--project", str(claude.project), "--name", "w1",
        "--allow", person.user_id, "--allowed-tools", "Bash(echo:*)", "--json", env=env,
    )  # fmt: skip
    worker = str(json.loads(started)["user_id"])
    listed = json.loads(_cli(claude, "worker", "list", "--json"))
    assert [(w["name"], w["doing"]) for w in listed] == [("w1", "idle")]

    async def command() -> tuple[str, list[str]]:
        try:
            room = await person.open_encrypted_dm(worker)
            await person.wait_joined(room, worker)
            await person.send_text(room, f"please say hi {tag}")
            await person.sync_until(
                lambda: any(t.startswith("**done**") for t in person.bodies(room)),
                "the worker's final message",
                STEP_TIMEOUT,
            )
            return room, person.bodies(room)
        finally:
            await person.close()

    room, said = asyncio.run(command())
    # The run's progress was edited in place and named the tool call; the end came as its own
    # message with the outcome and the model's answer.
    edits = [t for t in said if t.startswith("* ")]
    assert any(f"Bash: echo tool-ran-{tag}" in t for t in edits), said
    final = [t for t in said if t.startswith("**done**")]
    assert final and f"Finished **{tag}**." in final[-1] and "cost $" in final[-1], said
    # The model saw the person's words, with who sent them and from where.
    first = "\n".join(message_texts(fake_model.turns()[0]))
    assert f"please say hi {tag}" in first and person.user_id in first
    assert "worker w1" in _cli(claude, "worker", "logs", "w1")
    assert "worker w1 stopped" in _cli(claude, "worker", "stop", "w1")
    assert json.loads(_cli(claude, "worker", "list", "--json")) == []
    assert room
