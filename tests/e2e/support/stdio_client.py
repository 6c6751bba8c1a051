"""A minimal JSON-RPC-over-stdio client, to drive scripts/launch.py the way Claude Code does."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["StdioClient", "CLIENT_INFO", "clean_env"]

CLIENT_INFO = {"name": "e2e-test", "version": "0"}
_EOF = object()


class StdioClient:
    """Spawns a stdio server; every stdout line is kept in `lines` (to check it is clean)."""

    def __init__(self, cmd: Sequence[str], env: Mapping[str, str], cwd: Path | None = None):
        self.proc = subprocess.Popen(
            list(cmd),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[bytes] = []
        self.stderr: list[bytes] = []
        self.notifications: list[dict[str, Any]] = []
        self._responses: dict[Any, dict[str, Any]] = {}
        self._inbox: queue.Queue[object] = queue.Queue()
        self._next_id = 100
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.lines.append(line)
            try:
                self._inbox.put(json.loads(line))
            except ValueError:
                self._inbox.put({"_invalid": line})
        self._inbox.put(_EOF)

    def _drain(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self.stderr.append(line)

    def send(self, message: Mapping[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
        self.proc.stdin.flush()

    def _pump(self, deadline: float) -> None:
        try:
            item = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no message within the deadline; stderr:\n{self.err}") from None
        if item is _EOF:
            self._inbox.put(_EOF)
            raise AssertionError(f"server exited ({self.proc.poll()}); stderr:\n{self.err}")
        assert isinstance(item, dict)
        if "id" in item and ("result" in item or "error" in item):
            self._responses[item["id"]] = item
        else:
            self.notifications.append(item)

    def request(
        self, method: str, params: Mapping[str, Any] | None = None, timeout: float = 30
    ) -> dict[str, Any]:
        """Send a request; return its whole response message (with `result` or `error`)."""
        request_id, self._next_id = self._next_id, self._next_id + 1
        self.send({"id": request_id, "method": method, "params": dict(params or {})})
        deadline = time.monotonic() + timeout
        while request_id not in self._responses:
            self._pump(deadline)
        return self._responses.pop(request_id)

    def initialize(self, timeout: float = 30) -> dict[str, Any]:
        """Claude Code's opening: the server/discover probe, initialize, initialized."""
        self.send({"id": "server-discover-probe-1", "method": "server/discover", "params": {}})
        params = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": CLIENT_INFO}
        response = self.request("initialize", params, timeout=timeout)
        self.send({"method": "notifications/initialized"})
        return response

    def wait_notification(self, method: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for note in self.notifications:
                if note.get("method") == method:
                    self.notifications.remove(note)
                    return note
            self._pump(deadline)

    @property
    def err(self) -> str:
        return b"".join(self.stderr[-30:]).decode(errors="replace")

    def close(self, timeout: float = 10) -> int:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()

    def __enter__(self) -> StdioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment minus anything of an enclosing Claude Code session,
    and minus a PYTHONPATH of the test run (it would put other sources before the venv's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_", "CLAUDECODE"))}
    env.pop("CLAUDEMATRIX_PLUGIN_VENV", None)
    env.pop("PYTHONPATH", None)
    env.update(extra)
    return env
