"""The slow path of each hook: parse the input, claim new mail, say it the way each event can.

Reached only when the markers say there may be new mail (or for the rare events: session
start and end, the idle waiter). Every function returns the hook's exit code.
"""

from __future__ import annotations

import os
import sys

from claudematrix.hooks import _jsonlite
from claudematrix.hooks._announce import announce, own_user_ids
from claudematrix.local import mailbox
from claudematrix.local.layout import (
    OFFLINE_FLAG,
    WAITER_LOCK,
    WAITER_PID,
    identity_dir,
    is_identity_name,
)
from claudematrix.local.markers import poke, set_turn

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~7 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["run", "hook_output"]

_EVENT_NAMES = {
    "session-start": "SessionStart",
    "user-prompt-submit": "UserPromptSubmit",
    "post-tool-use": "PostToolUse",
    "stop": "Stop",
    "stop-wait": "Stop",
    "session-end": "SessionEnd",
}


def run(event: str, raw: bytes) -> int:
    if event not in _EVENT_NAMES:
        return 0
    try:
        data = _jsonlite.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return 0
    if not isinstance(data, dict):
        return 0
    sid = data.get("session_id")
    if not isinstance(sid, str) or not is_identity_name(sid):
        return 0
    identity = identity_dir(sid)
    if event == "session-start":
        return session_start(identity, data)
    if event == "session-end":
        return session_end(identity, data)
    if event == "stop":
        return stop(identity, data)
    if event == "stop-wait":
        from claudematrix.hooks._waiter import wait

        return wait(identity, data)
    # UserPromptSubmit, PostToolUse: a subagent's tool call would put the headers into the
    # subagent's context, not the session's; leave them for the main thread.
    if data.get("agent_id"):
        return 0
    text = announce(identity)
    if text:
        hook_output(_EVENT_NAMES[event], text)
    return 0


def hook_output(event_name: str, context: str) -> None:
    sys.stdout.write(
        _jsonlite.dumps(
            {"hookSpecificOutput": {"hookEventName": event_name, "additionalContext": context}}
        )
    )
    sys.stdout.flush()


# --- events ------------------------------------------------------------------------------


def session_start(identity: str, data: dict[str, Any]) -> int:
    """Who I am (Matrix ID, display name, mode), unread count, and headers of new mail."""
    try:  # noqa: SIM105 - contextlib costs an import
        os.unlink(identity + "/" + OFFLINE_FLAG)  # back (resume): online again
    except OSError:
        pass
    set_turn(identity, b"idle")
    me, _owner = own_user_ids(identity)
    conn = mailbox.connect(identity)
    name, mode, unread = "", "private", 0
    if conn is not None:
        try:
            name = mailbox.setting(conn, "display_name") or ""
            mode = mailbox.setting(conn, "mode") or mode
            unread = mailbox.unread_count(conn)
        finally:
            conn.close()
    if me:
        who = f"ClaudeMatrix: this session is {name or me} <{me}>, mode {mode}"
    else:
        who = (
            "ClaudeMatrix: this session's Matrix account is being set up; the ClaudeMatrix "
            "`whoami` tool shows it once ready"
        )
    lines = [
        who
        + f"; {unread} unread message{'s' if unread != 1 else ''}"
        + (" (list them with the `inbox` tool)." if unread else "."),
        "ClaudeMatrix mail is sent and read with the ClaudeMatrix tools "
        "(`send`, `inbox`, `read`), not Claude Code's SendMessage.",
    ]
    block = announce(identity)
    if block:
        lines.append(block)
    hook_output("SessionStart", "\n".join(lines))
    return 0


def stop(identity: str, data: dict[str, Any]) -> int:
    """Block the stop once if mail came in during the turn; never loop."""
    if data.get("stop_hook_active") is not True and not data.get("agent_id"):
        block = announce(identity)
        if block:
            sys.stdout.write(_jsonlite.dumps({"decision": "block", "reason": block}))
            sys.stdout.flush()
            return 0
    # The session goes idle: if mail is still pending, the waiter says it now.
    set_turn(identity, b"idle")
    poke(identity)
    return 0


def session_end(identity: str, data: dict[str, Any]) -> int:
    """Mark the session offline and stop its waiter: a few file operations, well inside the
    1.5 s all SessionEnd hooks share."""
    import time

    if not os.path.isdir(identity):
        return 0
    reason = data.get("reason")
    text = f"{int(time.time() * 1000)} {reason if isinstance(reason, str) else ''}\n"
    fd = os.open(identity + "/" + OFFLINE_FLAG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    poke(identity)  # the waiter sees the flag and exits at once
    _stop_waiter(identity, grace_s=0.2)
    return 0


def _stop_waiter(identity: str, grace_s: float) -> None:
    """SIGTERM the waiter if it still holds its lock after `grace_s` (it normally has gone)."""
    import fcntl
    import time

    try:
        fd = os.open(identity + "/" + WAITER_LOCK, os.O_RDWR)
    except OSError:
        return
    try:
        deadline = time.monotonic() + grace_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return  # nobody holds it: no waiter
            except OSError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
        try:
            with open(identity + "/" + WAITER_PID, encoding="ascii") as handle:
                pid = int(handle.read().strip() or 0)
        except (OSError, ValueError):
            return
        if pid > 1 and _is_waiter(pid):
            import signal  # only now: it imports enum

            try:  # noqa: SIM105 - contextlib costs an import
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
    finally:
        os.close(fd)


def _is_waiter(pid: int) -> bool:
    """Guard against a recycled pid: on Linux, check it runs our stop-wait hook."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"stop-wait" in handle.read()
    except FileNotFoundError:
        return not os.path.isdir("/proc")  # no procfs (macOS): trust the pid file
    except OSError:
        return False
