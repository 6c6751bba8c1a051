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
from e2e.support.fake_model import FakeModel, Reply, Text, ToolUse, message_texts, tool_results
from support import wait_until
from support.person import Person

pytestmark = pytest.mark.e2e

STEP_TIMEOUT = 90.0
# A command that takes a minute (Claude Code refuses or backgrounds a plain long `sleep`).
SLOW = "python3 -c 'import time; time.sleep(60)' slow-run-marker"


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


def _shell_runner(body: dict[str, object]) -> Reply:
    """The fake model as a worker's runs need it: a command `run: <shell>` gets one Bash call
    of that shell, then an answer naming it; anything else is answered in words."""
    given = body.get("messages")
    messages = [m for m in given if isinstance(m, dict)] if isinstance(given, list) else []
    since = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    turn = messages[since + 1 :]
    blocks = [b for m in turn if isinstance(m.get("content"), list) for b in m["content"]]
    if any(isinstance(b, dict) and b.get("type") == "tool_result" for b in blocks):
        return Text(f"ran it: {tool_results(body)[-1]['text'].strip()}")
    texts = message_texts({"messages": turn})
    commands = [line for t in texts for line in t.splitlines() if line.startswith("run: ")]
    if commands:
        return ToolUse("Bash", {"command": commands[-1].removeprefix("run: ").strip()})
    asked = [line for t in texts for line in t.splitlines() if line.strip()]
    return Text("answered: " + (asked[-1] if asked else ""))


def _start_worker(claude: Claude, allow: str, *more: str) -> str:
    started = _cli(
        claude, "worker", "start", "--project", str(claude.project), "--name", "w1",
        "--allow", allow, "--allowed-tools", "Bash", *more, "--json",
        env={"CLAUDEMATRIX_CLAUDE": str(claude.binary)},
    )  # fmt: skip
    return str(json.loads(started)["user_id"])


def _finals(person: Person, room: str) -> list[str]:
    return [t for t in person.bodies(room) if t.startswith("**") and " in " in t.split("\n")[0]]


def test_the_queue_runs_in_order_and_a_room_resumes_its_conversation(
    claude: Claude, fake_model: FakeModel, tmp_path: Path
) -> None:
    fake_model.default = _shell_runner
    _cli(claude, "up")
    person = _person(claude, tmp_path, "person")
    worker = _start_worker(claude, person.user_id)
    tag = uuid.uuid4().hex[:6]

    async def go() -> list[str]:
        try:
            room = await person.open_encrypted_dm(worker)
            await person.wait_joined(room, worker)
            await person.send_text(room, f"run: sleep 2 && echo first-{tag}")
            await person.send_text(room, f"run: echo second-{tag}")
            await person.send_text(room, f"remember third-{tag}")
            await person.sync_until(lambda: len(_finals(person, room)) >= 3, "3 runs", 120)
            return person.bodies(room)
        finally:
            await person.close()

    said = asyncio.run(go())
    acks = [t for t in said if t.startswith("Queued:")]
    assert acks == [
        "Queued: 1 ahead of it in this room. It runs when they are done.",
        "Queued: 2 ahead of it in this room. It runs when they are done.",
    ], said
    finals = [t for t in said if t.startswith("**done**")]
    assert [f"first-{tag}" in finals[0], f"second-{tag}" in finals[1]] == [True, True], finals
    turns = fake_model.turns()
    firsts = [t for t in turns if len(t.get("messages", [])) >= 1]
    # The third command's run resumed the room's conversation: the model saw the first two.
    last = "\n".join(message_texts(firsts[-1]))
    assert f"first-{tag}" in last and f"second-{tag}" in last and f"third-{tag}" in last


def test_a_stranger_is_refused_and_cancel_and_timeout_stop_a_run(
    claude: Claude, fake_model: FakeModel, tmp_path: Path
) -> None:
    fake_model.default = _shell_runner
    _cli(claude, "up")
    person = _person(claude, tmp_path, "person")
    worker = _start_worker(claude, person.user_id, "--timeout", "6")
    # A session of this machine, not allowed: one short refusal, and no run at all.
    _cli(claude, "--as", "bob", "send", worker, "run: echo sneaky", "--subject", "sneaky")

    def refusal() -> str:
        mail = json.loads(_cli(claude, "--as", "bob", "inbox", "--all", "--json"))
        from_worker = [m for m in mail if m["from"] == worker]
        return _cli(claude, "--as", "bob", "read", str(from_worker[0]["id"])) if from_worker else ""

    assert "may not command the worker w1" in wait_until(refusal, STEP_TIMEOUT, "the refusal")
    assert fake_model.turns() == []

    async def go() -> list[str]:
        try:
            room = await person.open_encrypted_dm(worker)
            await person.wait_joined(room, worker)
            await person.send_text(room, f"run: {SLOW}")
            await person.sync_until(
                lambda: any(t.startswith("Running:") for t in person.bodies(room)), "a run", 60
            )
            await person.send_text(room, "cancel")
            await person.sync_until(
                lambda: any(t.startswith("**cancelled**") for t in person.bodies(room)),
                "the cancelled run",
                60,
            )
            await person.send_text(room, f"run: {SLOW}")
            await person.sync_until(
                lambda: any(t.startswith("**timed out**") for t in person.bodies(room)),
                "the run stopped by its timeout",
                60,
            )
            return person.bodies(room)
        finally:
            await person.close()

    said = asyncio.run(go())
    assert "Cancelling the run." in said
    assert not _sleepers()  # no run's process is left behind


def _sleepers() -> list[str]:
    found = subprocess.run(["pgrep", "-f", "slow-run-marker"], capture_output=True, text=True)
    return found.stdout.split()
