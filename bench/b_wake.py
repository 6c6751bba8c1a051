"""Idle wake: a message is sent -> the idle session's waiting Stop hook exits with the header.

Session B (a session: its shim, its identity held and synced by the machine's daemon) is idle:
its `stop` hook has run, then its asyncRewake waiter (`hooks/run.py stop-wait`, the exact
command of hooks/hooks.json) blocks. A sample ends when the waiter process exits (code 2,
headers on stderr), seen through a pidfd.
- wake: session A calls its `send` tool (over MCP, through its shim) to B: the whole path.
- wake_recv: a raw stdlib client sends into its DM with B: our receive side only.
Raw, the baseline of both: a stdlib client sends, another process long-polls /sync: send ->
/sync receipt. Samples alternate raw, wake, wake_recv.
"""

from __future__ import annotations

import json
import os
import select
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench._env import HOOK, PYTHON, REPO, BenchError, wait_for
from bench._stats import Dist, Row
from bench._world import Ctx
from bench.budgets import judge

__all__ = ["bench_wake"]

TIMEOUT = 15.0


def _hook_input(session: str, event: str) -> bytes:
    return json.dumps(
        {
            "session_id": session,
            "transcript_path": "/dev/null",
            "cwd": str(REPO),
            "permission_mode": "default",
            "hook_event_name": event,
            "stop_hook_active": False,
            "last_assistant_message": "done",
        }
    ).encode()


def _hook_env(ctx: Ctx) -> dict[str, str]:
    return ctx.env.child_env(
        CLAUDEMATRIX_IDLE_WAKE="1",  # a bench process is not an interactive Claude Code
        CLAUDE_PID=str(os.getpid()),  # "Claude Code" is the bench: alive throughout
        CLAUDE_CODE_SESSION_ATTENDED="1",
    )


def _waiting(pid: int, identity: Path) -> bool:
    """The waiter has written its pid and sleeps in poll()."""
    try:
        if (identity / "waiter.pid").read_text().strip() != str(pid):
            return False
        wchan = Path(f"/proc/{pid}/wchan").read_text()
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state == "S" and ("poll" in wchan or wchan in ("", "0"))


