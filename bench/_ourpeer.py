"""One ClaudeMatrix session as a child process: our side of each comparison.

Run as `python -m bench._ourpeer` with the bench's environment. A JSON line on stdin says
which identity to be (and, under "trust", whom it trusts, so that a raw sender's invitation
is joined rather than held as a request); it connects (Service.connect: account, lobby),
runs the session's sync loop (Service.sync_forever) as the MCP server does, prints
`ready <user id> <lobby room>`, then takes commands on stdin:

- `send <to> <token>`: Service.send; prints `sent <token> <t0> <t1>`.
- `burst <to> <n> <tag>`: n sends one after another; prints `burst <tag> <t0> <t1>`.

t0/t1 are time.monotonic() around the call. A failed command prints `error <token> <why>`.
Exits when stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time

from bench._rawpeer import FILLER
from claudematrix.config import load_config
from claudematrix.errors import ClaudeMatrixError
from claudematrix.identity import Identity
from claudematrix.ids import IdentityName, UserID
from claudematrix.service import Service


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    for line in sys.stdin:
        loop.call_soon_threadsafe(queue.put_nowait, line)
    loop.call_soon_threadsafe(queue.put_nowait, None)


async def _main() -> None:
    spec = json.loads(sys.stdin.readline())
    service = Service(
        load_config(),
        Identity(IdentityName(spec["identity"]), False, False),
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    for user in spec.get("trust", []):
        service.store.set_trusted(UserID(user), True)
    stop = asyncio.Event()
    sync_task: asyncio.Task[None] | None = None
    try:
        await service.connect(start_homeserver=False)
        await service.sync()
        if spec.get("sync", True):
            sync_task = asyncio.create_task(service.sync_forever(stop))
        creds = service.creds
        _out(f"ready {creds.user_id if creds else '-'} {service.store.lobby_room() or '-'}")
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(
            target=_stdin_lines, args=(asyncio.get_running_loop(), queue), daemon=True
        ).start()
        while (line := await queue.get()) is not None:
            cmd = line.split()
            if not cmd:
                continue
            try:
                await _command(service, cmd)
            except ClaudeMatrixError as exc:
                _out(f"error {cmd[-1]} {type(exc).__name__}: {exc}".replace("\n", " "))
    finally:
        stop.set()
        if sync_task is not None:
            sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sync_task
        await service.close()


async def _command(service: Service, cmd: list[str]) -> None:
    if cmd[0] == "send":
        to, token = cmd[1], cmd[2]
        t0 = time.monotonic()
        await service.send(to, f"{token} {FILLER}", subject="bench")
        t1 = time.monotonic()
        _out(f"sent {token} {t0!r} {t1!r}")
    elif cmd[0] == "burst":
        to, count, tag = cmd[1], int(cmd[2]), cmd[3]
        t0 = time.monotonic()
        for i in range(count):
            await service.send(to, f"{tag}-{i} {FILLER}", subject="bench")
        t1 = time.monotonic()
        _out(f"burst {tag} {t0!r} {t1!r}")


if __name__ == "__main__":
    asyncio.run(_main())
