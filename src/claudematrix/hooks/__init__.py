"""Claude Code hooks: one thin entry per event, standard library only, failing open.

This package is the hot path: PostToolUse runs after every tool call. With nothing new a
hook reads its stdin, finds the session id without a JSON parser, compares the mtimes of two
marker files in the session's identity dir, and exits: no database, no further imports
(`os` alone would cost more than the rest; `posix` is built into the interpreter).

The marker protocol (writer: `claudematrix.notify.signal_new_mail`, after each commit of new
mail; readers: the hooks below):
- `mail.marker` is rewritten after new mail is committed to the store;
- `announced.marker` is touched by a hook *before* it claims unannounced mail, so mail
  committed while it works leaves `mail.marker` at least as new. "Nothing new" is therefore
  `mtime(mail) < mtime(announced)`; equal mtimes (a coarse clock tick) take the slow path.

Everything else (claiming mail in the store, formatting headers, the idle waiter) lives in
private modules that only the slow path imports. Nothing here may import `claudematrix.config`
or anything that pulls in nio, mcp or click.
"""

# No `from __future__ import annotations` here: it is a real import, and this module is the
# hot path. Annotations below are valid at run time on Python >= 3.10.
import sys

try:
    from posix import O_CREAT, O_NONBLOCK, O_WRONLY, environ
    from posix import close as _close
    from posix import open as _open
    from posix import stat as _stat
    from posix import write as _write
except ImportError:  # pragma: no cover - not a POSIX system
    from os import O_CREAT, O_NONBLOCK, O_WRONLY
    from os import close as _close
    from os import environb as environ  # type: ignore[assignment]
    from os import open as _open
    from os import stat as _stat
    from os import write as _write

__all__ = [
    "main",
    "EVENTS",
    "MAIL_MARKER",
    "ANNOUNCED_MARKER",
    "WAKE_FIFO",
    "TURN_STATE",
    "OFFLINE_FLAG",
    "WAITER_LOCK",
    "WAITER_PID",
    "STORE_DB",
    "session_id_of",
    "is_session_id",
    "state_dir",
    "identity_path",
    "has_new_mail",
    "set_turn",
    "poke",
]

# Files in <state dir>/identities/<session id>/ (the identity dir of a session).
MAIL_MARKER = "mail.marker"
ANNOUNCED_MARKER = "announced.marker"
WAKE_FIFO = "wake.fifo"
TURN_STATE = "turn.state"
OFFLINE_FLAG = "offline"
WAITER_LOCK = "waiter.lock"
WAITER_PID = "waiter.pid"
STORE_DB = "store.db"

# argv[1] of hooks/run.py, as hooks/hooks.json passes it.
EVENTS = (
    "session-start",
    "user-prompt-submit",
    "post-tool-use",
    "stop",
    "stop-wait",
    "session-end",
)

# What an identity name may hold (claudematrix.ids.parse_identity_name), as bytes.
_ID_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"
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
    if end < 0 or not _valid_id(value):
        return None
    return value.decode("ascii")


def _valid_id(value: bytes) -> bool:
    return 0 < len(value) <= 64 and not value.strip(_ID_CHARS) and value[:1] not in b".-_"


def is_session_id(text: str) -> bool:
    """Could `text` name an identity dir (no '/', no '..', at most 64 safe characters)?"""
    return text.isascii() and _valid_id(text.encode("ascii"))


def _env(name: bytes) -> str:
    value = environ.get(name)
    return value.decode(errors="surrogateescape") if value else ""


def state_dir() -> str:
    """$CLAUDEMATRIX_HOME, else ~/.claudematrix (as claudematrix.paths.state_dir; never created)."""
    home = _env(b"HOME")
    override = _env(b"CLAUDEMATRIX_HOME")
    if override:
        if override == "~" or override.startswith("~/"):
            return home + override[1:]
        return override
    return home + "/.claudematrix"


def identity_path(session_id: str) -> str:
    return state_dir() + "/identities/" + session_id


def has_new_mail(identity: str) -> bool:
    """Two stats: is there mail committed since the last announcement started?"""
    try:
        mail = _stat(identity + "/" + MAIL_MARKER).st_mtime_ns
    except OSError:
        return False
    try:
        announced = _stat(identity + "/" + ANNOUNCED_MARKER).st_mtime_ns
    except OSError:
        return True
    return mail >= announced


def set_turn(identity: str, state: bytes) -> None:
    """Record whether the session is in a turn (b"busy") or waiting for input (b"idle")."""
    try:
        # b"busy" and b"idle" have one length, so no O_TRUNC (it costs ms on ext4).
        fd = _open(identity + "/" + TURN_STATE, O_WRONLY | O_CREAT, 0o600)
    except OSError:
        return  # no identity dir yet: nothing to wake
    try:
        _write(fd, state)
    finally:
        _close(fd)


def poke(identity: str) -> None:
    """Wake the idle waiter, if one is waiting: a byte into its FIFO. Never blocks."""
    try:
        fd = _open(identity + "/" + WAKE_FIFO, O_WRONLY | O_NONBLOCK)
    except OSError:
        return  # no FIFO, or nobody reading it (ENXIO)
    try:
        _write(fd, b"!")
    except OSError:
        pass  # full (EAGAIN): a wake-up is pending anyway
    finally:
        _close(fd)


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
                identity = identity_path(sid)
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
