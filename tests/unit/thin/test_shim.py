"""The shim's proxy logic against a scripted peer on a real unix socket pair: what it
forwards, what it replays after the daemon goes away, and what it keeps to itself.

(The daemon side is the real one in tests/mcp_stdio/test_daemon.py and the e2e tests.)"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from claudematrix.thin import link, shim
from support import SRC, wait_until


class Pipe(io.RawIOBase):
    """stdout of the shim: lines collected in a list."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.buffer = b""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += bytes(data)
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.lines.append(json.loads(line))
        return len(data)


class Daemon:
    """A scripted daemon end: every connection the shim makes is a socketpair half."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.connections: list[socket.socket] = []
        self.seen: list[list[bytes]] = []
        self.versions = ["0.1.0"]
        monkeypatch.setattr(link, "ensure_daemon", lambda *a, **k: False)
        monkeypatch.setattr(link, "connect", self.connect)
        monkeypatch.setattr(link, "retire", lambda *a, **k: self.versions.pop(0))

    def connect(self, want: str, **_: Any) -> tuple[socket.socket, dict[str, Any]]:
        ours, theirs = socket.socketpair()
        self.connections.append(theirs)
        self.seen.append([])
        threading.Thread(target=self._read, args=(theirs, self.seen[-1]), daemon=True).start()
        return ours, {"ok": True, "pid": 1, "version": self.versions[0]}

    def _read(self, sock: socket.socket, into: list[bytes]) -> None:
        with sock.makefile("rb") as stream:
            for line in iter(stream.readline, b""):
                into.append(line)
        with contextlib.suppress(OSError):  # as the real daemon: the session ends both ways
            sock.shutdown(socket.SHUT_RDWR)

    def say(self, message: dict[str, Any], connection: int = -1) -> None:
        self.connections[connection].sendall(json.dumps(message).encode() + b"\n")

    def die(self, connection: int = -1) -> None:
        self.connections[connection].shutdown(socket.SHUT_RDWR)
        self.connections[connection].close()

    def methods(self, connection: int) -> list[str]:
        return [json.loads(line).get("method", "") for line in self.seen[connection]]


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n"


INIT = {"id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
INITIALIZED = {"method": "notifications/initialized"}


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Daemon:
    return Daemon(monkeypatch)


def _proxy(out: Pipe, version: str = "0.1.0") -> shim.Proxy:
    proxy = shim.Proxy(stdin=io.BytesIO(), stdout=out, version=version)  # type: ignore[arg-type]
    proxy.start()
    return proxy


def test_forwards_both_ways_and_replays_after_the_daemon_dies(daemon: Daemon) -> None:
    out = Pipe()
    proxy = _proxy(out)
    proxy.from_claude(_line(INIT))
    daemon.say({"jsonrpc": "2.0", "id": 0, "result": {"capabilities": {}}})
    proxy.from_claude(_line(INITIALIZED))
    proxy.from_claude(_line({"id": 1, "method": "tools/call", "params": {"name": "whoami"}}))
    proxy.from_claude(_line({"id": 2, "method": "tools/call", "params": {"name": "send"}}))
    wait_until(lambda: len(daemon.seen[0]) == 4, 5, "the daemon to get four lines")
    daemon.say({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
    wait_until(lambda: len(out.lines) == 2, 5, "two answers forwarded")

    daemon.die(0)  # the daemon dies with request 2 unanswered
    wait_until(lambda: len(daemon.seen) == 2 and len(daemon.seen[1]) == 3, 5, "a replay")
    assert daemon.methods(1) == ["initialize", "notifications/initialized", "tools/call"]
    assert json.loads(daemon.seen[1][2])["id"] == 2  # only the unanswered one
    daemon.say({"jsonrpc": "2.0", "id": 0, "result": {"capabilities": {}}})  # swallowed
    daemon.say({"jsonrpc": "2.0", "id": 2, "result": {"content": []}})
    wait_until(lambda: len(out.lines) == 3, 5, "the replayed call's answer")
    assert [m.get("id") for m in out.lines] == [0, 1, 2]  # the second handshake never shows
    proxy.finish()


def test_a_daemon_stopping_on_purpose_is_reconnected_only_when_asked(daemon: Daemon) -> None:
    out = Pipe()
    proxy = _proxy(out)
    proxy.from_claude(_line(INIT))
    daemon.say({"jsonrpc": "2.0", "id": 0, "result": {}})
    daemon.say({"jsonrpc": "2.0", "method": shim.STOPPING})
    wait_until(lambda: proxy.lazy, 5, "the shim to hear the daemon stops")
    daemon.die(0)
    wait_until(lambda: proxy.sock is None, 5, "the connection to end")
    assert len(daemon.connections) == 1  # nobody restarts a daemon stopped on purpose
    proxy.from_claude(_line({"id": 5, "method": "ping"}))
    wait_until(lambda: len(daemon.seen) == 2 and len(daemon.seen[1]) == 2, 5, "a reconnect")
    assert daemon.methods(1) == ["initialize", "ping"]
    assert all(m.get("method") != shim.STOPPING for m in out.lines)
    proxy.finish()


def test_a_newer_shim_retires_an_older_daemon(daemon: Daemon) -> None:
    daemon.versions = ["0.1.0", "0.2.0"]
    out = Pipe()
    proxy = _proxy(out, version="0.2.0")
    proxy.from_claude(_line(INIT))
    wait_until(lambda: len(daemon.connections) == 2, 5, "a second connection")
    assert daemon.versions == ["0.2.0"]  # the old one was retired once
    wait_until(lambda: daemon.methods(1) == ["initialize"], 5, "the handshake on the new one")
    proxy.finish()


def test_versions_compare_as_numbers() -> None:
    assert link.is_newer("0.1.10", "0.1.9") and link.is_newer("1.0", "0.9.9")
    assert not link.is_newer("0.1.0", "0.1.0") and not link.is_newer("0.1.0", "0.2")
    assert link.is_newer("0.1.0", None)  # a daemon that names no version is the oldest


def test_only_session_and_claudematrix_variables_are_forwarded() -> None:
    env = {"CLAUDE_CODE_SESSION_ID": "s", "CLAUDEMATRIX_MODE": "secret", "AWS_SECRET": "x"}
    assert link.forwarded_env(env) == {"CLAUDE_CODE_SESSION_ID": "s", "CLAUDEMATRIX_MODE": "secret"}


def test_the_shim_imports_only_the_standard_library() -> None:
    """One shim runs per session: it must stay small (no Matrix, MCP or CLI library)."""
    probe = (
        f"import sys; sys.path.insert(0, {str(SRC)!r}); before = set(sys.modules)\n"
        "import claudematrix.thin.shim\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    ours = {m for m in loaded if m.split(".")[0] == "claudematrix"}
    assert ours <= {
        "claudematrix",
        "claudematrix.thin",
        "claudematrix.thin.shim",
        "claudematrix.thin.link",
        "claudematrix.local",
        "claudematrix.local.layout",
    }, ours
    outside = {m.split(".")[0] for m in loaded} - set(sys.stdlib_module_names) - {"claudematrix"}
    assert outside == set()


def test_a_daemon_log_past_its_size_is_set_aside_when_a_daemon_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    log = home / "daemon.log"
    log.write_bytes(b"old line\n" * (link.LOG_KEEP_BYTES // 9 + 1))
    # A "python" that exits at once: the start fails, after the log was dealt with.
    with pytest.raises(link.DaemonUnavailable, match="exited at start"):
        link.ensure_daemon("/bin/true", home=str(home), timeout=10)
    assert (home / "daemon.log.1").stat().st_size > link.LOG_KEEP_BYTES
    assert log.stat().st_size == 0 and log.stat().st_mode & 0o777 == 0o600
    log.write_bytes(b"recent line\n")
    with pytest.raises(link.DaemonUnavailable):
        link.ensure_daemon("/bin/true", home=str(home), timeout=10)
    assert log.read_bytes() == b"recent line\n"  # under the size: kept as it is
    assert (home / "daemon.log.1").read_bytes().startswith(b"old line\n")
