"""The hooks as Claude Code runs them (`<venv python> -I -S hooks/run.py <event>`, JSON on
stdin), and a session's identity dir with a store to run them against.

`World` sets an identity up the way the service leaves it after connecting (account.json,
its own Matrix ID and mode in the store, the rooms its sync found), and adds mail the way the
sync loop does (a commit, then the mail marker).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.local.markers import signal_new_mail
from claudematrix.store import Membership, RoomRecord, Store, SyncBatch
from claudematrix.types import Direction, Label, Message
from support import REPO

__all__ = [
    "RUN",
    "HOOKS_JSON",
    "PYTHON",
    "SID",
    "ME",
    "ALICE",
    "LOBBY",
    "DM",
    "BODY",
    "Ran",
    "hook_env",
    "payload",
    "run_hook",
    "World",
    "log_text",
]

RUN = REPO / "hooks" / "run.py"
HOOKS_JSON = REPO / "hooks" / "hooks.json"
PYTHON = sys.executable
SID = "5f82e2e0-e660-43ec-9df2-366ee9107b38"
ME = UserID("@cc-5f82e2e0:localhost")
ALICE = UserID("@cc-alice:localhost")
LOBBY = RoomID("!lobby:localhost")
DM = RoomID("!dm:localhost")
BODY = "THE-BODY-MUST-NOT-LEAK"

EVENT_NAMES = {
    "session-start": "SessionStart",
    "user-prompt-submit": "UserPromptSubmit",
    "post-tool-use": "PostToolUse",
    "stop": "Stop",
    "stop-wait": "Stop",
    "session-end": "SessionEnd",
}


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> dict[str, Any]:
        value = json.loads(self.stdout) if self.stdout.strip() else {}
        assert isinstance(value, dict)
        return value

    @property
    def context(self) -> str:
        return str(self.output.get("hookSpecificOutput", {}).get("additionalContext", ""))


def hook_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without Claude Code's variables, as an attended session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE")}
    env["CLAUDEMATRIX_HOME"] = os.environ["CLAUDEMATRIX_HOME"]
    env["CLAUDE_CODE_SESSION_ATTENDED"] = "1"
    env.update(extra or {})
    return env


def payload(event: str, sid: str = SID, **fields: Any) -> dict[str, Any]:
    """A hook's input as Claude Code writes it."""
    return {
        "session_id": sid,
        "transcript_path": f"/tmp/{sid}.jsonl",
        "cwd": "/tmp",
        "permission_mode": "default",
        "hook_event_name": EVENT_NAMES[event],
        **fields,
    }


def run_hook(
    event: str,
    data: dict[str, Any] | bytes | None = None,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 20,
) -> Ran:
    raw = data if isinstance(data, bytes) else json.dumps(data or payload(event)).encode()
    started = time.perf_counter()
    proc = subprocess.run(
        [PYTHON, "-I", "-S", str(RUN), event],
        input=raw,
        capture_output=True,
        env=hook_env(env),
        timeout=timeout,
    )
    return Ran(
        proc.returncode,
        proc.stdout.decode(),
        proc.stderr.decode(),
        time.perf_counter() - started,
    )


class World:
    """One session's identity dir, as the service leaves it: an account, a store that knows
    its own Matrix ID and mode, and a lobby and a DM shared with Alice."""

    def __init__(self, home: Path, sid: str = SID) -> None:
        self.home = home
        self.sid = sid
        self.dir = home / "identities" / sid
        self.dir.mkdir(parents=True, mode=0o700)
        self.store = Store(self.dir / "store.db")
        self._n = 0
        (self.dir / "account.json").write_text(json.dumps({"user_id": ME}))
        self.store.set_own_user_id(ME)  # Service._adopt
        self.store.set_setting("mode", Label.PRIVATE.value)  # Service._settle_initial_mode
        self.store.commit_sync(
            SyncBatch(
                next_batch="s0",
                rooms=[RoomRecord(LOBBY, "lobby"), RoomRecord(DM, "dm", ALICE)],
                memberships=[Membership(LOBBY, ALICE, "Alice", True)],
            )
        )

    def mail(
        self,
        subject: str = "Review request",
        *,
        sender: UserID = ALICE,
        name: str = "proj@main on vm (alice)",
        count: int = 1,
        signal: bool = True,
    ) -> list[int]:
        """Commit `count` incoming messages, then (unless not `signal`) signal new mail."""
        messages = []
        for _ in range(count):
            self._n += 1
            messages.append(
                Message(
                    event_id=EventID(f"$e{self._n}"),
                    room_id=DM,
                    sender=sender,
                    sender_name=name,
                    direction=Direction.IN,
                    subject=subject,
                    body=BODY,
                    label=Label.PRIVATE,
                    origin_ts=int(time.time() * 1000),
                    recipient=ME,
                )
            )
        ids = self.store.commit_sync(SyncBatch(next_batch=f"s{self._n}", messages=messages))
        if signal:
            signal_new_mail(self.dir, max(ids))
        return ids

    def flags(self) -> list[tuple[int, int, int]]:
        """(id, read, announced) of every incoming message."""
        conn = sqlite3.connect(self.dir / "store.db")
        try:
            rows = conn.execute(
                "SELECT id, read, announced FROM messages WHERE direction = 'in' ORDER BY id"
            ).fetchall()
        finally:
            conn.close()
        return [(int(a), int(b), int(c)) for a, b, c in rows]

    def close(self) -> None:
        self.store.close()


def log_text(home: Path) -> str:
    """What the hooks logged (their failures) in this state dir."""
    path = home / "hooks.log"
    return path.read_text() if path.exists() else ""
