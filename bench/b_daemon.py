"""The daemon with many sessions: memory, a new session's start, idling, and catching up.

Run inside the scale phase (bench/b_scale.py), with its n sessions connected through their
shims to the one daemon:

- Daemon RSS: VmRSS of the daemon process holding the n identities.
- Tools ready: a new session (a shim spawned like Claude Code spawns it, daemon running):
  spawn -> initialize -> tools/list answered, vs the bare interpreter start
  (`python -I -S -c pass`); alternating, one at a time. The note adds spawn -> the first
  `whoami` answered, which for a never-seen session includes registering its account.
- Idle: the n sessions left alone for a window (10 min; 15 s in quick mode): room events made
  in that time (the machine account's sync over the lobby and every project room) and the CPU
  of Synapse, the daemon and the shims, in cores.
- Catch-up: the daemon is killed (-9) and a message goes into the lobby while it is down; the
  shims start a new daemon; from the moment it answers to the moment every session has the
  message in its store (and its mail.marker says so).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench._env import PYTHON, wait_for
from bench._proc import Peer, cpu_seconds, rss_mib, synapse_pid
from bench._rawpeer import Raw
from bench._stats import Dist, Row
from bench._watch import StoreWatch
from bench._world import Ctx
from bench.budgets import judge

__all__ = ["daemon_rows", "daemon_pid", "synapse_idle"]

IDLE_S = 600.0
IDLE_QUICK_S = 15.0


def daemon_pid(home: Path) -> int:
    record = json.loads((home / "daemon.pid").read_text())
    return int(record["pid"])


def daemon_rows(
    ctx: Ctx,
    shims: list[Peer],
    watch: StoreWatch,
    spawn_session: Callable[[], tuple[Peer, float, float]],
    send_to_lobby: Callable[[str], None],
    synapse_alone: Dist,
) -> list[Row]:
    n = len(shims)
    home = Path(ctx.config.home)
    rows = [
        judge(
            "daemon_rss",
            None,
            Dist(f"VmRSS of the daemon with {n} identities", "MiB", [rss_mib(daemon_pid(home))]),
            title=f"Daemon RSS, {n} identities",
        )
    ]
    rows.extend(_idle(ctx, shims, home, synapse_alone))
    rows.append(_catch_up(ctx, home, watch, n, send_to_lobby))
    rows.append(_tools_ready(ctx, spawn_session))  # last: its sessions leave (events)
    return rows


def synapse_idle(ctx: Ctx) -> Dist:
    """Synapse's own CPU with no session at all (context for the idle row)."""
    window = 5.0 if ctx.quick else 60.0
    pid = [synapse_pid(ctx.config)]
    before, t0 = cpu_seconds(pid), time.monotonic()
    wait_for(lambda: time.monotonic() - t0 >= window, window + 5, "Synapse alone", 0.5)
    cores = (cpu_seconds(pid) - before) / (time.monotonic() - t0)
    return Dist(f"Synapse alone, no sessions, {window:.0f} s", "cores", [cores])


def _tools_ready(ctx: Ctx, spawn_session: Callable[[], tuple[Peer, float, float]]) -> Row:
    reps = 4 if ctx.quick else 10
    bare = Dist("python -I -S -c pass", "ms")
    ready = Dist("new session: shim spawn -> tools/list answered", "ms")
    first_call = Dist("new session: shim spawn -> first whoami answered", "ms")
    started: list[Peer] = []
    try:
        for _ in range(reps):
            t0 = time.monotonic()
            subprocess.run([PYTHON, "-I", "-S", "-c", "pass"], check=True)
            bare.samples.append((time.monotonic() - t0) * 1000)
            peer, listed_ms, answered_ms = spawn_session()
            started.append(peer)
            ready.samples.append(listed_ms)
            first_call.samples.append(answered_ms)
    finally:
        ctx.stop(started)
    row = judge(
        "tools_ready",
        bare,
        ready,
        note=f"{reps} pairs, one new session at a time; its first whoami (a never-seen "
        f"session registers its account) p50 {first_call.q('p50'):.0f} ms",
    )
    row.extra["first_whoami_ms"] = first_call.summary()
    return row


def _idle(ctx: Ctx, shims: list[Peer], home: Path, synapse_alone: Dist) -> list[Row]:
    n = len(shims)
    window = IDLE_QUICK_S if ctx.quick else IDLE_S
    account = json.loads((ctx.identity_dir("_machine") / "account.json").read_text())
    machine = Raw(ctx.url, account["access_token"], account["user_id"])
    parts = {
        "synapse": [synapse_pid(ctx.config)],
        "daemon": [daemon_pid(home)],
        "shims": [p.proc.pid for p in shims],
    }
    try:
        since = str(machine.sync(None, 0)["next_batch"])
        ctx.log(f"   {n} sessions idle for {window:.0f} s")
        cpu0, t0 = {k: cpu_seconds(v) for k, v in parts.items()}, time.monotonic()
        wait_for(lambda: time.monotonic() - t0 >= window, window + 5, "the idle window", 0.5)
        wall = time.monotonic() - t0
        split = {k: round((cpu_seconds(v) - cpu0[k]) / wall, 4) for k, v in parts.items()}
        cores = sum(split.values())
        after = machine.sync(since, 0)
    finally:
        machine.close()
    rooms = (after.get("rooms") or {}).get("join") or {}
    events = sum(len((room.get("timeline") or {}).get("events") or []) for room in rooms.values())
    what = f"{n} idle sessions, {window:.0f} s"
    return [
        judge(
            "idle_events",
            None,
            Dist("room events in the lobby and project rooms", "events", [float(events)]),
            title=f"Idle: room events, {what}",
        ),
        _with_split(
            judge(
                "idle_cpu",
                synapse_alone,
                Dist("CPU of Synapse + daemon + shims", "cores", [cores]),
                title=f"Idle: CPU, {what}",
                note="cores: Synapse {synapse}, daemon {daemon}, shims {shims}".format(**split),
            ),
            split,
        ),
    ]


def _with_split(row: Row, split: dict[str, float]) -> Row:
    row.extra["cores"] = split
    return row


def _catch_up(
    ctx: Ctx, home: Path, watch: StoreWatch, n: int, send_to_lobby: Callable[[str], None]
) -> Row:
    reps = 2 if ctx.quick else 5
    took = Dist(f"daemon answers again -> the message in all {n} stores", "ms")
    for i in range(reps):
        token = f"cu{i}-{uuid.uuid4().hex[:6]}"
        old = daemon_pid(home)
        os.kill(old, signal.SIGKILL)
        send_to_lobby(token)  # while no daemon is there to hear it
        back = wait_for(
            functools.partial(_new_daemon_answers, home, old), 60, "a new daemon to answer"
        )

        def arrived(k: int, token: str = token) -> bool:
            row = watch.row_id(k, token + " ")
            return row is not None and watch.marker(k) >= row

        seen = watch.wait(arrived, range(n), 60.0, f"{token} after the restart", poll=0.01)
        took.samples.append((max(seen.values()) - back) * 1000)
    return judge("catch_up", None, took, note=f"{reps} kills of the daemon")


def _new_daemon_answers(home: Path, old: int) -> float | None:
    from claudematrix.thin import link

    try:
        if daemon_pid(home) == old or not link.answers(str(home)):
            return None
    except (OSError, ValueError, KeyError):
        return None
    return time.monotonic()
