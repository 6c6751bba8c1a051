"""Start-up: a new session while the homeserver runs, and the homeserver's first start.

New session: Service(...) + Service.connect() for a never-seen identity (state dir and store
created, account registered, profile set, lobby joined), in the bench process, as the MCP
server does it. Its budget is absolute (bench/budgets.py); context: the same Matrix calls
made raw (register with the shared secret, invite into an invite-only room, join, list
members).

First start, with Synapse installed but stopped: homeserver.start() until it returns (the
server answers /versions) vs Synapse's own start: the same command line run directly until
the first 200 on /_matrix/client/versions (polled every 10 ms). Alternating, same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import http.client
import json
import socket
import subprocess
import time
from urllib.parse import quote

from bench._env import BenchError, wait_for
from bench._rawpeer import Raw
from bench._stats import Dist, Row
from bench._world import Ctx
from bench.budgets import judge

__all__ = ["bench_new_session", "bench_first_start"]


def bench_new_session(ctx: Ctx) -> list[Row]:
    from claudematrix.identity import Identity
    from claudematrix.ids import IdentityName
    from claudematrix.service import Service

    reps = 6 if ctx.quick else 15
    machine = ctx.raw_user("raw-machine")
    lobby = machine.create_room([])
    raw = Dist("raw: register + invite + join + members", "ms")
    ours = Dist("Service() + Service.connect()", "ms")
    config = ctx.config

    async def run() -> None:
        for i in range(-1, reps):  # -1: warm-up (the machine account and lobby are made)
            t0 = time.monotonic()
            user = ctx.raw_user(f"raw-new{i + 1}")
            machine.invite(lobby, user.user_id)
            user.join(lobby)
            user.joined_members(lobby)
            elapsed = (time.monotonic() - t0) * 1000
            user.close()
            name = f"bench-new{i + 1}"
            t0 = time.monotonic()
            service = Service(
                config, Identity(IdentityName(name), False, False), progress=lambda _line: None
            )
            try:
                await service.connect()
                mine = (time.monotonic() - t0) * 1000
            finally:
                await service.close()
            _leave_all(ctx, name)
            if i >= 0:
                raw.samples.append(elapsed)
                ours.samples.append(mine)

    try:
        asyncio.run(run())
    finally:
        machine.close()
    return [judge("new_session", raw, ours, note=f"{reps} new identities")]


def _leave_all(ctx: Ctx, name: str) -> None:
    """Not timed: the measured identity leaves its rooms again, so later benchmarks meet a
    lobby of the size they describe (the 50 sessions of the scale bench, not 70)."""
    account = json.loads((ctx.identity_dir(name) / "account.json").read_text())
    me = Raw(ctx.url, account["access_token"], account["user_id"])
    try:
        for room in me.call("GET", "/_matrix/client/v3/joined_rooms").get("joined_rooms", []):
            me.call("POST", f"/_matrix/client/v3/rooms/{quote(room, safe='')}/leave", {})
    finally:
        me.close()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _versions_ok(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", "/_matrix/client/versions")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _answered_or_exited(proc: subprocess.Popen[bytes], port: int) -> bool:
    return proc.poll() is not None or _versions_ok(port)


def bench_first_start(ctx: Ctx) -> list[Row]:
    from claudematrix import homeserver
    from claudematrix.homeserver import homeserver_paths

    pairs = 1 if ctx.quick else 3
    config = ctx.config
    paths = homeserver_paths(config)
    python = ctx.env.synapse_venv / "bin" / "python"
    argv = [str(python), "-I", "-m", "synapse.app.homeserver", "-c", str(paths.config_path)]
    raw = Dist("Synapse started directly -> first 200 on /versions", "ms")
    ours = Dist("homeserver.start() returns", "ms")
    port = ctx.env.port
    for _ in range(pairs):
        homeserver.stop(config)
        wait_for(lambda: _port_free(port), 30.0, "the homeserver's port to be free")
        with open(ctx.env.run_dir / "raw-synapse.log", "ab") as log:
            t0 = time.monotonic()
            proc = subprocess.Popen(
                argv,
                cwd=paths.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ctx.env.procs.append(proc)
        try:
            wait_for(
                functools.partial(_answered_or_exited, proc, port),
                120.0,
                "Synapse run directly to answer",
            )
            answered = time.monotonic()
            if proc.poll() is not None:
                raise BenchError(
                    f"Synapse run directly exited ({proc.returncode}); see "
                    f"{ctx.env.run_dir / 'raw-synapse.log'}"
                )
            raw.samples.append((answered - t0) * 1000)
        finally:
            ctx.env.stop_procs([proc], eof_wait=0.0, grace=30.0)
        wait_for(lambda: _port_free(port), 30.0, "the homeserver's port to be free")
        t0 = time.monotonic()
        homeserver.start(config)
        ours.samples.append((time.monotonic() - t0) * 1000)
    with contextlib.suppress(Exception):
        homeserver.start(config)  # later benchmarks need it running
    return [judge("first_start", raw, ours, note=f"{pairs} pair(s), same database")]
