"""The workers the daemon runs: every one listed in the state dir (claudematrix.worker.spec),
each holding its identity's Runtime for as long as it is listed.

`reconcile` brings the running set in line with the list (the CLI asks for it after `worker
start` and `worker stop`, and the daemon at its own start). A worker whose identity fails to
come up is tried again every few seconds; its log (workers/<name>.log) says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from claudematrix.daemon.identities import Identities
from claudematrix.errors import ClaudeMatrixError
from claudematrix.mcp_server.runtime import log
from claudematrix.session_env import SessionEnv
from claudematrix.worker.host import WorkerHost
from claudematrix.worker.spec import WorkerSpec, load_workers, worker_log

__all__ = ["Workers"]

_RETRY_S = 5.0
_STOP_S = 20.0  # a run stopping (5 s) and saying so in its room (10 s)


@dataclass
class _Running:
    spec: WorkerSpec
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None
    host: WorkerHost | None = None
    problem: str | None = None


class Workers:
    def __init__(self, identities: Identities) -> None:
        self.identities = identities
        self._running: dict[str, _Running] = {}
        self._lock = asyncio.Lock()

    async def reconcile(self) -> list[dict[str, Any]]:
        async with self._lock:
            wanted = {spec.name: spec for spec in load_workers()}
            for name, running in list(self._running.items()):
                if wanted.get(name) != running.spec:
                    await self._stop(name)
            for name, spec in wanted.items():
                if name not in self._running:
                    item = _Running(spec, asyncio.Event())
                    item.task = asyncio.create_task(self._keep(item))
                    self._running[name] = item
        return self.summary()

    async def _stop(self, name: str) -> None:
        running = self._running.pop(name)
        running.stop.set()
        if running.task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(running.task), _STOP_S)
        except TimeoutError:
            running.task.cancel()

    async def _keep(self, item: _Running) -> None:
        spec = item.spec
        env = SessionEnv({**os.environ, "CLAUDEMATRIX_SESSION_NAME": spec.name}, cwd=spec.project)
        say = _logger(spec.name)
        while not item.stop.is_set():
            try:
                async with self.identities.lease(spec.identity, env) as runtime:
                    service = await runtime.ready_service()
                    item.host = WorkerHost(spec, service, say)
                    item.problem = None
                    me = service.creds.user_id if service.creds else "?"
                    say(f"worker {spec.name} up as {me}, in {spec.project}")
                    await item.host.run(item.stop)
            except (ClaudeMatrixError, OSError) as exc:
                item.problem = str(exc)
                say(f"worker {spec.name}: {exc}; trying again in {_RETRY_S:.0f} s")
            item.host = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(item.stop.wait(), _RETRY_S)
        say(f"worker {spec.name} stopped")

    def summary(self) -> list[dict[str, Any]]:
        found = []
        for name, running in sorted(self._running.items()):
            host = running.host
            service = host.service if host else None
            creds = service.creds if service else None
            found.append(
                {
                    "name": name,
                    "user_id": creds.user_id if creds else None,
                    "project": running.spec.project,
                    "doing": host.doing if host else "starting",
                    "problem": running.problem,
                }
            )
        return found

    async def close(self) -> None:
        async with self._lock:
            for name in list(self._running):
                await self._stop(name)


def _logger(name: str) -> Callable[[str], None]:
    def say(line: str) -> None:
        log(line)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with contextlib.suppress(OSError):
            fd = os.open(worker_log(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as handle:
                handle.write(f"{stamp} {line}\n")

    return say
