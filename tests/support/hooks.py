"""The hooks as Claude Code runs them (`<venv python> -I -S hooks/run.py <event>`, JSON on
stdin), and a session's identity dir with a store to run them against.

`World` sets an identity up the way the service leaves it after connecting (account.json,
its own Matrix ID and mode in the store, the rooms its sync found), and adds mail the way the
sync loop does (a commit, then the mail marker). The last part looks at an idle waiter from
outside (/proc): asleep in poll(), and for how long, so tests wait on that state instead of
sleeping a guessed while.
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claudematrix.hooks._events import _EVENT_NAMES as EVENT_NAMES
from claudematrix.hooks._waiter import CHECK_S
from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.local.layout import WAITER_PID
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
    "POLL_TIMEOUT_READABLE",
    "asleep_in_poll",
    "poll_timeout_ms",
    "asleep_until_news",
    "wakeups",
    "waiter_asleep",
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
        "hook_event_name": EVENT_NAMES[event],  # Claude Code's name of the event
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


# --- the idle waiter, seen from outside (/proc) ---------------------------------------


# poll(2) and ppoll(2) as /proc/<pid>/syscall numbers them, where we know the numbers.
_POLL_CALLS = {"x86_64": {7, 271}, "aarch64": {73}}
_POLL = 7 if platform.machine() == "x86_64" else None  # poll(fds, nfds, timeout_ms)
POLL_TIMEOUT_READABLE = _POLL is not None


def _syscall(pid: int) -> list[str]:
    """The system call the process sleeps in: its number and arguments (["running"] if it
    runs, [] if it is gone)."""
    try:
        return Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return []


def asleep_in_poll(pid: int) -> bool:
    """The process sleeps in poll(): where the waiter spends all its time between wake-ups."""
    call = _syscall(pid)
    known = _POLL_CALLS.get(platform.machine())
    if known is not None:
        return bool(call) and call[0].isdigit() and int(call[0]) in known
    try:  # another architecture: the kernel function it sleeps in
        return "poll" in Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False


def poll_timeout_ms(pid: int) -> int | None:
    """The timeout of the poll() the process sleeps in; None where we cannot read it."""
    call = _syscall(pid)
    if _POLL is None or len(call) < 4 or not call[0].isdigit() or int(call[0]) != _POLL:
        return None
    return int(call[3], 16)


def asleep_until_news(pid: int) -> bool:
    """Asleep in poll() for the long CHECK_S wait (not the short re-check while mail waits
    for a busy turn's hooks). Where the timeout cannot be read, asleep in poll() at all."""
    timeout = poll_timeout_ms(pid)
    return asleep_in_poll(pid) and timeout in (None, int(CHECK_S * 1000))


def wakeups(pid: int) -> int:
    """How often the process went to sleep of its own accord (voluntary context switches):
    it goes up each time the waiter wakes up and goes back to sleep. -1 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return -1
    for line in status.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches in /proc/{pid}/status")


def waiter_asleep(identity: Path) -> bool:
    """This identity's idle waiter runs and sleeps in poll(): the session is idle and will
    be woken by new mail."""
    try:
        pid = int((identity / WAITER_PID).read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return b"stop-wait" in command and asleep_until_news(pid)
