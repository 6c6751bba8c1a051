"""Scale: many sessions on one machine; their memory, the lobby fan-out, and the daemon.

Each session is a real `python -m claudematrix mcp` process (the shim; the machine's one
daemon serves them all) with its own CLAUDE_CODE_SESSION_ID (and CLAUDE_PROJECT_DIR: five
sessions per project), brought up through the MCP stdio protocol (initialize, then a `whoami`
tool call, which answers once the session is connected and its sync loop runs).

- RSS: VmRSS of every session's process (its shim) after the fan-out rounds (steady state).
- Fan-out: one message into the machine lobby (another session's `send` tool) -> the
  moment the last of the sessions has it in its store; raw: a message into a room with the
  same number of members -> the moment the last of as many raw /sync clients (one process
  each) has it. Samples alternate raw, ours.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable

from bench._env import PYTHON, BenchError
from bench._proc import Peer, collect, cpu_seconds, rss_mib, synapse_pid
from bench._rawpeer import Raw
from bench._stats import Dist, Row
from bench._watch import StoreWatch
from bench._world import Ctx
from bench.b_daemon import daemon_pid, daemon_rows, synapse_idle
from bench.budgets import judge

__all__ = ["bench_scale"]

WINDOW = 4  # MCP servers starting at once (2 cores: more only thrashes)
PER_PROJECT = 5  # sessions per project dir: 50 sessions work in 10 projects
FANOUT_TIMEOUT = 60.0


def _mcp_call(peer: Peer, msg_id: int | None, method: str, params: dict[str, object]) -> None:
    body: dict[str, object] = {"jsonrpc": "2.0", "method": method, "params": params}
    if msg_id is not None:
        body["id"] = msg_id
    peer.write(json.dumps(body))


def _mcp_result(peer: Peer, msg_id: int, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.01, deadline - time.monotonic())
        msg = json.loads(peer.expect_line("{", left, f"MCP answer {msg_id}"))
        if msg.get("id") == msg_id:
            if "error" in msg or (msg.get("result") or {}).get("isError"):
                raise BenchError(f"{peer.name}: MCP call {msg_id} failed: {msg}")
            return dict(msg.get("result") or {})


def _spawn_session(ctx: Ctx, index: int) -> tuple[Peer, str]:
    """A session's MCP server as Claude Code starts it (the shim): initialize, tools/list
    (answer 3: the tools are there) and `whoami` (answer 2: the identity is connected)."""
    sid = str(uuid.uuid4())
    project = ctx.env.run_dir / "projects" / f"project{index // PER_PROJECT}"
    project.mkdir(parents=True, exist_ok=True)
    env = ctx.env.child_env(CLAUDE_CODE_SESSION_ID=sid, CLAUDE_PROJECT_DIR=str(project))
    name = f"mcp-{index}"
    proc = ctx.env.spawn([PYTHON, "-m", "claudematrix", "mcp"], env=env, stderr_name=name)
    peer = Peer(ctx.env, name, proc)
    _mcp_call(
        peer,
        1,
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "claudematrix-bench", "version": "1"},
        },
    )
    _mcp_call(peer, None, "notifications/initialized", {})
    _mcp_call(peer, 3, "tools/list", {})
    _mcp_call(peer, 2, "tools/call", {"name": "whoami", "arguments": {}})
    return peer, sid


def _start_servers(ctx: Ctx, n: int) -> tuple[list[Peer], list[str], list[float]]:
    """n sessions, at most WINDOW starting at a time; returns them and spawn->ready ms."""
    servers: list[Peer] = []
    sessions: list[str] = []
    ready_ms: list[float] = []
    starting: dict[int, float] = {}

    while len(servers) < n or starting:
        while len(servers) < n and len(starting) < WINDOW:
            starting[len(servers)] = time.monotonic()
            peer, sid = _spawn_session(ctx, len(servers))
            servers.append(peer)
            sessions.append(sid)
        index = min(starting)
        _mcp_result(servers[index], 2, 240.0)
        ready_ms.append((time.monotonic() - starting.pop(index)) * 1000)
    return servers, sessions, ready_ms


def bench_scale(ctx: Ctx) -> list[Row]:
    n = 8 if ctx.quick else 50
    reps = 5 if ctx.quick else 12
    alone = synapse_idle(ctx)
    ctx.log(f"   starting {n} MCP servers ({WINDOW} at a time)")
    servers, sessions, ready_ms = _start_servers(ctx, n)
    raw_peers: list[Peer] = []
    fan = ctx.our_peers(["bench-fan"])
    watch = StoreWatch(ctx.identity_dir(sid) for sid in sessions)
    try:
        lobby = fan[0].lobby
        members = _lobby_size(ctx, lobby)
        ctx.log(f"   lobby has {members} members; making a raw room of the same size")
        sender = ctx.raw_user("raw-fan-s")
        receivers = [ctx.raw_user(f"raw-fan-r{k}") for k in range(n)]
        idle = [ctx.raw_user(f"raw-fan-i{k}") for k in range(max(0, members - n - 1))]
        room = sender.create_room([u.user_id for u in receivers + idle])
        for user in receivers + idle:
            user.join(room)
        raw_send = ctx.raw_peer("raw-fan-send", "send", sender)
        raw_recv = [ctx.raw_peer(f"raw-fan-recv{k}", "recv", u) for k, u in enumerate(receivers)]
        raw_peers = [raw_send, *raw_recv]
        ctx.raw_peers_ready(raw_peers)
        fanout_peer = fan[0].peer

        def raw_once(token: str) -> float:
            raw_send.write(f"send {room} {token}")
            t0 = float(raw_send.expect("sent", FANOUT_TIMEOUT)[2])
            times: dict[int, float] = {}

            def accept(i: int, f: list[str]) -> bool:
                if i > 0 and f[:2] == ["got", token]:
                    times[i] = float(f[2])
                return len(times) == n

            collect(raw_peers, accept, FANOUT_TIMEOUT, f"raw fan-out {token}")
            return (max(times.values()) - t0) * 1000

        def visible(token: str) -> Callable[[int], bool]:
            def check(i: int) -> bool:  # in the store, and mail.marker says so
                local = watch.row_id(i, token + " ")
                return local is not None and watch.marker(i) >= local

            return check

        def ours_once(token: str, timeout: float = FANOUT_TIMEOUT) -> float:
            fanout_peer.write(f"send {lobby} {token}")
            seen = watch.wait(
                visible(token),
                range(n),
                timeout,
                f"lobby message {token}",
                poll=0.02,
                abort=fanout_peer.failure,
            )
            t0 = float(fanout_peer.expect("sent", FANOUT_TIMEOUT)[2])
            return (max(seen.values()) - t0) * 1000

        ours_once("fw0", timeout=180.0)  # warm-up: every session has synced the lobby
        raw_once("fw0r")
        raw = Dist(f"raw room of {members}, last of {n} /sync clients", "ms")
        mine = Dist(f"lobby of {members}, last of {n} sessions (row + mail.marker)", "ms")
        # CPU while each side's rounds run: the daemon and our n sessions' shims, and Synapse.
        servers_pids = [p.proc.pid for p in servers] + [daemon_pid(ctx.config.home)]
        pids = {"servers": servers_pids, "synapse": [synapse_pid(ctx.config)]}
        used = {f"{side}_{who}": 0.0 for side in ("raw", "ours") for who in pids}
        wall = {"raw": 0.0, "ours": 0.0}

        def accounted(side: str, fn: Callable[[], float]) -> float:
            before = {who: cpu_seconds(p) for who, p in pids.items()}
            t0 = time.monotonic()
            sample = fn()
            wall[side] += time.monotonic() - t0
            for who, p in pids.items():
                used[f"{side}_{who}"] += cpu_seconds(p) - before[who]
            return sample

        for i in range(reps):
            raw.samples.append(accounted("raw", functools.partial(raw_once, f"f{i}r")))
            mine.samples.append(accounted("ours", functools.partial(ours_once, f"f{i}o")))
        load = {k: round(v / wall[k.split("_")[0]], 2) for k, v in used.items()}
        rss = Dist("VmRSS per session (its shim)", "MiB", [rss_mib(p.proc.pid) for p in servers])
        synapse = _synapse_rss(ctx)

        def new_session() -> tuple[Peer, float, float]:
            t0 = time.monotonic()
            peer, _sid = _spawn_session(ctx, len(servers) + 1000)
            _mcp_result(peer, 3, 120.0)
            listed = (time.monotonic() - t0) * 1000
            _mcp_result(peer, 2, 120.0)
            return peer, listed, (time.monotonic() - t0) * 1000

        def send_to_lobby(token: str) -> None:
            fanout_peer.write(f"send {lobby} {token}")
            fanout_peer.expect("sent", FANOUT_TIMEOUT, f"the lobby message {token}")

        daemon = daemon_rows(ctx, servers, watch, new_session, send_to_lobby, alone)
    finally:
        watch.close()
        ctx.stop(raw_peers)
        ctx.stop(fan)
        ctx.stop(servers)
    ready = Dist(f"MCP server spawn -> whoami answered ({WINDOW} starting at once)", "ms", ready_ms)
    scale_note = "" if n == 50 else f" (quick mode: {n} sessions, not 50)"
    rss_row = judge(
        "rss",
        None,
        rss,
        title=f"Session RSS (the MCP shim), {n} sessions{scale_note}",
        note=f"Synapse RSS with {n} sessions: {synapse:.0f} MiB; session spawn -> tools "
        f"ready ({WINDOW} at once, the first also starting the daemon) p50 "
        f"{ready.q('p50'):.0f} ms, p95 {ready.q('p95'):.0f} ms",
    )
    rss_row.extra["mcp_ready_ms"] = ready.summary()
    rss_row.extra["synapse_rss_mib"] = round(synapse, 1)
    fan_row = judge(
        "fanout",
        raw,
        mine,
        title=f"Lobby fan-out to the last of {n}{scale_note}",
        note=f"{reps} pairs; lobby and raw room both have {members} members; CPU cores busy "
        f"during raw / ours rounds: our {n} idle sessions {load['raw_servers']:.2f} / "
        f"{load['ours_servers']:.2f}, Synapse {load['raw_synapse']:.2f} / "
        f"{load['ours_synapse']:.2f}",
    )
    fan_row.extra["cpu_cores_busy"] = load
    return [rss_row, fan_row, *daemon]


def _lobby_size(ctx: Ctx, lobby: str) -> int:
    """Members of the lobby, asked as the machine account (its credentials are in the dir)."""
    account = json.loads((ctx.identity_dir("_machine") / "account.json").read_text())
    machine = Raw(ctx.url, account["access_token"], account["user_id"])
    try:
        return len(machine.joined_members(lobby).get("joined", {}))
    finally:
        machine.close()


def _synapse_rss(ctx: Ctx) -> float:
    from claudematrix import homeserver

    pid = homeserver.status(ctx.config).pid
    return rss_mib(pid) if pid else float("nan")
