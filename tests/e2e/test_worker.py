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
from typing import Any

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
    """As the README has it: the person sets a password, starts a worker, and writes to it
    from a Matrix client of their own (a new device of their own account)."""
    tag = uuid.uuid4().hex[:8]
    fake_model.script(
        [Text("Looking."), ToolUse("Bash", {"command": f"echo tool-ran-{tag}"})],
        Text(f"Finished **{tag}**."),
    )
    env = {"CLAUDEMATRIX_CLAUDE": str(claude.binary)}
    _cli(claude, "up")
    secret = secrets.token_urlsafe(12)
    assert "password set for" in _cli(claude, "password", "--new-password", secret)
    owner = str(json.loads(_cli(claude, "whoami", "--json"))["user_id"])
    url = json.loads(_cli(claude, "status", "--json"))["homeserver"]
    person = asyncio.run(Person.another_device(url, owner, secret, tmp_path / "phone"))
    started = _cli(
        claude, "worker", "start", "--project", str(claude.project), "--name", "w1",
        "--allowed-tools", "Bash(echo:*)", "--json", env=env,
    )  # fmt: skip
    worker = str(json.loads(started)["user_id"])
    listed = json.loads(_cli(claude, "worker", "list", "--json"))
    assert [(w["name"], w["doing"]) for w in listed] == [("w1", "idle")]

    # Sessions of the machine find it in their contacts, by name, with its state.
    def in_contacts() -> dict[str, object]:
        found = json.loads(_cli(claude, "--as", "bob", "contacts", "--json"))
        return next((c for c in found if c["user_id"] == worker and c["status"]), {})

    seen = wait_until(in_contacts, STEP_TIMEOUT, "the worker in bob's contacts")
    assert (seen["short_name"], seen["status"]) == ("w1", "idle"), seen

    async def command() -> tuple[str, list[str]]:
        try:
            room = await _dm(person, worker)
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
    assert f"<strong>{tag}</strong>" in person.html.get(final[-1], "")  # Markdown for Element
    # The model saw the person's words, with who sent them and from where.
    first = "\n".join(message_texts(fake_model.turns()[0]))
    assert f"please say hi {tag}" in first and person.user_id in first
    assert "worker w1" in _cli(claude, "worker", "logs", "w1")
    assert "worker w1 stopped" in _cli(claude, "worker", "stop", "w1")
    assert json.loads(_cli(claude, "worker", "list", "--json")) == []
    assert room


async def _dm(person: Person, worker: str) -> str:
    """An encrypted DM with the worker, as a person's client opens one, once it has joined."""
    room = await person.open_encrypted_dm(worker)
    await person.wait_joined(room, worker)
    return room


