"""Hook wall time: the hooks Claude Code runs on every tool call and prompt.

Ours: `<venv python> -I -S hooks/run.py <event>`, the command of hooks/hooks.json. Baseline:
`<venv python> -I -S -c pass` fed the same stdin, the interpreter start any hook pays.
Samples alternate baseline, ours.
- hook_idle / hook_idle_prompt: PostToolUse / UserPromptSubmit with nothing new.
- hook_mail: PostToolUse announcing one new message, committed and signalled before each
  run (not timed).
The session is an identity dir of its own with a real store filled through
claudematrix.store: the hooks read only local files, so no homeserver is involved.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import _janitor
from bench._env import HOOK, PYTHON, REPO, BenchError
from bench._stats import Dist, Row
from bench._world import Ctx
from bench.budgets import judge

__all__ = ["bench_hooks"]

_BARE = [PYTHON, "-I", "-S", "-c", "pass"]
_SESSION = "0b3c7c0e-5d1c-4a39-9a43-5f0c2e1d7a11"


def _payload(event: str) -> bytes:
    """Shaped like Claude Code 2.1.330's input (session_id first), with a realistic tool
    output: the hook reads its stdin, so the size matters."""
    body: dict[str, Any] = {
        "session_id": _SESSION,
        "transcript_path": f"/tmp/{_SESSION}.jsonl",
        "cwd": str(REPO),
        "prompt_id": "d09f4a34-486e-4a51-a525-4856e1956d5d",
        "permission_mode": "default",
        "hook_event_name": {"post-tool-use": "PostToolUse"}.get(event, "UserPromptSubmit"),
    }
    if event == "post-tool-use":
        body |= {
            "tool_name": "Bash",
            "tool_input": {"command": "ls -la src", "description": "List files"},
            "tool_response": {"stdout": "x" * 4000, "stderr": "", "interrupted": False},
            "tool_use_id": "toolu_4ef66e7a568c41afbf6c316a",
        }
    else:
        body["prompt"] = "please carry on with the parser"
    return json.dumps(body).encode()


def _timed(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, bytes]:
    """Wall ms of one run to its exit, and its stdout."""
    started = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, check=False)
    elapsed = (time.perf_counter() - started) * 1000
    if proc.returncode != 0:
        raise BenchError(f"{argv[-1]} exited {proc.returncode}: {proc.stderr[-300:]!r}")
    return elapsed, proc.stdout


class _Mailbox:
    """One session's identity dir with a real store, and new mail put into it on demand."""

    def __init__(self, home: Path) -> None:
        from claudematrix.ids import RoomID, UserID
        from claudematrix.store import Membership, RoomRecord, Store, SyncBatch

        self.dir = home / "identities" / _SESSION
        self.dir.mkdir(parents=True, mode=0o700)
        (self.dir / "account.json").write_text(json.dumps({"user_id": "@cc-0b3c7c0e:localhost"}))
        self.store = Store(self.dir / "store.db")
        self.store.set_setting("display_name", "claudematrix@main on bench (0b3c7c0e)")
        self.peer = UserID("@cc-alice:localhost")
        self.room = RoomID("!dm:localhost")
        lobby = RoomID("!lobby:localhost")
        self.store.commit_sync(
            SyncBatch(
                next_batch="s0",
                rooms=[RoomRecord(lobby, "lobby"), RoomRecord(self.room, "dm", self.peer)],
                memberships=[Membership(lobby, self.peer, "Alice", True)],
            )
        )
        self.sent = 0

    def new_mail(self) -> None:
        """Commit one message and signal it, as the session's sync loop does."""
        from claudematrix.ids import EventID
        from claudematrix.local.markers import signal_new_mail
        from claudematrix.store import SyncBatch
        from claudematrix.types import Direction, Label, Message

        self.sent += 1
        message = Message(
            event_id=EventID(f"$bench{self.sent}"),
            room_id=self.room,
            sender=self.peer,
            sender_name="parser@main on bench (alice)",
            direction=Direction.IN,
            subject=f"Review request {self.sent}: tokenizer",
            body="Could you review the tokenizer change? " * 5,
            label=Label.PRIVATE,
            origin_ts=int(time.time() * 1000),
        )
        ids = self.store.commit_sync(SyncBatch(next_batch=f"s{self.sent}", messages=[message]))
        signal_new_mail(self.dir, max(ids))


def _measure(
    event: str, mailbox: _Mailbox, env: dict[str, str], pairs: int, *, with_mail: bool
) -> tuple[Dist, Dist]:
    stdin = _payload(event)
    hook = [PYTHON, "-I", "-S", str(HOOK), event]
    for _ in range(5):  # warm the page cache and the bytecode caches
        _timed(_BARE, stdin, env)
        if with_mail:
            mailbox.new_mail()
        _timed(hook, stdin, env)
    bare = Dist("bare venv python -I -S -c pass", "ms")
    ours = Dist(f"hooks/run.py {event}", "ms")
    for _ in range(pairs):
        bare.samples.append(_timed(_BARE, stdin, env)[0])
        if with_mail:
            mailbox.new_mail()
        elapsed, out = _timed(hook, stdin, env)
        if with_mail and b"new message" not in out:
            raise BenchError(f"the hook announced nothing: {out[:300]!r}")
        if not with_mail and out:
            raise BenchError(f"the hook said something with nothing new: {out[:300]!r}")
        ours.samples.append(elapsed)
    return bare, ours


def bench_hooks(ctx: Ctx) -> list[Row]:
    pairs = 40 if ctx.quick else 200
    home = ctx.env.run_dir / "hooks-home"
    mailbox = _Mailbox(home)
    # What Claude Code gives a hook that matters here, and nothing of the bench's own world.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(ctx.env.run_dir),
        "CLAUDEMATRIX_HOME": str(home),
        "CLAUDE_CODE_SESSION_ATTENDED": "1",
        _janitor.MARKER_ENV: str(ctx.env.run_dir),
    }
    rows = []
    try:
        for rid, event, with_mail in (
            ("hook_idle", "post-tool-use", False),
            ("hook_idle_prompt", "user-prompt-submit", False),
            ("hook_mail", "post-tool-use", True),
        ):
            bare, ours = _measure(event, mailbox, env, pairs, with_mail=with_mail)
            note = f"{pairs} pairs; same stdin ({len(_payload(event))} bytes) for both"
            rows.append(judge(rid, bare, ours, note=note))
    finally:
        mailbox.store.close()
    return rows
