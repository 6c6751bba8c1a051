"""Talking to child processes line by line, always with a deadline."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections import deque
from collections.abc import Callable

from bench._env import BenchEnv, BenchError

__all__ = ["Peer", "collect", "cpu_seconds", "synapse_pid"]

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds these processes have used so far (/proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def rss_mib(pid: int) -> float:
    """VmRSS of a process, in MiB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def synapse_pid(config: object) -> int:
    from claudematrix import homeserver

    pid = homeserver.status(config).pid  # type: ignore[arg-type]
    if pid is None:
        raise BenchError("the homeserver is not running")
    return pid


class Peer:
    """A child speaking a line protocol on stdin/stdout (bench/_rawpeer.py, _sessionpeer.py)."""

    def __init__(self, env: BenchEnv, name: str, proc: subprocess.Popen[bytes]) -> None:
        self.env = env
        self.name = name
        self.proc = proc
        self._buf = b""
        self.lines: deque[str] = deque()
        assert proc.stdout is not None
        self.fd = proc.stdout.fileno()

    @classmethod
    def start(
        cls,
        env: BenchEnv,
        name: str,
        argv: list[str],
        spec: dict[str, object],
        extra_env: dict[str, str] | None = None,
    ) -> Peer:
        proc = env.spawn(argv, env=env.child_env(**(extra_env or {})), stderr_name=name)
        peer = cls(env, name, proc)
        peer.write(json.dumps(spec))
        return peer

    def write(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            raise self._died() from None

    def _died(self) -> BenchError:
        return BenchError(
            f"{self.name} exited (code {self.proc.poll()}): {self.env.log_tail(self.name)}"
        )

    def pump(self) -> bool:
        """Read what is available (call when the fd is readable). False at EOF."""
        chunk = os.read(self.fd, 65536)
        if not chunk:
            return False
        self._buf += chunk
        *done, self._buf = self._buf.split(b"\n")
        self.lines.extend(line.decode(errors="replace") for line in done)
        return True

    def failure(self) -> str | None:
        """Without blocking: why this peer can no longer answer (an `error` line, or exit)."""
        while select.select([self.fd], [], [], 0)[0]:
            if not self.pump():
                return str(self._died())
        for line in self.lines:
            if line.startswith("error"):
                return f"{self.name}: {line}"
        return None

    def expect(self, prefix: str, timeout: float, what: str = "") -> list[str]:
        """The next line starting with `prefix` (earlier other lines are dropped), split."""
        return self.expect_line(prefix, timeout, what).split()

    def expect_line(self, prefix: str, timeout: float, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        while True:
            while self.lines:
                line = self.lines.popleft()
                if line.startswith(prefix):
                    return line
                if line.startswith("error"):
                    raise BenchError(f"{self.name}: {line}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(
                    f"{self.name}: no {what or prefix!r} within {timeout:g} s; "
                    f"log: {self.env.log_tail(self.name)}"
                )
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready and not self.pump():
                raise self._died()


def collect(
    peers: list[Peer], accept: Callable[[int, list[str]], bool], timeout: float, what: str
) -> None:
    """Feed every line of every peer to `accept(index, fields)` until it returns True."""
    deadline = time.monotonic() + timeout
    by_fd = {p.fd: i for i, p in enumerate(peers)}
    while True:
        for i, peer in enumerate(peers):
            while peer.lines:
                if accept(i, peer.lines.popleft().split()):
                    return
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        ready, _, _ = select.select(list(by_fd), [], [], left)
        for fd in ready:
            peer = peers[by_fd[fd]]
            if not peer.pump():
                raise peer._died()