def _turn(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of a request since the model last spoke: what it is asked now."""
    given = body.get("messages")
    messages = [m for m in given if isinstance(m, dict)] if isinstance(given, list) else []
    since = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1)
    return messages[since + 1 :]


def _this_turn(body: dict[str, Any]) -> list[str]:
    return message_texts({"messages": _turn(body)})


def _shell_runner(body: dict[str, Any]) -> Reply:
    """The fake model as a worker's runs need it: a command `run: <shell>` gets one Bash call
    of that shell, then an answer naming it; anything else is answered in words."""
    turn = _turn(body)
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
            room = await _dm(person, worker)
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
    _cli(claude, "--as", "bob", "send", "w1", "run: echo sneaky", "--subject", "sneaky")

    def refusal() -> str:
        mail = json.loads(_cli(claude, "--as", "bob", "inbox", "--all", "--json"))
        from_worker = [m for m in mail if m["from"] == worker]
        return _cli(claude, "--as", "bob", "read", str(from_worker[0]["id"])) if from_worker else ""

    assert "may not command the worker w1" in wait_until(refusal, STEP_TIMEOUT, "the refusal")
    assert fake_model.turns() == []

    # A stranger (an account on the homeserver, nobody's session) writes from a client of its
    # own: the mail waits in the worker's requests, unopened, and nothing runs.
    stranger = _person(claude, tmp_path, "stranger")

    async def stranger_writes() -> None:
        try:
            room = await stranger.open_encrypted_dm(worker)
            await stranger.send_text(room, "run: echo from a stranger")
        finally:
            await stranger.close()

    asyncio.run(stranger_writes())

    def held() -> list[dict[str, Any]]:
        waiting = json.loads(_cli(claude, "--as", "worker-w1", "requests", "--json"))
        return [r for r in waiting if stranger.user_id in json.dumps(r)]

    wait_until(held, STEP_TIMEOUT, "the stranger's mail held in the worker's requests")
    assert fake_model.turns() == []

    async def go() -> list[str]:
        try:
            room = await _dm(person, worker)
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
            # Stopping the worker cancels the run going, and says so in the room.
            await person.send_text(room, f"run: {SLOW}")
            await asyncio.to_thread(wait_until, lambda: bool(_sleepers()), 60, "a third run")
            await asyncio.to_thread(_cli, claude, "worker", "stop", "w1")
            await person.sync_until(
                lambda: len([t for t in person.bodies(room) if t.startswith("**cancelled**")]) == 2,
                "the run cancelled by the stop",
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


def test_two_rooms_run_at_once_and_a_run_killed_with_the_worker_is_reported(
    claude: Claude, fake_model: FakeModel, tmp_path: Path
) -> None:
    fake_model.default = _shell_runner
    _cli(claude, "up")
    one, two = _person(claude, tmp_path, "one"), _person(claude, tmp_path, "two")
    worker = _start_worker(claude, one.user_id, "--allow", two.user_id)
    tag = uuid.uuid4().hex[:6]
    state = Path(claude.env()["CLAUDEMATRIX_HOME"])

    def kill_the_daemon_and_start_it_again() -> None:
        pid = json.loads((state / "daemon.pid").read_text())["pid"]
        subprocess.run(["kill", "-9", str(pid)], check=True)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 15, "the daemon to die")
        _cli(claude, "worker", "list")  # starts the daemon again, and with it the worker

    async def scenario() -> list[str]:
        try:
            rooms = []
            for person in (one, two):
                rooms.append(await _dm(person, worker))
            await one.send_text(rooms[0], f"run: {_slow(f'a-{tag}', 30)}")
            await two.send_text(rooms[1], f"run: {_slow(f'b-{tag}', 30)}")
            # Both rooms' runs are going at the same moment.
            both = lambda: _running(f"a-{tag}") and _running(f"b-{tag}")  # noqa: E731
            await asyncio.to_thread(wait_until, both, STEP_TIMEOUT, "both runs at once")
            await one.send_text(rooms[0], f"run: echo after-{tag}")
            await one.sync_until(
                lambda: any(t.startswith("Queued:") for t in one.bodies(rooms[0])), "the ack"
            )
            await asyncio.to_thread(kill_the_daemon_and_start_it_again)
            gone = lambda: not _running(f"a-{tag}")  # noqa: E731
            await asyncio.to_thread(wait_until, gone, 30, "the killed run's process ended")

            def after_done() -> bool:
                return any(
                    f"after-{tag}" in t and t.startswith("**done**") for t in one.bodies(rooms[0])
                )

            await one.sync_until(after_done, "the queued command, after the restart", 120)
            return one.bodies(rooms[0])
        finally:
            await one.close()
            await two.close()

    said = asyncio.run(scenario())
    assert any(t.startswith("**interrupted**") for t in said), said
    # Not run again: the model was asked to start the killed command once.
    started = [t for t in fake_model.turns() if f"a-{tag}" in "\n".join(_this_turn(t))]
    assert len(started) == 1, len(started)


def _slow(marker: str, seconds: int) -> str:
    return f"python3 -c 'import time; time.sleep({seconds})' {marker}"


def _running(marker: str) -> bool:
    found = subprocess.run(["pgrep", "-f", f"time.sleep.*{marker}"], capture_output=True)
    return bool(found.stdout.split())


def test_a_runs_end_waits_out_a_homeserver_outage(
    claude: Claude, fake_model: FakeModel, tmp_path: Path
) -> None:
    """The homeserver is killed -9 while a run goes; the run's end, said while it is away,
    reaches the person once it is back."""
    fake_model.default = _shell_runner
    _cli(claude, "up")
    person = _person(claude, tmp_path, "person")
    worker = _start_worker(claude, person.user_id)
    tag = uuid.uuid4().hex[:6]
    state = Path(claude.env()["CLAUDEMATRIX_HOME"])

    def outage() -> None:
        pid = int((state / "homeserver" / "homeserver.pid").read_text().split()[0])
        subprocess.run(["kill", "-9", str(pid)], check=True)
        # The run ends while the homeserver is away: its end waits in the worker's outbox.
        wait_until(lambda: not _running(f"o-{tag}"), 60, "the run to end")
        _cli(claude, "up")

    async def scenario() -> list[str]:
        try:
            room = await _dm(person, worker)
            await person.send_text(room, f"run: {_slow(f'o-{tag}', 6)} && echo out-{tag}")
            await asyncio.to_thread(wait_until, lambda: _running(f"o-{tag}"), 60, "the run")
            await asyncio.to_thread(outage)
            await person.sync_until(
                lambda: any(t.startswith("**done**") for t in person.bodies(room)),
                "the run's end, after the outage",
                120,
            )
            return person.bodies(room)
        finally:
            await person.close()

    said = asyncio.run(scenario())
    assert any(f"out-{tag}" in t for t in said if t.startswith("**done**")), said
