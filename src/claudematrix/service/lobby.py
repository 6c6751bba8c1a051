"""Machine rooms: the lobby (every identity on this machine) and one room per project.

Both are invite-only, and only the machine account, whose credentials live in this state
dir, invites. So membership proves "same machine" / "same project" even when several
machines share one homeserver; nothing a profile claims is taken for proof.
"""

from __future__ import annotations

import asyncio
import hashlib

from claudematrix.config import Config
from claudematrix.identity import MACHINE_SLUG
from claudematrix.ids import RoomAlias, RoomID, UserID, server_name
from claudematrix.locks import FileLock
from claudematrix.matrix import MatrixClient
from claudematrix.matrix.content import MEMBER_STATE
from claudematrix.paths import state_dir
from claudematrix.service.accounts import ensure_account, load_account
from claudematrix.workspace import Workspace

__all__ = ["join_machine_rooms", "machine_user", "lobby_alias_localpart"]


def lobby_alias_localpart(config: Config) -> str:
    return f"cm-lobby-{config.machine_id}"


def project_alias_localpart(config: Config, ws: Workspace) -> str:
    digest = hashlib.sha256(ws.project_dir.encode()).hexdigest()[:10]
    return f"cm-proj-{config.machine_id}-{digest}"


def machine_user(config: Config) -> UserID | None:
    creds = load_account(config, MACHINE_SLUG)
    return creds.user_id if creds else None


def _room_spec(config: Config, ws: Workspace, kind: str) -> tuple[str, str, str]:
    """(alias localpart, name, topic) of a machine room."""
    if kind == "lobby":
        return (
            lobby_alias_localpart(config),
            f"ClaudeMatrix lobby on {config.machine_name}",
            "Every ClaudeMatrix identity on this machine. Invite-only.",
        )
    return (
        project_alias_localpart(config, ws),
        f"ClaudeMatrix project {ws.project} on {config.machine_name}",
        f"Sessions working in {ws.project_dir}. Invite-only.",
    )


async def join_machine_rooms(
    config: Config, me: MatrixClient, ws: Workspace, kinds: list[str]
) -> list[tuple[str, RoomID]]:
    """Have the machine account invite `me` into these rooms (creating them), and join."""
    creds = await ensure_account(config, MACHINE_SLUG, [f"cm-machine-{config.machine_id}"])
    machine = MatrixClient(creds)
    rooms: list[tuple[str, RoomID]] = []
    try:
        with FileLock(state_dir() / "machine-rooms.lock"):
            for kind in kinds:
                localpart, name, topic = _room_spec(config, ws, kind)
                alias = RoomAlias(f"#{localpart}:{server_name(machine.user_id)}")
                room = await machine.resolve_alias(alias)
                if room is None:
                    await machine.set_displayname(f"ClaudeMatrix machine {config.machine_name}")
                    room = await machine.create_invite_only_room(
                        localpart, name, topic, MEMBER_STATE
                    )
                rooms.append((kind, room))
        await asyncio.gather(*(machine.invite(room, me.user_id) for _, room in rooms))
    finally:
        await machine.close()
    joined = await asyncio.gather(*(me.join(room) for _, room in rooms))
    return [(kind, room) for (kind, _), room in zip(rooms, joined, strict=True)]
