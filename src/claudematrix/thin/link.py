"""Reaching the machine's daemon: its socket, the hello that opens a connection, and starting
it exactly once however many processes race to. Standard library only: the MCP shim of every
session, the idle waiter and the CLI's fast path run this, and must stay small and quick.

A connection opens with one JSON line each way: the client's hello
    {"protocol": 1, "want": "mcp" | "cli" | "status" | "stop", "env": {...}, "cwd": "...",
     "client": "<the shim's id>", "as": "<an identity name>" | null, "argv": [...] (cli)}
and the daemon's answer {"ok": true, "pid": ..., "version": ...} or {"ok": false, "error": "..."}.
After "mcp" the connection carries the session's MCP JSON-RPC, one message per line; after
"cli" the daemon runs the command and sends its output as JSON lines ({"out": text},
{"err": text}) and then {"exit": code}.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import struct
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from claudematrix.local import layout

__all__ = [
    "PROTOCOL",
    "DaemonUnavailable",
    "socket_path",
    "connect",
    "answers",
    "ensure_daemon",
    "daemon_argv",
    "forwarded_env",
    "peer_uid",
    "bind_address",
    "read_line",
    "START_TIMEOUT_S",
    "VERSION_ENV",
    "is_newer",
    "retire",
]

PROTOCOL = 1
START_TIMEOUT_S = 30.0
LOG_KEEP_BYTES = 4 * 1024 * 1024
# The version of the code a daemon runs, as its starter named it (the plugin's version): a
# shim of a newer version retires an older daemon, never the other way round.
VERSION_ENV = "CLAUDEMATRIX_DAEMON_VERSION"
_FORWARDED = ("CLAUDE", "MCP_")  # Claude Code's session variables and our own settings
_MAX_ADDRESS = 100  # sun_path holds 108 bytes; longer paths go through /proc/self/fd
# Run `claudematrix` from the given src/ folder, isolated (-I) so no working directory or
# PYTHONPATH shadows our modules: the daemon runs the same code as whoever started it.
_RUN_FROM_SOURCE = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "runpy.run_module('claudematrix', run_name='__main__', alter_sys=True)"
)
# Set for a daemon's environment: the session it was started from is not its own.
_NOT_INHERITED = (
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_PROJECT_DIR",
    "CLAUDE_CODE_MESSAGING_SOCKET",
    "CLAUDE_CODE_MESSAGING_TOKEN",
    "CLAUDEMATRIX_PLUGIN_MODE",
)


_started: list[Any] = []  # our daemon processes (Popen): reaped when they end, not zombies


class DaemonUnavailable(Exception):
    """The daemon cannot be reached or started; the message says why and what to do."""


def state_dir() -> str:
    path = layout.state_dir()
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def socket_path(home: str | None = None) -> str:
    return os.path.join(home or state_dir(), layout.DAEMON_SOCKET)


@contextlib.contextmanager
def bind_address(path: str) -> Iterator[str]:
    """An address for `path` that fits in sun_path (a deep state dir does not)."""
    if len(os.fsencode(path)) <= _MAX_ADDRESS:
        yield path
        return
    folder = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{folder}/{os.path.basename(path)}"
    finally:
        os.close(folder)


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a unix socket (Linux SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def forwarded_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(_FORWARDED)}


def read_line(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """One line from a blocking socket, byte by byte up to the newline (only for the hello:
    what follows it belongs to whoever reads the socket next)."""
    line = bytearray()
    while len(line) < limit:
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
        if byte == b"\n":
            break
    return bytes(line)


def connect(
    want: str,
    *,
    client: str = "",
    as_name: str | None = None,
    home: str | None = None,
    timeout: float | None = 5.0,
    extra: dict[str, Any] | None = None,
) -> tuple[socket.socket, dict[str, Any]]:
    """A connection to the daemon after the hello: (socket, its answer). DaemonUnavailable
    if nothing answers; the daemon's own refusal also raises it, with the daemon's words."""
    path = socket_path(home)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        with bind_address(path) as address:
            sock.connect(address)
        if peer_uid(sock) != os.getuid():  # someone else's socket in our place: never talk
            raise DaemonUnavailable(f"{path} belongs to another user: remove it")
        hello = {
            "protocol": PROTOCOL,
            "want": want,
            "env": forwarded_env(),
            "cwd": _cwd(),
            "client": client,
            "as": as_name,
            **(extra or {}),
        }
        sock.sendall(json.dumps(hello).encode() + b"\n")
        line = read_line(sock)
        answer = json.loads(line) if line.strip() else None
    except (OSError, ValueError) as exc:
        sock.close()
        raise DaemonUnavailable(
            f"the ClaudeMatrix daemon at {path} is not answering ({exc})"
        ) from None
    except BaseException:
        sock.close()
        raise
    if not isinstance(answer, dict) or not answer.get("ok"):
        sock.close()
        reason = answer.get("error") if isinstance(answer, dict) else "no answer"
        raise DaemonUnavailable(f"the ClaudeMatrix daemon refused: {reason}")
    sock.settimeout(None)
    return sock, answer


def answers(home: str | None = None) -> bool:
    """Does a daemon listen on this state dir's socket? (A connect, no hello: cheap.)"""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(2.0)
        with bind_address(socket_path(home)) as address:
            sock.connect(address)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def daemon_argv(python: str | None = None) -> list[str]:
    """The command that runs the daemon: `python` (default: this interpreter) on the same
    claudematrix source as this process."""
    import claudematrix

    src = os.path.dirname(os.path.dirname(os.path.abspath(claudematrix.__file__)))
    return [python or sys.executable, "-I", "-c", _RUN_FROM_SOURCE, src, "daemon", "run"]


