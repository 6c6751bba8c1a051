"""The machine lobby: an invite-only room whose members are this machine's identities.

Only the machine account, whose credentials live in this state dir, invites; so being in
the lobby proves "same machine" even when several machines share one homeserver.
"""

from __future__ import annotations

from claudematrix.config import Config
from claudematrix.identity import MACHINE_SLUG
from claudematrix.ids import RoomAlias, RoomID, UserID, server_name
from claudematrix.locks import FileLock
from claudematrix.matrix import MatrixClient, SessionCredentials
from claudematrix.paths import state_dir
from claudematrix.service.accounts import ensure_account, load_account

__all__ = ["join_lobby", "machine_user", "lobby_alias_localpart"]


def lobby_alias_localpart(config: Config) -> str:
    return f"cm-lobby-{config.machine_id}"


def _machine_localpart(config: Config) -> str:
    return f"cm-machine-{config.machine_id}"


def machine_user(config: Config) -> UserID | None:
    creds = load_account(config, MACHINE_SLUG)
    return creds.user_id if creds else None


async def _machine_client(config: Config) -> MatrixClient:
    creds: SessionCredentials = await ensure_account(
        config, MACHINE_SLUG, [_machine_localpart(config)]
    )
    return MatrixClient(creds)


async def join_lobby(config: Config, me: MatrixClient) -> tuple[RoomID, dict[UserID, str]]:
    """Make sure the lobby exists and `me` is in it; returns it and its members."""
    machine = await _machine_client(config)
    try:
        alias = RoomAlias(f"#{lobby_alias_localpart(config)}:{server_name(machine.user_id)}")
        with FileLock(state_dir() / "lobby.lock"):
            room = await machine.resolve_alias(alias)
            if room is None:
                await machine.set_displayname(f"ClaudeMatrix machine {config.machine_name}")
                room = await machine.create_invite_only_room(
                    lobby_alias_localpart(config),
                    f"ClaudeMatrix lobby on {config.machine_name}",
                    "Every ClaudeMatrix identity on this machine. Invite-only.",
                )
        await machine.invite(room, me.user_id)
    finally:
        await machine.close()
    await me.join(room)
    members = await me.joined_members(room)
    members.pop(machine.user_id, None)
    return room, members
