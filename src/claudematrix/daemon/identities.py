"""Each identity's Runtime (its Service, sync and presence) inside the daemon, shared by every
connection of that identity and kept while one is open.

When an identity's last connection closes, its Runtime stays a short grace period (a shim
reconnecting, or Claude Code restarting its MCP server, does not make the session blink
offline; at most a third of its presence TTL), then it stops: presence says "offline".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from claudematrix.config import load_config
from claudematrix.identity import Identity
from claudematrix.ids import IdentityName
from claudematrix.mcp_server.runtime import Runtime, log
from claudematrix.service import Service
from claudematrix.session_env import SessionEnv

__all__ = ["Identities", "RELEASE_GRACE_S"]

RELEASE_GRACE_S = 10.0


def _runtime_for(identity: Identity, env: SessionEnv) -> Runtime:
    return Runtime(
        identity,
        make_service=lambda: Service(
            load_config(env), identity, progress=log, long_lived=True, env=env
        ),
    )


async def _freeze_when_connected(runtime: Runtime) -> None:
    """What a connected identity holds stays: out of the collector's way (see host.py)."""
    with contextlib.suppress(Exception):
        await runtime.ready_service()
    gc.freeze()


@dataclass
class _Held:
    runtime: Runtime
    connections: int = 0
    release: asyncio.Task[None] | None = field(default=None)
    freezing: asyncio.Task[None] | None = field(default=None)


class Identities:
    def __init__(
        self,
        make_runtime: Callable[[Identity, SessionEnv], Runtime] = _runtime_for,
        grace: float = RELEASE_GRACE_S,
    ) -> None:
        self._make_runtime = make_runtime
        self._grace = grace
        self._held: dict[IdentityName, _Held] = {}

    @contextlib.asynccontextmanager
    async def lease(self, identity: Identity, env: SessionEnv) -> AsyncIterator[Runtime]:
        held = self._held.get(identity.name)
        if held is None:
            held = _Held(self._make_runtime(identity, env))
            self._held[identity.name] = held
            held.runtime.start()
            held.freezing = asyncio.create_task(_freeze_when_connected(held.runtime))
        if held.release is not None:
            held.release.cancel()
            held.release = None
        held.connections += 1
        try:
            yield held.runtime
        finally:
            held.connections -= 1
            if held.connections == 0:
                held.release = asyncio.create_task(self._release_later(identity.name, held))

    async def _release_later(self, name: IdentityName, held: _Held) -> None:
        service = held.runtime.service
        grace = self._grace
        if service is not None:  # a session that is gone shows offline within its TTL
            grace = min(grace, service.presence_ttl_s / 3)
        await asyncio.sleep(grace)
        if held.connections == 0 and self._held.get(name) is held:
            del self._held[name]
            await held.runtime.shutdown()

    def live_service(self, name: IdentityName) -> Service | None:
        """The connected Service of an identity a session holds here, if any."""
        held = self._held.get(name)
        return held.runtime.connected_service() if held is not None else None

    def summary(self) -> list[dict[str, object]]:
        return [
            {
                "identity": str(name),
                "connections": held.connections,
                "connected": held.runtime.service is not None and held.runtime.problem is None,
                "problem": held.runtime.problem,
            }
            for name, held in sorted(self._held.items())
        ]

    async def close(self) -> None:
        """Stop every identity (each says "offline"), all at once."""
        held = list(self._held.values())
        self._held.clear()
        for item in held:
            if item.release is not None:
                item.release.cancel()
        await asyncio.gather(*(item.runtime.shutdown() for item in held), return_exceptions=True)