def _received_ms(identity: Path, token: str) -> int:
    conn = sqlite3.connect(f"file:{identity / 'store.db'}?mode=ro", uri=True, timeout=5.0)
    try:
        row = conn.execute(
            "SELECT received_ts FROM messages WHERE body LIKE ?", (token + " %",)
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        raise BenchError(f"the waiter woke, but {token} is not in the store")
    return int(row[0])


def bench_wake(ctx: Ctx) -> list[Row]:
    reps = 10 if ctx.quick else 40
    sender_raw, recipient_raw = ctx.raw_user("raw-wa"), ctx.raw_user("raw-wb")
    room = sender_raw.create_room([recipient_raw.user_id], direct=True)
    recipient_raw.join(room)
    rsend = ctx.raw_peer("raw-wake-send", "send", sender_raw)
    rrecv = ctx.raw_peer("raw-wake-recv", "recv", recipient_raw)
    ours = ctx.our_peers(["bench-wake-a", "bench-wake-b"], trust=(sender_raw.user_id,))
    a, b = ours
    env = _hook_env(ctx)
    waiters: list[subprocess.Popen[bytes]] = []
    split: list[tuple[float, float, float]] = []
    try:
        ctx.raw_peers_ready([rsend, rrecv])
        raw_dm = sender_raw.create_room([b.user_id], direct=True)
        wait_for(
            lambda: b.user_id in sender_raw.joined_members(raw_dm).get("joined", {}),
            TIMEOUT,
            "session B to join the raw sender's DM",
            poll=0.05,
        )

        def hook(event: str) -> subprocess.Popen[bytes]:
            proc = subprocess.Popen(
                [PYTHON, "-I", "-S", str(HOOK), event],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=REPO,
            )
            assert proc.stdin is not None
            proc.stdin.write(_hook_input(b.name, "Stop"))
            proc.stdin.close()
            proc.stdin = None  # closed: communicate() must not flush it
            return proc

        def woken_by(send: Callable[[], None], token: str) -> float:
            """B goes idle, its waiter blocks, send() runs: when the waiter exited."""
            stop = hook("stop")  # the turn ends: the session goes idle
            stop.communicate(timeout=TIMEOUT)
            waiter = hook("stop-wait")
            waiters.append(waiter)
            wait_for(
                lambda: waiter.poll() is not None or _waiting(waiter.pid, b.dir),
                TIMEOUT,
                "the Stop-hook waiter to block",
                poll=0.002,
            )
            if waiter.poll() is not None:
                raise BenchError(
                    f"the waiter exited at once ({waiter.returncode}): "
                    f"{waiter.communicate()[1].decode(errors='replace')[:300]}"
                )
            pidfd = os.pidfd_open(waiter.pid)
            try:
                send()
                ready, _, _ = select.select([pidfd], [], [], TIMEOUT)
                t_exit = time.monotonic()
            finally:
                os.close(pidfd)
            if not ready:
                raise BenchError(f"the waiter did not wake within {TIMEOUT:g} s for {token}")
            _, err = waiter.communicate(timeout=TIMEOUT)
            waiters.remove(waiter)
            if waiter.returncode != 2 or b"new message" not in err:
                raise BenchError(
                    f"the waiter exited {waiter.returncode} without the header: "
                    f"{err.decode(errors='replace')[:300]}"
                )
            return t_exit

        def raw_once(token: str) -> float:
            rsend.write(f"send {room} {token}")
            t0 = float(rsend.expect("sent", TIMEOUT)[2])
            t = float(rrecv.expect(f"got {token} ", TIMEOUT, f"raw receipt {token}")[2])
            return (t - t0) * 1000

        def ours_once(token: str) -> float:
            t_exit = woken_by(lambda: a.peer.write(f"send {b.user_id} {token}"), token)
            t0 = float(a.peer.expect("sent", TIMEOUT)[2])
            # Where the time goes: the row's received_ts is stamped in the commit's
            # transaction (wall-clock ms), mail.marker is rewritten after the commit.
            offset_ns = time.time_ns() - time.monotonic_ns()
            committed = (_received_ms(b.dir, token) * 1e6 - offset_ns) / 1e9
            marker = ((b.dir / "mail.marker").stat().st_mtime_ns - offset_ns) / 1e9
            split.append(
                ((committed - t0) * 1000, (marker - committed) * 1000, (t_exit - marker) * 1000)
            )
            return (t_exit - t0) * 1000

        def received_once(token: str) -> float:
            t_exit = woken_by(lambda: rsend.write(f"send {raw_dm} {token}"), token)
            t0 = float(rsend.expect("sent", TIMEOUT)[2])
            return (t_exit - t0) * 1000

        for i in range(2):  # warm-up: DM rooms made, first mail announced
            raw_once(f"ww{i}r")
            ours_once(f"ww{i}o")
            received_once(f"ww{i}v")
        raw = Dist("raw Synapse send -> /sync receipt", "ms")
        mine = Dist("send tool -> waiter exits 2 with the header", "ms")
        received = Dist("raw send -> waiter exits 2 with the header", "ms")
        for i in range(reps):
            raw.samples.append(raw_once(f"w{i}r"))
            mine.samples.append(ours_once(f"w{i}o"))
            received.samples.append(received_once(f"w{i}v"))
    finally:
        ctx.env.stop_procs(waiters, eof_wait=0.0, grace=5.0)
        ctx.stop([rsend, rrecv])
        ctx.stop(ours)
    parts = [
        Dist(label, "ms", [x[k] for x in split[2:]])
        for k, label in enumerate(
            (
                "send -> row committed (received_ts)",
                "commit -> mail.marker written",
                "mail.marker -> waiter exited",
            )
        )
    ]
    row = judge(
        "wake",
        raw,
        mine,
        note=f"{reps} triples (raw, wake, wake_recv); waiter = hooks/run.py stop-wait; p50 "
        f"send -> commit {parts[0].q('p50'):.0f} ms, commit -> mail.marker "
        f"{parts[1].q('p50'):.0f} ms, mail.marker -> waiter exit {parts[2].q('p50'):.0f} ms "
        "(file times: +-4 ms)",
    )
    row.extra.update(
        send_to_commit=parts[0].summary(),
        commit_to_marker=parts[1].summary(),
        marker_to_exit=parts[2].summary(),
    )
    received_row = judge(
        "wake_recv",
        raw,
        received,
        note=f"{reps} triples; the same raw sender process for the baseline and ours; ours "
        "receives through session B's sync in the daemon",
    )
    return [row, received_row]
