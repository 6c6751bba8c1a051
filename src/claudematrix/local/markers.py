"""New mail -> the running session: the marker files, written and read in one place.

The protocol (writer: `signal_new_mail`, called by the sync loop after each commit that
brought new incoming mail or a request; readers: the hooks and the idle waiter):
- `mail.marker` is rewritten after new mail is committed to the store;
- `announced.marker` is touched by a hook *before* it claims unannounced mail, so mail
  committed while it works leaves `mail.marker` at least as new. "Nothing new" is therefore
  `mtime(mail) < mtime(announced)`; equal mtimes (a coarse clock tick) take the slow path;
- a byte written into `wake.fifo` wakes the idle waiter blocked on it (`poke`);
- `turn.state` says whether a turn runs ("busy") or the session waits for input ("idle").

Optional, off by default: `CLAUDEMATRIX_MESSAGING_SOCKET=1` (or the plugin option
`messaging_socket`) wakes an idle session through Claude Code's messaging socket instead of
the waiter. That message carries no headers and no bodies: it only starts a turn, whose
UserPromptSubmit hook then announces the headers as usual (see docs/hooks.md).

The readers run on the hooks' hot path: only the built-in `posix` at import. Nothing here
raises: a notification must never break the sync loop or a hook.
"""

from claudematrix.local.layout import ANNOUNCED_MARKER, MAIL_MARKER, TURN_STATE, WAKE_FIFO

try:
    from posix import O_CREAT, O_NONBLOCK, O_WRONLY
    from posix import close as _close
    from posix import open as _open
    from posix import stat as _stat
    from posix import write as _write
except ImportError:  # pragma: no cover - not a POSIX system
    from os import O_CREAT, O_NONBLOCK, O_WRONLY
    from os import close as _close
    from os import open as _open
    from os import stat as _stat
    from os import write as _write

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~7 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
    "has_new_mail",
    "set_turn",
    "poke",
    "signal_new_mail",
    "messaging_socket_enabled",
    "MESSAGING_SOCKET_ENV",
    "NUDGE_TEXT",
]

MESSAGING_SOCKET_ENV = "CLAUDEMATRIX_MESSAGING_SOCKET"
_PLUGIN_OPTION_ENV = "CLAUDE_PLUGIN_OPTION_MESSAGING_SOCKET"
NUDGE_TEXT = (
    "ClaudeMatrix: new Matrix mail arrived for this session. Its headers are in the hook "
    "context of this turn; this note itself carries no request."
)


# --- readers: the hooks and the idle waiter --------------------------------------------------


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


# --- the writer: the sync loop ---------------------------------------------------------------


def messaging_socket_enabled(environ: "Mapping[str, str] | None" = None) -> bool:
    import os

    env = os.environ if environ is None else environ
    for name in (MESSAGING_SOCKET_ENV, _PLUGIN_OPTION_ENV):
        if env.get(name, "").strip().lower() in ("1", "on", "true", "yes"):
            return True
    return False


def signal_new_mail(
    identity_dir: "Path | str", newest_id: int, environ: "Mapping[str, str] | None" = None
) -> None:
    """Tell this identity's hooks and idle waiter that mail up to `newest_id` is committed.
    `environ`: the session's environment (the daemon serves many), default this process's."""
    import os

    base = os.fspath(identity_dir)
    try:
        # Fixed width and no O_TRUNC: truncating costs ~2 ms (up to 20) on ext4, and the
        # hooks only compare mtimes, which any write moves.
        fd = os.open(os.path.join(base, MAIL_MARKER), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, f"{newest_id:020d}\n".encode(), 0)
        finally:
            os.close(fd)
    except OSError:
        return
    poke(base)
    env = os.environ if environ is None else environ
    if messaging_socket_enabled(env):
        _nudge_if_idle(base, env)


def _nudge_if_idle(base: str, env: "Mapping[str, str]") -> None:
    """Start a turn in an idle session through the messaging socket (opt-in)."""
    import os

    path = env.get("CLAUDE_CODE_MESSAGING_SOCKET", "")
    token = env.get("CLAUDE_CODE_MESSAGING_TOKEN", "")
    state = os.path.join(base, TURN_STATE)
    try:
        with open(state, "rb") as handle:
            if handle.read().strip() == b"busy":
                return  # PostToolUse / Stop announce it in-band
    except OSError:
        pass
    if not path or not token:
        return
    import json
    import socket

    lines = [
        {"type": "auth", "token": token},
        {"type": "user", "message": {"role": "user", "content": NUDGE_TEXT}},
    ]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(path)
            sock.sendall("".join(json.dumps(line) + "\n" for line in lines).encode())
    except OSError:
        return
    try:  # the nudge starts a turn: further mail until its Stop is said in-band
        with open(state, "wb") as handle:
            handle.write(b"busy")
    except OSError:
        pass
