"""New mail -> the running session: the marker the hooks stat, and the idle waiter's wake-up.

The sync loop (claudematrix.service.Service) calls `signal_new_mail` after every commit that
brought new incoming mail. It rewrites `mail.marker` in the identity dir (the hooks compare
its mtime with `announced.marker`: two stats, no database) and writes one byte into
`wake.fifo`, where the session's idle waiter blocks (see claudematrix/hooks/_waiter.py).

Optional, off by default: `CLAUDEMATRIX_MESSAGING_SOCKET=1` (or the plugin option
`messaging_socket`) wakes an idle session through Claude Code's messaging socket instead of the
waiter. The socket message carries no headers and no bodies: it only starts a turn, whose
UserPromptSubmit hook then announces the headers as usual (see docs/hooks.md).

Standard library only; never raises (a notification must not break the sync loop).
"""

from __future__ import annotations

import os

from claudematrix.hooks import MAIL_MARKER, TURN_STATE, poke

TYPE_CHECKING = False  # kept light: the idle waiter imports this module too
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

__all__ = [
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


def messaging_socket_enabled(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    for name in (MESSAGING_SOCKET_ENV, _PLUGIN_OPTION_ENV):
        if env.get(name, "").strip().lower() in ("1", "on", "true", "yes"):
            return True
    return False


def signal_new_mail(identity_dir: Path | str, newest_id: int) -> None:
    """Tell this identity's hooks and idle waiter that mail up to `newest_id` is committed."""
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
    if messaging_socket_enabled():
        _nudge_if_idle(base)


def _nudge_if_idle(base: str) -> None:
    """Start a turn in an idle session through the messaging socket (opt-in)."""
    path = os.environ.get("CLAUDE_CODE_MESSAGING_SOCKET", "")
    token = os.environ.get("CLAUDE_CODE_MESSAGING_TOKEN", "")
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
