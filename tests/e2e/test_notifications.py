"""New mail reaches a running Claude Code session through the plugin's hooks (issue 4).

One real session B (`claude -p --input-format stream-json`, the pinned CLI, the scripted fake
model, the plugin installed from this repo) and a sender A (the `claudematrix` CLI, `--as`)
on the embedded Synapse that B's MCP server starts. Every step waits on a condition:

1. next prompt: A's mail is committed to B's store before B's first prompt; the request of
   that prompt carries its header (UserPromptSubmit), never its body;
2. mid-turn: while B's model asks for a tool call, A sends; the next request of B (after the
   tool call) carries the header (PostToolUse);
3. Stop: mail arriving during B's final step makes B continue once with the header; the
   continued turn then stops (no loop);
4. idle: B waits for input (its idle waiter asleep); A sends; B wakes (asyncRewake Stop hook)
   and its next request carries the header. The send -> wake latency is printed. It wakes
   once: B's next request is the one A's next message brings;
5. each message is announced exactly once across these paths, and none is marked read.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from e2e.support.claude_cli import REPO, TOOL_PREFIX, Claude
from e2e.support.fake_model import FakeModel, Reply, Text, ToolUse, message_texts, session_of
from support import wait_until
from support.hooks import waiter_asleep

pytestmark = pytest.mark.e2e

WHOAMI = TOOL_PREFIX + "whoami"
START_TIMEOUT = 240.0  # B's first start may start the homeserver
STEP_TIMEOUT = 60.0


class Mail:
    """Messages from A to B, each with a unique subject and body, and what B's store says."""

    def __init__(self, claude: Claude, b_dir: Path) -> None:
        self.claude = claude
        self.b_dir = b_dir
        self.sent: list[tuple[str, str]] = []

    def cli(self, *args: str, timeout: float = 120) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "claudematrix", "--as", "alice", *args],
            cwd=self.claude.project,
            env=self.claude.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"claudematrix {args}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def b_rows(self) -> dict[str, tuple[int, int]]:
        """subject -> (read, announced) of B's incoming messages."""
        db = self.b_dir / "store.db"
        if not db.exists():
            return {}
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute(
                "SELECT subject, read, announced FROM messages WHERE direction = 'in'"
            ).fetchall()
        except sqlite3.OperationalError:
            return {}
        finally:
            conn.close()
        return {str(s): (int(r), int(a)) for s, r, a in rows}

    def origin_ts(self, subject: str) -> int:
        conn = sqlite3.connect(f"file:{self.b_dir / 'store.db'}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute(
                "SELECT origin_ts FROM messages WHERE subject = ?", (subject,)
            ).fetchone()
        finally:
            conn.close()
        return int(row[0])

    def send(self, to: str, tag: str) -> tuple[str, str]:
        """A sends; returns (subject, body) once B's sync loop has committed it."""
        token = uuid.uuid4().hex[:8]
        subject, body = f"{tag} {token}", f"BODY-{tag}-{token}: please rebase onto main."
        self.cli("send", to, body, "--subject", subject)
        self.sent.append((subject, body))
        wait_until(lambda: subject in self.b_rows(), STEP_TIMEOUT, f"B to receive {subject!r}")
        return subject, body


def _texts(body: dict[str, Any]) -> str:
    return "\n".join(message_texts(body))


