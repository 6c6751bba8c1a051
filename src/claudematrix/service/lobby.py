"""Machine rooms: the lobby (every identity on this machine) and one room per project.

Both are invite-only, and only the machine account, whose credentials live in this state
dir, invites. So membership proves "same machine" / "same project" even when several
machines share one homeserver; nothing a profile claims is taken for proof.
"""

from __future__ import annotations

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

__all__ = ["join_lobby", "join_project_room", "machine_user", "lobby_alias_localpart"]


def lobby_alias_localpart(config: Config) -> str:
    return f"cm-lobby-{config.machine_id}"


def project_alias_localpart(config: Config, ws: Workspace) -> str:
    digest = hashlib.sha256(ws.project_dir.encode()).hexdigest()[:10]
    return f"cm-proj-{config.machine_id}-{digest}"


def machine_user(config: Config) -> UserID | None:
    creds = load_account(config, MACHINE_SLUG)
    return creds.user_id if creds else None


async def _join_machine_room(
    config: Config, me: MatrixClient, alias_localpart: str, name: str, topic: str
) -> RoomID:
    creds = await ensure_account(config, MACHINE_SLUG, [f"cm-machine-{config.machine_id}"])
    machine = MatrixClient(creds)
    try:
        alias = RoomAlias(f"#{alias_localpart}:{server_name(machine.user_id)}")
        with FileLock(state_dir() / "machine-rooms.lock"):
            room = await machine.resolve_alias(alias)
            if room is None:
                await machine.set_displayname(f"ClaudeMatrix machine {config.machine_name}")
                room = await machine.create_invite_only_room(
                    alias_localpart, name, topic, MEMBER_STATE
                )
        await machine.invite(room, me.user_id)
    finally:
        await machine.close()
    return await me.join(room)


async def join_lobby(config: Config, me: MatrixClient) -> RoomID:
    return await _join_machine_room(
        config,
        me,
        lobby_alias_localpart(config),
        f"ClaudeMatrix lobby on {config.machine_name}",
        "Every ClaudeMatrix identity on this machine. Invite-only.",
    )


async def join_project_room(config: Config, me: MatrixClient, ws: Workspace) -> RoomID:
    return await _join_machine_room(
        config,
        me,
        project_alias_localpart(config, ws),
        f"ClaudeMatrix project {ws.project} on {config.machine_name}",
        f"Sessions working in {ws.project_dir}. Invite-only.",
    )
