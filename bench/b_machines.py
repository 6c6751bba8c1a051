"""Two machines over Matrix federation: delivery between them, and catch-up after a restart.

Two machines of our own in the run dir, alpha and beta: each its state dir and its embedded
Synapse, federating from 127.0.0.1 and 127.0.0.2, paired as the person does it (`machine
card`, `machine add`, both ways). Both Synapses serve both sides of each comparison, so the
raw baseline has exactly the same federation settings (TLS, pinned certificates).

Cross-machine delivery:
- raw: a stdlib client on alpha's Synapse PUTs into a room it shares with a raw user on
  beta's Synapse; that user's /sync long-poll, on beta, stamps its arrival.
- ours: session A on alpha calls its `send` tool (through its shim; alpha's daemon sends) to
  session B on beta; B's store row and mail.marker, written by beta's daemon, end the sample.
Samples alternate raw, ours.

Catch-up after a peer restarts: beta's Synapse is killed -9, A sends while it is away (alpha
accepts and queues), beta's homeserver is started again; from the moment it answers to the
last of those messages in B's store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench._env import PYTHON, BenchError, free_port
from bench._proc import Peer
from bench._rawpeer import Raw, register
from bench._stats import Dist, Row
from bench._watch import StoreWatch
from bench._world import Ctx
from bench.budgets import judge

__all__ = ["bench_machines"]

_RAWPEER = Path(__file__).resolve().parent / "_rawpeer.py"
_STEP_TIMEOUT = 30.0
_CLI_TIMEOUT = 180.0


@dataclass
class _Machine:
    name: str
    home: Path
    port: int
    federation: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "CLAUDEMATRIX_HOME": str(self.home),
            "CLAUDEMATRIX_PORT": str(self.port),
            "CLAUDEMATRIX_FEDERATION": self.federation,
            "CLAUDEMATRIX_MACHINE_NAME": self.name,
            # Sessions here send trusted mail to the trusted session on the other machine.
            "CLAUDEMATRIX_MODE": "trusted",
        }

    def cli(self, ctx: Ctx, *args: str) -> str:
        return ctx.cli(self.env(), *args, who=self.name, timeout=_CLI_TIMEOUT)

    def secret(self) -> str:
        return (self.home / "homeserver" / "registration_shared_secret").read_text().strip()

    def synapse_pid(self) -> int:
        return int((self.home / "homeserver" / "homeserver.pid").read_text().split()[0])

    def answering(self) -> bool:
        try:
            Raw(self.url, timeout=1).call("GET", "/_matrix/client/versions")
        except (OSError, ValueError):
            return False
        return True


def _machine(ctx: Ctx, name: str, address: str) -> _Machine:
    return _Machine(name, ctx.env.run_dir / name, free_port(), f"{address}:{free_port()}")


def _session(ctx: Ctx, machine: _Machine, name: str, trust: list[str]) -> tuple[Peer, str, Path]:
    peer = Peer.start(
        ctx.env,
        name,
        [PYTHON, "-m", "bench._sessionpeer"],
        {"identity": name, "trust": trust},
        extra_env=machine.env(),
    )
    fields = peer.expect("ready", 240.0, f"session {name} on {machine.name}")
    return peer, fields[1], machine.home / "identities" / name


def _raw_peer(ctx: Ctx, machine: _Machine, name: str, role: str, user: Raw) -> Peer:
    spec: dict[str, object] = {
        "role": role,
        "url": machine.url,
        "token": user.token,
        "user": user.user_id,
    }
    return Peer.start(ctx.env, name, [PYTHON, "-I", str(_RAWPEER)], spec)


def bench_machines(ctx: Ctx) -> list[Row]:
    reps = 20 if ctx.quick else 100
    rounds, per_round = (1, 5) if ctx.quick else (3, 20)
    alpha, beta = _machine(ctx, "alpha", "127.0.0.1"), _machine(ctx, "beta", "127.0.0.2")
    peers: list[Peer] = []
    watch: StoreWatch | None = None
    try:
        for machine in (alpha, beta):
            machine.cli(ctx, "up")
        cards = {m.name: m.cli(ctx, "machine", "card").strip() for m in (alpha, beta)}
        alpha.cli(ctx, "machine", "add", cards["beta"], "--yes")
        beta.cli(ctx, "machine", "add", cards["alpha"], "--yes")

        # ours: B first (its ID is A's to trust), then A, then B trusts A back.
        b_peer, b_id, b_dir = _session(ctx, beta, "bench-xb", [])
        a_peer, a_id, _a_dir = _session(ctx, alpha, "bench-xa", [b_id])
        peers += [b_peer, a_peer]
        beta.cli(ctx, "--as", "bench-xb", "trust", a_id, "--yes")
        watch = StoreWatch([b_dir])

        # raw: one user on each Synapse, in a room made on alpha
        ra = register(alpha.url, alpha.secret(), f"raw-xa-{os.getpid()}")
        rb = register(beta.url, beta.secret(), f"raw-xb-{os.getpid()}")
        room = ra.create_room([rb.user_id])
        rb.join(room)
        rsend = _raw_peer(ctx, alpha, "raw-x-send", "send", ra)
        rrecv = _raw_peer(ctx, beta, "raw-x-recv", "recv", rb)
        peers += [rsend, rrecv]
        ctx.raw_peers_ready([rsend, rrecv])

        def raw_once(token: str) -> float:
            rsend.write(f"send {room} {token}")
            t0 = float(rsend.expect("sent", _STEP_TIMEOUT)[2])
            t = float(rrecv.expect(f"got {token} ", _STEP_TIMEOUT, f"raw receipt {token}")[2])
            return (t - t0) * 1000

        def ours_once(token: str) -> float:
            a_peer.write(f"send {b_id} {token}")

            def visible(i: int) -> bool:
                assert watch is not None
                local = watch.row_id(i, token + " ")
                return local is not None and watch.marker(i) >= local

            assert watch is not None
            seen = watch.wait(visible, [0], _STEP_TIMEOUT, f"{token} on beta", abort=a_peer.failure)
            t0 = float(a_peer.expect("sent", _STEP_TIMEOUT)[2])
            return (seen[0] - t0) * 1000

        for i in range(3):  # warm-up: the DM made across, keys shared, connections open
            raw_once(f"xw{i}r")
            ours_once(f"xw{i}o")
        raw, ours = (
            Dist("raw federation send -> /sync on the other machine", "ms"),
            Dist("send tool -> row + mail.marker on the other machine", "ms"),
        )
        for i in range(reps):
            raw.samples.append(raw_once(f"x{i}r"))
            ours.samples.append(ours_once(f"x{i}o"))
        delivery = judge(
            "cross_delivery",
            raw,
            ours,
            note=f"{reps} pairs; alpha (127.0.0.1) -> beta (127.0.0.2), each its own Synapse, "
            "TLS federation with pinned certificates",
        )

        catch_up = Dist("beta answers again -> every queued message in B's store", "ms")
        for r in range(rounds):
            catch_up.samples.append(_catch_up(ctx, beta, a_peer, b_id, watch, f"xc{r}", per_round))
        caught = judge(
            "cross_catch_up",
            None,
            catch_up,
            title=f"Cross-machine catch-up after the peer restarts ({rounds} x {per_round} msgs)",
            note="beta's Synapse killed -9, A sends meanwhile, beta's homeserver started again",
        )
        return [delivery, caught]
    finally:
        if watch is not None:
            watch.close()
        ctx.stop(peers)
        for machine in (alpha, beta):
            for args in (("daemon", "stop"), ("down",)):
                with contextlib.suppress(BenchError, subprocess.SubprocessError):
                    machine.cli(ctx, *args)


def _catch_up(
    ctx: Ctx, beta: _Machine, a_peer: Peer, b_id: str, watch: StoreWatch, tag: str, count: int
) -> float:
    pid = beta.synapse_pid()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + _STEP_TIMEOUT
    while beta.answering():
        if time.monotonic() > deadline:
            raise BenchError("beta's homeserver still answers after kill -9")
        time.sleep(0.02)
    for i in range(count):
        a_peer.write(f"send {b_id} {tag}-{i}")
        a_peer.expect("sent", _STEP_TIMEOUT, f"{tag}-{i} accepted on alpha")
    back: list[float] = []

    def stamp_answer() -> None:
        until = time.monotonic() + _CLI_TIMEOUT
        while time.monotonic() < until:
            if beta.answering():
                back.append(time.monotonic())
                return
            time.sleep(0.01)

    stamper = threading.Thread(target=stamp_answer, daemon=True)
    stamper.start()
    beta.cli(ctx, "up")  # (beta's daemon may have started it already: then this just checks)
    stamper.join(_CLI_TIMEOUT)
    if not back:
        raise BenchError("beta's homeserver did not answer again")
    seen = watch.wait(
        lambda i: watch.count(i, tag + "-") >= count, [0], 60.0, f"{tag}: queued mail on beta"
    )
    return (seen[0] - back[0]) * 1000