def ensure_daemon(
    python: str | None = None,
    *,
    home: str | None = None,
    timeout: float = START_TIMEOUT_S,
    version: str | None = None,
) -> bool:
    """Start the daemon unless one answers; True if this call started it. Racing callers
    serialise on a lock, so exactly one daemon starts; the rest find it answering."""
    home = home or state_dir()
    _started[:] = [p for p in _started if p.poll() is None]
    if answers(home):
        return False
    fd = os.open(
        os.path.join(home, layout.DAEMON_START_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if answers(home):
            return False
        process = _spawn(python, home, version)
        _started.append(process)
        deadline = time.monotonic() + timeout
        while not answers(home):
            code = process.poll()
            if code is not None and not answers(home):
                raise DaemonUnavailable(
                    f"the ClaudeMatrix daemon exited at start (code {code}): see "
                    f"{os.path.join(home, layout.DAEMON_LOG)}"
                )
            if time.monotonic() > deadline:
                raise DaemonUnavailable(
                    f"the ClaudeMatrix daemon did not answer within {timeout:.0f} s: see "
                    f"{os.path.join(home, layout.DAEMON_LOG)}"
                )
            time.sleep(0.02)
        return True
    finally:
        os.close(fd)


def _spawn(python: str | None, home: str, version: str | None) -> Any:
    import subprocess  # only to start a daemon: the CLI's quick path never needs it

    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env[layout.STATE_ENV] = home
    if version:
        env[VERSION_ENV] = version
    else:
        env.pop(VERSION_ENV, None)
    log_path = os.path.join(home, layout.DAEMON_LOG)
    _rotate(log_path)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        return subprocess.Popen(
            daemon_argv(python),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd=home,
            start_new_session=True,  # outlives the session that happened to start it
        )
    finally:
        os.close(log)


def _rotate(log_path: str) -> None:
    """A daemon runs for weeks and every start appends: past LOG_KEEP_BYTES the log becomes
    `daemon.log.1` (replacing the one before), under the start lock."""
    try:
        if os.stat(log_path).st_size > LOG_KEEP_BYTES:
            os.replace(log_path, log_path + ".1")
    except OSError:
        pass


def _version_key(version: object) -> tuple[int, ...]:
    digits = []
    for part in str(version or "0").split("+")[0].split("."):
        number = "".join(c for c in part if c.isdigit())
        digits.append(int(number) if number else 0)
    return tuple(digits)


def is_newer(mine: object, theirs: object) -> bool:
    """Is version `mine` strictly newer than `theirs` ("0.2.0" > "0.1.10")?"""
    return _version_key(mine) > _version_key(theirs)


def retire(home: str | None = None, timeout: float = START_TIMEOUT_S) -> None:
    """Ask the running daemon to stop and wait until it no longer answers."""
    with contextlib.suppress(DaemonUnavailable):
        sock, _answer = connect("stop", home=home)
        sock.close()
    deadline = time.monotonic() + timeout
    while answers(home) and time.monotonic() < deadline:
        time.sleep(0.02)


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return os.environ.get("HOME", "/")
