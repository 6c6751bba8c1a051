"""The daemon: one process per OS user and state dir that owns every local identity's Matrix
side and serves each session's MCP tools over a unix socket.

- One daemon: it holds `daemon.lock` for its life; a second one started by a race exits.
- The socket is 0600 in the 0700 state dir, and every peer's uid is checked (SO_PEERCRED).
- Each identity's Runtime (Service, sync, presence) is shared by that identity's connections
  (identities.py); the stores and the hooks' markers are written exactly as before, so the
  hooks never talk to the daemon.
- It stops on SIGTERM/SIGINT, on a "stop" request, or when its state dir or socket is gone;
  it tells each shim it is stopping on purpose, and every identity says "offline".
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import fcntl
import gc
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from claudematrix import __version__
from claudematrix.daemon.identities import Identities
from claudematrix.daemon.verification import serve_verification
from claudematrix.daemon.workers import Workers
from claudematrix.errors import ClaudeMatrixError
from claudematrix.identity import Identity, resolve_identity
from claudematrix.ids import IdentityName
from claudematrix.local import layout
from claudematrix.mcp_server import build_server
from claudematrix.mcp_server.runtime import log
from claudematrix.mcp_server.transport import LINE_LIMIT, serve_connection
from claudematrix.service import Service
from claudematrix.session_env import SessionEnv
from claudematrix.thin import cli as cli_link
from claudematrix.thin import link
from claudematrix.thin.shim import STOPPING

__all__ = ["Daemon", "run_daemon"]

_HELLO_TIMEOUT_S = 10.0
_WATCH_S = 5.0


# Runs `claudematrix <argv>` for a caller elsewhere: (exit code, stdout, stderr). Given by the
# CLI (cli/remote.py), which sits above the daemon.
RunCommand = Callable[
    [list[str], SessionEnv, Callable[[IdentityName], Service | None]],
    Awaitable[tuple[int, str, str]],
]


class Daemon:
    def __init__(
        self,
        home: Path,
        identities: Identities | None = None,
        run_command: RunCommand | None = None,
    ) -> None:
        self.home = home
        self.identities = identities or Identities()
        self.workers = Workers(self.identities)
        self.run_command = run_command
        self.stopping = asyncio.Event()
        self.started = time.time()
        self._sessions: set[asyncio.StreamWriter] = set()
        self._socket_path = home / layout.DAEMON_SOCKET
        # As the starter named it (the plugin's version), so shims can tell an older daemon.
        self.version = os.environ.get(link.VERSION_ENV) or __version__

    async def serve(self) -> None:
        # Everything imported so far lives as long as the daemon: keep the collector from
        # walking it again and again (with the Matrix, MCP and pydantic modules loaded, one
        # full collection costs more than everything an idle daemon does).
        gc.freeze()
        listener = self._listen()
        server = await asyncio.start_unix_server(self._accept, sock=listener, limit=LINE_LIMIT)
        self._write_pid()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        watcher = asyncio.create_task(self._watch(os.stat(self._socket_path).st_ino))
        log(f"claudematrix daemon {self.version} (pid {os.getpid()}) serving {self._socket_path}")
        workers = asyncio.create_task(self.workers.reconcile())
        try:
            await self.stopping.wait()
        finally:
            # The record goes first: whoever looks from now on sees a daemon stopped on
            # purpose (the idle waiter starts again only one that died with it in place).
            with contextlib.suppress(OSError):
                (self.home / layout.DAEMON_PID).unlink()
            watcher.cancel()
            server.close()
            await self._say_stopping()
            workers.cancel()
            await self.workers.close()
            await self.identities.close()
            self._clean_up()
            log("claudematrix daemon stopped")

    def _listen(self) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            self._socket_path.unlink()  # a dead daemon's: we hold the lock, so nobody's now
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with link.bind_address(str(self._socket_path)) as address:
            listener.bind(address)
        os.chmod(self._socket_path, 0o600)
        listener.listen(128)
        listener.setblocking(False)
        return listener

    def _write_pid(self) -> None:
        record = {"pid": os.getpid(), "started": self.started, "version": self.version}
        path = self.home / layout.DAEMON_PID
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(record) + "\n")
        os.replace(tmp, path)

    def _clean_up(self) -> None:
        for name in (layout.DAEMON_SOCKET, layout.DAEMON_PID):
            with contextlib.suppress(OSError):
                (self.home / name).unlink()

    async def _watch(self, inode: int) -> None:
        """Stop when the state dir (or our socket in it) is gone: nobody can reach us."""
        while True:
            await asyncio.sleep(_WATCH_S)
            try:
                if os.stat(self._socket_path).st_ino != inode:
                    break
            except OSError:
                break
        log("claudematrix daemon: its socket is gone; stopping")
        self.stopping.set()

    async def _say_stopping(self) -> None:
        notice = json.dumps({"jsonrpc": "2.0", "method": STOPPING}).encode() + b"\n"
        for writer in list(self._sessions):
            with contextlib.suppress(Exception):
                writer.write(notice)
                await asyncio.wait_for(writer.drain(), timeout=1)
            writer.close()

    # --- one connection ------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._converse(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as exc:  # one connection's failure never takes the daemon down
            log(f"claudematrix daemon: a connection failed: {type(exc).__name__}: {exc}")
        finally:
            self._sessions.discard(writer)
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is None or link.peer_uid(sock) != os.getuid():
            await _answer(writer, {"ok": False, "error": "not the daemon's user"})
            return
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=_HELLO_TIMEOUT_S)
            hello = json.loads(line)
        except (asyncio.TimeoutError, ValueError):
            await _answer(writer, {"ok": False, "error": "no hello: speak the daemon protocol"})
            return
        if not isinstance(hello, dict) or hello.get("protocol") != link.PROTOCOL:
            await _answer(
                writer,
                {
                    "ok": False,
                    "error": f"this daemon speaks protocol {link.PROTOCOL}; restart it "
                    "with `claudematrix daemon stop` (it starts again on demand)",
                },
            )
            return
        want = hello.get("want")
        if want == "status":
            await _answer(writer, {"ok": True, **self.status()})
        elif want == "stop":
            await _answer(writer, {"ok": True, "pid": os.getpid()})
            self.stopping.set()
        elif want == "mcp":
            await self._serve_mcp(hello, reader, writer)
        elif want == "cli":
            await self._serve_cli(hello, writer)
        elif want == "workers":
            await _answer(writer, {"ok": True, "workers": await self.workers.reconcile()})
        elif want == "verify":
            await self._serve_verify(hello, reader, writer)
        else:
            await _answer(writer, {"ok": False, "error": f"unknown request {want!r}"})

    async def _serve_mcp(
        self, hello: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        found = await self._welcome(hello, writer)
        if found is None:
            return
        identity, env = found
        self._sessions.add(writer)
        server = build_server(
            lambda: self.identities.lease(identity, env), caller=str(hello.get("client") or "")
        )
        await serve_connection(server, reader, writer)

    async def _serve_verify(
        self, hello: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        found = await self._welcome(hello, writer)
        if found is not None:
            identity, env = found
            await serve_verification(self.identities, identity, env, hello, reader, writer)

    async def _welcome(
        self, hello: dict[str, Any], writer: asyncio.StreamWriter
    ) -> tuple[Identity, SessionEnv] | None:
        """The caller's identity and environment, with our yes; None (and the reason told
        to the caller) if its identity cannot be resolved."""
        env = _session_env(hello)
        as_name = hello.get("as")
        try:
            identity = resolve_identity(as_name if isinstance(as_name, str) else None, env)
        except ClaudeMatrixError as exc:
            await _answer(writer, {"ok": False, "error": str(exc)})
            return None
        await _answer(writer, {"ok": True, "pid": os.getpid(), "version": self.version})
        return identity, env

    async def _serve_cli(self, hello: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        argv = hello.get("argv")
        if (
            self.run_command is None
            or not isinstance(argv, list)
            or not all(isinstance(a, str) for a in argv)
            or cli_link.forwarded_command(argv) is None
        ):
            await _answer(writer, {"ok": False, "error": "not a command the daemon runs"})
            return
        await _answer(writer, {"ok": True, "pid": os.getpid(), "version": self.version})
        code, out, err = await self.run_command(
            argv, _session_env(hello), self.identities.live_service
        )
        for key, text in (("out", out), ("err", err)):
            if text:
                writer.write(json.dumps({key: text}).encode() + b"\n")
        writer.write(json.dumps({"exit": code}).encode() + b"\n")
        await writer.drain()

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "version": self.version,
            "started": self.started,
            "sessions": len(self._sessions),
            "identities": self.identities.summary(),
            "workers": self.workers.summary(),
        }


def _session_env(hello: dict[str, Any]) -> SessionEnv:
    env = hello.get("env")
    return SessionEnv(
        {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {},
        str(hello.get("cwd") or "/"),
    )


async def _answer(writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
    writer.write(json.dumps(answer).encode() + b"\n")
    await writer.drain()


def run_daemon(home: Path, run_command: RunCommand | None = None) -> int:
    """Run the daemon in this process until it is stopped; 0 at once if one already runs.
    `run_command` lets it run CLI commands for other processes."""
    os.umask(0o077)
    faulthandler.enable()  # a crash of the one long-lived process leaves its story in the log
    fd = os.open(home / layout.DAEMON_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("claudematrix daemon: already running", file=sys.stderr)
            return 0
        asyncio.run(Daemon(home, run_command=run_command).serve())
        return 0
    finally:
        os.close(fd)
