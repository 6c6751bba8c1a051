"""The daemon's side of `claudematrix verify`: the identity's device lives here, the person
sits at the command's terminal. Over the connection, one JSON object per line:

    daemon -> command   {"emoji": [[emoji, name], ...]}      once the keys are exchanged
    command -> daemon   {"match": true | false}              the person's answer
    daemon -> command   {"said": line, "exit": 0} or {"error": line, "exit": code}
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from claudematrix.daemon.identities import Identities
from claudematrix.errors import ClaudeMatrixError
from claudematrix.identity import Identity
from claudematrix.service import verify_device
from claudematrix.session_env import SessionEnv

__all__ = ["serve_verification"]


async def serve_verification(
    identities: Identities,
    identity: Identity,
    env: SessionEnv,
    hello: dict[str, Any],
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    user, device = hello.get("user"), hello.get("device")

    async def say(message: dict[str, Any]) -> None:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()

    async def compare(emoji: list[tuple[str, str]]) -> bool:
        await say({"emoji": [list(pair) for pair in emoji]})
        line = await reader.readline()
        try:
            answer = json.loads(line) if line.strip() else {}
        except ValueError:
            return False
        return isinstance(answer, dict) and answer.get("match") is True

    if not isinstance(user, str) or not (device is None or isinstance(device, str)):
        await say({"error": "name the user to verify (and a device, if any)", "exit": 2})
        return
    async with identities.lease(identity, env) as runtime:
        try:
            service = await runtime.ready_service()
            said = await verify_device(service, user, device, compare)
        except ClaudeMatrixError as exc:
            await say({"error": str(exc), "exit": exc.exit_code})
            return
    await say({"said": said, "exit": 0})
