"""The CLI through the daemon: a command's whole run, as a person (or Claude's Bash tool) sees it.

Two sessions are connected through their shims, so the daemon holds both identities; each
CLI command runs as one of them, the way a session's Bash tool runs `claudematrix`, through
the venv's console script (`<venv>/bin/claudematrix`):

- Reading commands: `inbox`, `read 1`, `search <word>`, `contacts`, `whoami`, `status`, each
  process's wall time, vs the bare interpreter start (`<venv python> -I -S -c pass`);
  alternating, one command of each per round.
- Send: `claudematrix send <the other session> <text>`, the process's wall time, vs a raw
  sender process: the same interpreter, the standard library's http.client, one PUT of a
  message into a room, then exit.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from bench._env import PYTHON, BenchError
from bench._proc import Peer
from bench._stats import Dist, Row
from bench._world import Ctx
from bench.b_scale import _mcp_result, _spawn_session
from bench.budgets import judge

__all__ = ["bench_cli"]

READING = (["inbox"], ["read", "1"], ["search", "bench"], ["contacts"], ["whoami"], ["status"])
RAW_SEND = r"""
import http.client, json, sys, uuid
url, token, room = sys.argv[1:4]
host, port = url.split("//")[1].split(":")
conn = http.client.HTTPConnection(host, int(port))
path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/{uuid.uuid4().hex}"
body = json.dumps({"msgtype": "m.text", "body": "bench raw send"})
conn.request("PUT", path, body, {"Authorization": f"Bearer {token}"})
assert conn.getresponse().status == 200
"""


def _timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = (time.monotonic() - t0) * 1000
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv[-3:])} failed: {done.stderr.strip()[-300:]}")
    return elapsed


def bench_cli(ctx: Ctx) -> list[Row]:
    rounds = 5 if ctx.quick else 20
    script = Path(PYTHON).parent / "claudematrix"
    if not script.exists():
        raise BenchError(f"no console script at {script}: install the package (pip install -e .)")
    shims: list[Peer] = []
    try:
        sessions = []
        for index in (9000, 9001):  # (their own projects, apart from the scale phase's)
            peer, sid = _spawn_session(ctx, index)
            _mcp_result(peer, 2, 120.0)
            shims.append(peer)
            sessions.append(sid)
        me, other = sessions
        env = ctx.env.child_env(CLAUDE_CODE_SESSION_ID=me)
        other_user = _user_of(ctx, other)
        # Something to read and find: one message from the other session.
        _timed([str(script), "--as", other, "send", _user_of(ctx, me), "bench hello"], env)
        raw_a, raw_b = ctx.raw_user("raw-cli-a"), ctx.raw_user("raw-cli-b")
        room = raw_a.create_room([raw_b.user_id])
        raw_b.join(room)

        bare = Dist("python -I -S -c pass", "ms")
        reading = Dist("claudematrix <reading command> (held identity)", "ms")
        each: dict[str, list[float]] = {args[0]: [] for args in READING}
        raw_send = Dist("raw sender process (http.client PUT)", "ms")
        send = Dist("claudematrix send", "ms")
        for i in range(rounds):
            for args in READING:
                bare.samples.append(_timed([PYTHON, "-I", "-S", "-c", "pass"], env))
                sample = _timed([str(script), *args], env)
                reading.samples.append(sample)
                each[args[0]].append(sample)
            raw_send.samples.append(
                _timed([PYTHON, "-I", "-S", "-c", RAW_SEND, ctx.url, str(raw_a.token), room], env)
            )
            send.samples.append(_timed([str(script), "send", other_user, f"bench send {i}"], env))
        raw_a.close()
        raw_b.close()
    finally:
        ctx.stop(shims)
    per_command = ", ".join(
        f"{name} {Dist(name, 'ms', samples).q('p50'):.0f}" for name, samples in each.items()
    )
    return [
        judge(
            "cli_read",
            bare,
            reading,
            note=f"{rounds} rounds of all six commands; p50 ms per command: {per_command}",
        ),
        judge("cli_send", raw_send, send, note=f"{rounds} pairs"),
    ]


def _user_of(ctx: Ctx, session: str) -> str:
    account = json.loads((ctx.identity_dir(session) / "account.json").read_text())
    return str(account["user_id"])
