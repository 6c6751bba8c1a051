"""Claude Code hooks: one thin entry per event, standard library only, failing open.

This package is the hot path: PostToolUse runs after every tool call. With nothing new a
hook reads its stdin, finds the session id without a JSON parser, compares the mtimes of two
marker files in the session's identity dir (claudematrix.local.markers), and exits: no
database, no further imports (`os` alone would cost more than the rest; `posix` is built
into the interpreter).

Everything else (claiming mail in the store, formatting headers, the idle waiter) lives in
private modules that only the slow path imports. The hooks import nothing of ClaudeMatrix
but this package and claudematrix.local (the on-disk contract they share with the sync loop):
never `claudematrix.config` or anything that pulls in nio, mcp or click.
"""

# No `from __future__ import annotations` here: it is a real import, and this module is the
# hot path. Annotations below are valid at run time on Python >= 3.10.
import sys

from claudematrix.local.layout import identity_dir, is_identity_name
from claudematrix.local.markers import has_new_mail, set_turn

__all__ = [
    "main",
    "EVENTS",
    "session_id_of",
]

# argv[1] of hooks/run.py, as hooks/hooks.json passes it.
EVENTS = (
    "session-start",
    "user-prompt-submit",
    "post-tool-use",
    "stop",
    "stop-wait",
    "session-end",
)

_SPACE = b" \t\r\n"


def session_id_of(raw: bytes) -> str | None:
    """The value of the first `"session_id"` key, read without a JSON parser.

    Claude Code writes `session_id` as the first key of every hook's input, before any
    tool input, so the first occurrence is the top-level one. Anything unusual (escapes,
    characters an identity name may not hold) returns None and the caller parses properly.
    """
    at = raw.find(b'"session_id"')
    if at < 0:
        return None
    i = at + 12
    n = len(raw)
    while i < n and raw[i] in _SPACE:
        i += 1
    if i >= n or raw[i] != 58:  # ':'
        return None
    i += 1
    while i < n and raw[i] in _SPACE:
        i += 1
    if i >= n or raw[i] != 34:  # '"'
        return None
    end = raw.find(b'"', i + 1)
    value = raw[i + 1 : end]
    if end < 0 or not is_identity_name(value):
        return None
    return value.decode("ascii")


_TASK_NEEDLES = (b'"TodoWrite"', b'"TaskCreate"', b'"TaskUpdate"')


def _mentions_task_tool(raw: bytes) -> bool:
    """Claude's task-list tools: "what I'm working on" (claudematrix.hooks._tasks)."""
    return any(needle in raw for needle in _TASK_NEEDLES)


def main(argv: list[str] | None = None) -> int:
    """Run one hook. Returns the exit code: 0, or 2 when the idle waiter wakes the session."""
    args = sys.argv if argv is None else argv
    event = args[1] if len(args) > 1 else ""
    try:
        raw = sys.stdin.buffer.read()
        if event in ("post-tool-use", "user-prompt-submit", "stop"):
            sid = session_id_of(raw)
            if sid is not None:
                identity = identity_dir(sid)
                if event == "post-tool-use" and _mentions_task_tool(raw):
                    from claudematrix.hooks._tasks import record

                    record(identity, raw)
                if event == "user-prompt-submit":
                    set_turn(identity, b"busy")
                if not has_new_mail(identity):
                    if event == "stop":
                        set_turn(identity, b"idle")
                    return 0
        from claudematrix.hooks._events import run

        return run(event, raw)
    except BaseException as exc:  # noqa: BLE001 - fail open, whatever happened
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            return 0
        try:
            from claudematrix.hooks._log import log_exception

            log_exception(event, exc)
        except BaseException:  # noqa: BLE001, S110 - logging must not break the session
            pass
        return 0
