"""The MCP server Claude Code runs for a session: a small proxy to the machine's daemon.

It forwards MCP JSON-RPC lines between Claude Code (stdio) and the daemon's socket
unchanged, so tools, errors and elicitation (the daemon asking the person) work as if the
daemon were the server. It starts the daemon if none answers. If the daemon dies, it starts a
new one and reconnects at once: it replays the handshake (swallowing the second answer) and
every request still unanswered, so Claude Code sees at most a slower reply. A replayed `send`
is not sent twice: the daemon derives the Matrix transaction id from this shim's id and the
request id. A daemon stopped on purpose says so first; then the shim reconnects only when the
session next asks for something.

Standard library only, and a single small process per session.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from typing import IO, Any

from claudematrix.local import layout
from claudematrix.thin import link

__all__ = ["Proxy", "run", "STOPPING"]

STOPPING = "notifications/claudematrix/stopping"  # daemon -> shim, never forwarded
_RETRY_START_S = 0.05
_RETRY_MAX_S = 2.0


def _log(line: str) -> None:
    print(f"claudematrix shim: {line}", file=sys.stderr, flush=True)


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


class Proxy:
    def __init__(
        self,
        *,
        python: str | None = None,
        as_name: str | None = None,
        version: str | None = None,
        stdin: IO[bytes] | None = None,
        stdout: IO[bytes] | None = None,
    ) -> None:
        """`python`: the interpreter a daemon is started with (default: this one);
        `version`: the version of our code (default: claudematrix.__version__)."""
        if version is None:
            from claudematrix import __version__ as version
        self.python = python
        self.version = version
        self.as_name = as_name
        self.stdin = stdin or sys.stdin.buffer
        self.stdout = stdout or sys.stdout.buffer
        self.client_id = os.urandom(12).hex()
        self.lock = threading.Condition()  # guards everything below
        self.out_lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.generation = 0  # which connection the reader is on
        self.init_line: bytes | None = None
        self.init_id: Any = None
        self.init_answered = False
        self.initialized_line: bytes | None = None
        self.pending: dict[str, bytes] = {}  # requests not yet answered, by JSON id
        self.swallow: set[str] = set()  # ids whose answer Claude Code already has
        self.lazy = False  # the daemon stopped on purpose: reconnect on the next request
        self.closing = False

    # --- the two directions ------------------------------------------------------------------

    def run(self) -> int:
        self.start()
        for line in iter(self.stdin.readline, b""):
            self.from_claude(line)
        self.finish()
        return 0

    def adopt_handshake(self, init_line: bytes, initialized_line: bytes | None) -> None:
        """Take over a session whose handshake someone else already answered (the plugin
        launcher, while it installed): it is replayed to the daemon, the answer swallowed."""
        message = _parse(init_line) or {}
        with self.lock:
            self.init_line, self.init_id = init_line, message.get("id")
            self.init_answered = True
            self.initialized_line = initialized_line
            self.lock.notify_all()

    def connect(self) -> None:
        """Connect now (starting the daemon if needed); DaemonUnavailable if that fails."""
        with self.lock:
            if self.sock is None and not self._connect_locked(once=True):
                raise link.DaemonUnavailable("the ClaudeMatrix daemon did not start")

    def start(self) -> None:
        self._reader = threading.Thread(target=self._read_daemon, daemon=True)
        self._reader.start()

    def finish(self) -> None:
        """Claude Code closed our input: end the daemon session and the reader."""
        with self.lock:
            self.closing = True
            if self.sock is not None:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_WR)  # the daemon ends the session
            self.lock.notify_all()
        self._reader.join(timeout=5)

    def from_claude(self, line: bytes) -> None:
        message = _parse(line)
        method = message.get("method") if message else None
        has_id = message is not None and "id" in message
        with self.lock:
            if method == "initialize" and has_id:
                assert message is not None
                self.init_line, self.init_id = line, message["id"]
            elif method == "notifications/initialized":
                self.initialized_line = line
            elif method is not None and has_id:
                assert message is not None
                self.pending[_key(message["id"])] = line
            if self.sock is None:
                if self._connect_locked(once=True):
                    return  # connecting replayed everything, this line too
                if method is not None and has_id:
                    assert message is not None
                    self._answer_unavailable(message["id"])
                return
            # If this fails, the reader sees the connection end and replays what is pending.
            with contextlib.suppress(OSError):
                self.sock.sendall(line)

    def _read_daemon(self) -> None:
        while True:
            with self.lock:
                while self.sock is None and not self.closing:
                    if self.lazy:
                        self.lock.wait()  # the next line from Claude Code connects
                    elif not self._connect_locked(once=False):
                        return  # closing
                if self.sock is None:
                    return
                sock, generation = self.sock, self.generation
            stream = sock.makefile("rb")
            try:
                for line in iter(stream.readline, b""):
                    self._from_daemon(line)
            except OSError:
                pass
            finally:
                stream.close()
            with self.lock:
                if self.generation == generation:
                    self.sock = None
                    sock.close()
                if self.closing:
                    return
                if not self.lazy:
                    _log("the daemon went away; starting it again")

    def _from_daemon(self, line: bytes) -> None:
        message = _parse(line)
        if message is not None:
            if message.get("method") == STOPPING:
                with self.lock:
                    self.lazy = True
                return
            if "id" in message and "method" not in message:  # an answer to Claude Code
                key = _key(message["id"])
                with self.lock:
                    self.pending.pop(key, None)
                    if key in self.swallow:
                        self.swallow.discard(key)
                        return
                    if self.init_line is not None and key == _key(self.init_id):
                        self.init_answered = True
        self._write(line)

    # --- connecting ---------------------------------------------------------------------------

    def _connect_locked(self, *, once: bool) -> bool:
        """Connect (starting the daemon if needed) and replay the session so far. With
        `once`, one attempt; else retry with backoff until it works or we are closing."""
        delay = _RETRY_START_S
        while not self.closing:
            try:
                link.ensure_daemon(self.python, version=self.version)
                sock, answer = link.connect("mcp", client=self.client_id, as_name=self.as_name)
                if link.is_newer(self.version, answer.get("version")):
                    _log(f"replacing the daemon of version {answer.get('version')}")
                    sock.close()
                    link.retire()
                    continue
            except link.DaemonUnavailable as exc:
                if once:
                    _log(str(exc))
                    return False
                _log(f"{exc}; retrying in {delay:.1f} s")
                self.lock.wait(timeout=delay)
                delay = min(delay * 2, _RETRY_MAX_S)
                continue
            try:
                self._replay(sock)
            except OSError:
                sock.close()
                continue
            self.sock, self.lazy = sock, False
            self.generation += 1
            self.lock.notify_all()
            return True
        return False

    def _replay(self, sock: socket.socket) -> None:
        lines = []
        if self.init_line is not None:
            lines.append(self.init_line)
            if self.init_answered:
                self.swallow.add(_key(self.init_id))
        if self.initialized_line is not None:
            lines.append(self.initialized_line)
        lines.extend(self.pending.values())
        if lines:
            sock.sendall(b"".join(lines))

    # --- writing to Claude Code ---------------------------------------------------------------

    def _write(self, line: bytes) -> None:
        with self.out_lock:
            self.stdout.write(line if line.endswith(b"\n") else line + b"\n")
            self.stdout.flush()

    def _answer_unavailable(self, request_id: Any) -> None:
        self.pending.pop(_key(request_id), None)
        error = {
            "code": -32603,
            "message": "ClaudeMatrix's daemon is not available: see "
            f"{os.path.join(link.state_dir(), layout.DAEMON_LOG)}; it is retried on the next call",
        }
        self._write(json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode())


def _key(request_id: Any) -> str:
    return json.dumps(request_id)


def run(python: str | None = None, as_name: str | None = None, version: str | None = None) -> int:
    try:
        return Proxy(python=python, as_name=as_name, version=version).run()
    except KeyboardInterrupt:  # Claude Code stops stdio servers with SIGINT
        return 0


if __name__ == "__main__":
    sys.exit(run())