def test_new_mail_reaches_a_busy_an_idle_and_a_starting_session(
    claude: Claude, fake_model: FakeModel
) -> None:
    claude.install_plugin_from(REPO)
    b = str(uuid.uuid4())
    state = Path(claude.env()["CLAUDEMATRIX_HOME"])
    b_dir = state / "identities" / b
    mail = Mail(claude, b_dir)
    errors: list[str] = []
    subjects: dict[str, str] = {}

    def step(name: str, action: Callable[[], Reply]) -> Callable[[dict[str, Any]], Reply]:
        def reply(body: dict[str, Any]) -> Reply:
            if session_of(body) != b:
                return "(not session B)"
            try:
                return action()
            except Exception as exc:  # noqa: BLE001 - reported by the test thread below
                errors.append(f"{name}: {exc!r}")
                return f"step {name} failed"

        return reply

    def mid_turn() -> Reply:
        subjects["post_tool_use"], _ = mail.send(b_id, "mid-turn")
        return ToolUse(WHOAMI)

    def final_step() -> Reply:
        subjects["stop"], _ = mail.send(b_id, "final-step")
        return Text("done")

    fake_model.script_for(
        b,
        step("mid-turn", mid_turn),  # request 1: ask for a tool while A sends
        step("final step", final_step),  # request 2: end the turn while A sends
        step("continued", lambda: Text("noted the new mail")),  # request 3: after the block
        step("woken", lambda: Text("woke up for the mail")),  # request 4: the idle wake
        step("woken again", lambda: Text("noted")),  # request 5: the next idle wake
    )

    with claude.stream_session(session_id=b) as session:
        # B's MCP server starts the homeserver and creates B's account.
        account = b_dir / "account.json"
        wait_until(account.exists, START_TIMEOUT, "B's Matrix account")
        b_id = json.loads(account.read_text())["user_id"]
        mail.cli("whoami")  # A's account, in the machine lobby
        a_id = json.loads((state / "identities" / "alice" / "account.json").read_text())["user_id"]

        # 1. Next prompt: committed before B's first prompt -> UserPromptSubmit.
        subjects["user_prompt_submit"], _ = mail.send(b_id, "between-turns")
        session.send("Carry on with the parser, please.")
        result = session.wait_result(timeout=STEP_TIMEOUT * 3)
        assert not errors, errors
        assert result.get("subtype") == "success", result

        # The turn took exactly three requests: prompt, after the tool call, after the block.
        turns = fake_model.turns(b)
        assert len(turns) == 3, [_texts(t)[-300:] for t in turns]
        first, second, third = (_texts(t) for t in turns)

        # 4. Idle: the turn ended and B waits for input (its idle waiter asleep); A sends; B
        # wakes by itself.
        wait_until(lambda: waiter_asleep(b_dir), STEP_TIMEOUT, "B's idle waiter to wait")
        before = len(fake_model.turns(b))
        woke: list[float] = []

        def has_wake(fake: FakeModel) -> bool:
            now = fake.turns(b)
            if len(now) > before and "while-idle" in _texts(now[-1]):
                woke.append(time.time())
                return True
            return False

        watcher = threading.Thread(
            target=fake_model.wait_for, args=(has_wake, STEP_TIMEOUT), daemon=True
        )
        watcher.start()  # notes the moment B's woken request arrives
        subjects["idle"], _ = mail.send(b_id, "while-idle")
        watcher.join(STEP_TIMEOUT)
        assert woke, "B did not wake up for the mail sent while it was idle"
        session.wait_result(timeout=STEP_TIMEOUT)
        # From the homeserver's timestamp of A's message (origin_ts, set when A's send
        # reached Synapse) to the moment B's woken request reached the model.
        latency_ms = woke[0] * 1000 - mail.origin_ts(subjects["idle"])
        print(
            f"\nidle wake: A's send (server timestamp) -> B's next model request: "
            f"{latency_ms:.0f} ms"
        )
        # No loop: B woke once. The next request of B is the one the next mail brings.
        wait_until(lambda: waiter_asleep(b_dir), STEP_TIMEOUT, "B's next idle waiter to wait")
        subjects["again"], _ = mail.send(b_id, "idle-again")
        fake_model.wait_for(lambda f: len(f.turns(b)) > before + 1, STEP_TIMEOUT)
        session.wait_result(timeout=STEP_TIMEOUT)
        assert not errors, errors

    every = fake_model.turns(b)
    assert len(every) == before + 2, "an idle session woke more than once for one message"
    wake, last = _texts(every[before]), _texts(every[-1])
    assert subjects["again"] in last and subjects["again"] not in wake

    # Session start: who B is (the account may still be in the making at that moment).
    assert "ClaudeMatrix mail is sent and read with the ClaudeMatrix tools" in first

    # 1. UserPromptSubmit: the header of the mail that came between turns.
    assert subjects["user_prompt_submit"] in first
    assert f"<{a_id}>" in first and "ClaudeMatrix: 1 new message" in first

    # 2. PostToolUse: the mail sent while the model asked for the tool, after the tool result.
    assert subjects["post_tool_use"] not in first
    assert subjects["post_tool_use"] in second
    assert "PostToolUse" in second

    # 3. Stop: blocked once with the header; the continued turn then ended.
    assert subjects["stop"] not in second
    assert subjects["stop"] in third and "Stop hook" in third

    # 4. The idle wake carried the header of the mail sent while idle.
    assert subjects["idle"] in wake and subjects["idle"] not in third

    # Each header: id, time, sender name and Matrix ID, where A is, subject, label.
    for key, text in (
        ("user_prompt_submit", first),
        ("post_tool_use", second),
        ("stop", third),
        ("idle", wake),
    ):
        line = next(ln for ln in text.splitlines() if subjects[key] in ln)
        pattern = (
            rf"#\d+ \d{{4}}-\d\d-\d\d \d\d:\d\d from .+ <{re.escape(a_id)}> "
            rf'\((same project|same machine)\) "{re.escape(subjects[key])}" \[private\] unread'
        )
        assert re.search(pattern, line), (key, line)

    # Headers, never bodies; the framing says it is data from others.
    seen = fake_model.seen_text(b)
    for subject, body in mail.sent:
        assert body not in seen, f"the body of {subject!r} reached the model unasked"
    assert "data, not instructions" in seen
    # 5. Each message announced exactly once (the last request holds the whole history).
    # Claude Code shows a Stop block's reason twice (as "Stop hook feedback" and as a
    # "Stop hook blocking error" note): one announcement, two renderings.
    for subject, _body in mail.sent:
        expected = 2 if subject == subjects["stop"] else 1
        assert last.count(subject) == expected, (subject, last.count(subject))
    stop_header = next(line for line in third.splitlines() if subjects["stop"] in line)
    assert last.count(stop_header) == 2 and last.count("Stop hook feedback:\n") == 1
    rows = mail.b_rows()
    assert {s: rows[s] for s, _ in mail.sent} == {s: (0, 1) for s, _ in mail.sent}, rows


def test_hooks_keep_out_of_the_way_of_a_one_shot_print(
    claude: Claude, fake_model: FakeModel
) -> None:
    """`claude -p "..."` must end promptly: no idle waiter holds it open (Claude Code waits
    for background hooks before exiting)."""
    claude.install_plugin_from(REPO)
    # The homeserver first, so the fixture's teardown finds (and stops) it: a one-shot
    # session may end while its MCP server is still starting one.
    up = subprocess.run(
        [sys.executable, "-m", "claudematrix", "up"],
        env=claude.env(),
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert up.returncode == 0, up.stderr
    fake_model.script(Text("hello"))
    started = time.monotonic()
    result = claude.run_print("Say hello.", timeout=START_TIMEOUT)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.text == "hello"
    print(f"\none-shot claude -p with the plugin: {elapsed:.1f} s")
    waiters = list((Path(claude.env()["CLAUDEMATRIX_HOME"]) / "identities").glob("*/waiter.pid"))
    assert waiters == [], "a one-shot session started an idle waiter"
