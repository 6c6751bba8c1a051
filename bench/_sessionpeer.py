"""One ClaudeMatrix session as Claude Code runs it: our side of each comparison.

Run as `python -m bench._sessionpeer` with the bench's environment. A JSON line on stdin says
which identity to be (and, under "trust", whom it trusts, as the person would with
`claudematrix trust`, so that a raw sender's invitation is joined rather than held as a
request). It starts the session's MCP server exactly as Claude Code does (the shim,
`claudematrix --as <identity> mcp`; the machine's one daemon holds the identity, its sync
and its store), initializes it over MCP and waits for `whoami` to answer, prints
`ready <user id> <lobby room> <shim pid>`, then takes commands on stdin:

- `send <to> <token>`: the `send` tool; prints `sent <token> <t0> <t1>`.
- `burst <to> <n> <tag>`: n sends one after another; prints `burst <tag> <t0> <t1>`.

t0/t1 are time.monotonic() around the tool call (spawn to answer of the JSON-RPC exchange
with the shim). A failed command prints `error <token> <why>`. Exits when stdin closes, and
the shim with it.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import IO, Any

from bench._rawpeer import answer_send_command


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _Mcp:
    """JSON-RPC over the shim's stdio, one request at a time."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        self._in: IO[bytes] = proc.stdin
        self._out: IO[bytes] = proc.stdout
        self._next = 0

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        wanted = self._next
        self._write({"jsonrpc": "2.0", "id": wanted, "method": method, "params": params})
        while True:
            line = self._out.readline()
            if not line:
                raise RuntimeError("the shim closed its output")
            message = json.loads(line)
            if message.get("id") == wanted and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result") or {}
                if result.get("isError"):
                    raise RuntimeError(f"{method}: {result.get('content')}")
                return result

    def _write(self, body: dict[str, Any]) -> None:
        self._in.write(json.dumps(body).encode() + b"\n")
        self._in.flush()


def _lobby(identity_dir: Path) -> str:
    with closing(sqlite3.connect(f"file:{identity_dir / 'store.db'}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT room_id FROM rooms WHERE kind = 'lobby'").fetchone()
    return str(row[0]) if row else "-"


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    name = str(spec["identity"])
    command = [sys.executable, "-m", "claudematrix", "--as", name]
    for user in spec.get("trust", []):
        subprocess.run([*command, "trust", user, "--yes"], check=True, stdout=subprocess.DEVNULL)
    shim = subprocess.Popen([*command, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    mcp = _Mcp(shim)
    try:
        mcp.call(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "claudematrix-bench", "version": "1"},
            },
        )
        mcp.notify("notifications/initialized", {})
        mcp.call("tools/call", {"name": "whoami", "arguments": {}})  # connected, syncing
        identity_dir = Path(os.environ["CLAUDEMATRIX_HOME"]) / "identities" / name
        account = json.loads((identity_dir / "account.json").read_text())
        _out(f"ready {account['user_id']} {_lobby(identity_dir)} {shim.pid}")
        for line in sys.stdin:
            cmd = line.split()
            if cmd:
                try:
                    answer_send_command(cmd, functools.partial(_send, mcp))
                except RuntimeError as exc:
                    _out(f"error {cmd[-1]} {exc}".replace("\n", " "))
    finally:
        if shim.stdin is not None:
            shim.stdin.close()
        try:
            shim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            shim.kill()
            shim.wait()


def _send(mcp: _Mcp, to: str, text: str) -> None:
    mcp.call(
        "tools/call",
        {"name": "send", "arguments": {"to": to, "text": text, "subject": "bench"}},
    )


if __name__ == "__main__":
    main()
