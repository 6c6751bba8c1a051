"""The machine account and the rooms it owns: the lobby (every identity on this machine), one
room per project, and the public room.

Only the machine account, whose credentials live in this state dir, may invite into the lobby
and project rooms (matrix/rooms.py), and it invites only identities of this state dir. So
membership proves "same machine" / "same project" even when several machines share one
homeserver; nothing a profile claims is taken for proof.

Which rooms are the machine's is recorded here, in `identities/_machine/rooms.json`, not
taken from an alias: anyone may create a room under an alias first, so a room found by alias
is used only if the machine account created it, and a squatted name is routed around. Rooms
made before these rules are brought to them once (owner-only power levels, history from the
invitation on, and anyone who is not an identity of this machine removed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from claudematrix.config import Config
from claudematrix.errors import HomeserverError, UserInUse
from claudematrix.federation.address import parse_federation_address
from claudematrix.identity import MACHINE_SLUG
from claudematrix.ids import EventID, RoomAlias, RoomID, UserID, server_name
from claudematrix.local import layout
from claudematrix.locks import FileLock
from claudematrix.matrix import MatrixClient
from claudematrix.matrix.content import MEMBER_STATE
from claudematrix.matrix.rooms import (
    create_invite_only_room,
    create_machine_pair_room,
    create_public_room,
    harden,
)
from claudematrix.paths import identity_dir, read_json, state_dir, write_json_private
from claudematrix.service.accounts import ensure_account, load_account, recover_account
from claudematrix.workspace import Workspace

__all__ = [
    "join_machine_rooms",
    "machine_user",
    "local_users",
    "is_local",
    "is_local_device",
    "lobby_alias_localpart",
    "machine_localpart",
    "public_room",
    "trusted_machine_room",
    "close_trusted_machine_room",
    "trusted_room_localpart",
    "remove_strangers",
    "PUBLIC_ROOM_ALIAS",
]

PUBLIC_ROOM_ALIAS = "claudematrix-public"
_REGISTRY_VERSION = 1


def machine_localpart(config: Config) -> str:
    return f"cm-machine-{config.machine_id}"


def lobby_alias_localpart(config: Config) -> str:
    return f"cm-lobby-{config.machine_id}"


def project_alias_localpart(config: Config, ws: Workspace) -> str:
    digest = hashlib.sha256(ws.project_dir.encode()).hexdigest()[:10]
    return f"cm-proj-{config.machine_id}-{digest}"


def machine_user(config: Config) -> UserID | None:
    creds = load_account(config, MACHINE_SLUG)
    return creds.user_id if creds else None


def is_local(config: Config, user: UserID) -> bool:
    """Is `user` an identity of this state dir? Cached, and read again whenever an account
    file appeared or changed (so a session that just started is known at once)."""
    return user in _accounts() or user in _accounts(fresh=True)


def local_users(config: Config) -> set[UserID]:
    """Every Matrix account this state dir holds credentials for: this machine's identities."""
    return set(_accounts(fresh=True))


def is_local_device(config: Config, user: UserID, device_id: str) -> bool:
    """Is `device_id` the device this state dir's account for `user` logs in with? Proof
    that a message came from this machine's own session, not from a device added elsewhere
    with a stolen login."""
    if not device_id:
        return False
    # The fresh read (a glob and a stat per identity) only when the kept one does not match.
    return _accounts().get(user) == device_id or _accounts(fresh=True).get(user) == device_id


# (the identities dir, each account file's path and mtime, account -> its device), as last
# read
_read: tuple[Path | None, tuple[tuple[str, int, int, int], ...], dict[UserID, str]] = (None, (), {})


def _accounts(*, fresh: bool = False) -> dict[UserID, str]:
    """This state dir's accounts and their devices: as last read, or (`fresh`) read again
    if any account file is new, changed or gone since; stat calls only, when none is."""
    global _read
    root = state_dir() / layout.IDENTITIES
    if not fresh and _read[0] == root:
        return _read[2]
    files: list[tuple[str, int, int, int]] = []
    for account in sorted(root.glob(f"*/{layout.ACCOUNT}")):
        with contextlib.suppress(OSError):
            info = account.stat()  # a rewrite within one clock tick still shows in size or inode
            files.append((str(account), info.st_mtime_ns, info.st_size, info.st_ino))
    signature = tuple(files)
    if (root, signature) == _read[:2]:
        return _read[2]
    found: dict[UserID, str] = {}
    for path, *_changed in files:
        try:
            data = read_json(Path(path))
        except Exception:  # noqa: BLE001 - a broken file is someone else's error to report
            continue
        if not isinstance(data, dict):
            continue
        user = data.get("user_id")
        if isinstance(user, str) and user.startswith("@"):
            found[UserID(user)] = str(data.get("device_id") or "")
    _read = (root, signature, found)
    return found


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


class _Registry:
    """The machine's own record of its rooms (alias localpart -> room) and which are hardened."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._read = read_json(path) or {}
        self.rooms: dict[str, str] = dict(self._read.get("rooms") or {})
        self.hardened: set[str] = set(self._read.get("hardened") or [])

    def save(self) -> None:
        value: dict[str, Any] = {
            "v": _REGISTRY_VERSION,
            "rooms": self.rooms,
            "hardened": sorted(self.hardened),
        }
        if value != self._read:  # every session start passes here: write only a change
            write_json_private(self.path, value)
            self._read = value


@contextlib.asynccontextmanager
async def _machine(config: Config) -> AsyncIterator[tuple[MatrixClient, _Registry]]:
    """The machine account's client and registry, one process at a time."""
    localpart = machine_localpart(config)
    try:
        creds = await ensure_account(config, MACHINE_SLUG, [localpart])
    except UserInUse:
        # Its credentials were lost: the rooms it owns are only reachable as the same
        # account, so log in to it again rather than start a second machine identity.
        async with FileLock(identity_dir(MACHINE_SLUG) / layout.ACCOUNT_LOCK):
            creds = load_account(config, MACHINE_SLUG) or await recover_account(
                config, MACHINE_SLUG, localpart
            )
    lock = FileLock(state_dir() / layout.MACHINE_ROOMS_LOCK)
    await lock.acquire_async()
    machine = MatrixClient(creds)
    try:
        registry = _Registry(identity_dir(MACHINE_SLUG) / layout.ROOMS_REGISTRY)
        yield machine, registry
        registry.save()
    finally:
        await machine.close()
        lock.release()


async def _owned_room_at(machine: MatrixClient, alias: RoomAlias) -> RoomID | None:
    """The room under `alias`, if the machine account created it; None if absent or squatted."""
    found = await machine.resolve_alias(alias)
    if found is None:
        return None
    return found if machine.user_id in await machine.creators(found) else None


async def _ensure_room(
    config: Config, machine: MatrixClient, registry: _Registry, ws: Workspace, kind: str
) -> RoomID:
    localpart, name, topic = _room_spec(config, ws, kind)
    room = registry.rooms.get(localpart)
    if room is None:
        alias = RoomAlias(f"#{localpart}:{server_name(machine.user_id)}")
        found = await _owned_room_at(machine, alias)
        if found is None:
            await machine.set_displayname(f"ClaudeMatrix machine {config.machine_name}")
            found = await create_invite_only_room(machine, localpart, name, topic)
            registry.hardened.add(found)
        room = registry.rooms[localpart] = found
    if room not in registry.hardened:
        await harden(machine, RoomID(room), MEMBER_STATE)
        await _remove_strangers(config, machine, RoomID(room))
        registry.hardened.add(room)
    return RoomID(room)


async def _remove_strangers(config: Config, machine: MatrixClient, room: RoomID) -> list[UserID]:
    """Kick (or uninvite) everyone in a machine room who is not an identity of this machine."""
    allowed = local_users(config) | {machine.user_id}
    strangers = [u for u in await machine.members(room) if u not in allowed]
    await asyncio.gather(*(machine.kick(room, user) for user in strangers))
    return strangers


async def remove_strangers(config: Config, room: RoomID) -> list[UserID]:
    """Called by a session that found someone foreign in the lobby or a project room."""
    async with _machine(config) as (machine, _registry):
        return await _remove_strangers(config, machine, room)


async def join_machine_rooms(
    config: Config, me: MatrixClient, ws: Workspace, kinds: list[str]
) -> list[tuple[str, RoomID]]:
    """Have the machine account invite `me` into these rooms (creating them), and join."""
    async with _machine(config) as (machine, registry):
        rooms = [(kind, await _ensure_room(config, machine, registry, ws, kind)) for kind in kinds]
        await asyncio.gather(*(machine.invite(room, me.user_id) for _, room in rooms))
    joined = await asyncio.gather(*(me.join(room) for _, room in rooms))
    return [(kind, room) for (kind, _), room in zip(rooms, joined, strict=True)]


async def public_room(config: Config, *, avoid: RoomID | None = None) -> RoomID:
    """The public room sessions in public mode publish in, kept alive by the machine account.

    The room under the well-known alias is used when the machine account created it or can
    join it (it only ever carries public-labelled profiles, so whoever owns it learns nothing
    more); otherwise, or when `avoid` says it failed a session, the machine keeps its own.
    """
    async with _machine(config) as (machine, registry):
        room = registry.rooms.get(PUBLIC_ROOM_ALIAS)
        if room is not None and room != avoid:
            return RoomID(room)
        alias = RoomAlias(f"#{PUBLIC_ROOM_ALIAS}:{server_name(machine.user_id)}")
        found = await machine.resolve_alias(alias)
        if found is not None and found != avoid:
            with contextlib.suppress(HomeserverError):
                room = await machine.join(found)
        if room is None or room == avoid:
            room = await create_public_room(
                machine,
                PUBLIC_ROOM_ALIAS if found is None else f"{PUBLIC_ROOM_ALIAS}-{config.machine_id}",
                "ClaudeMatrix public directory",
                "Sessions in public mode publish what they work on here.",
            )
        registry.rooms[PUBLIC_ROOM_ALIAS] = room
        return RoomID(room)


def trusted_room_localpart(trusted_server: str) -> str:
    """The alias (on the trusting machine) of its room for the machine `trusted_server`."""
    return f"cm-trusted-{hashlib.sha256(trusted_server.encode()).hexdigest()[:12]}"


async def trusted_machine_room(config: Config, peer_server: str) -> RoomID:
    """This machine's room for a paired machine the person trusts as a whole: where this
    machine's sessions in trusted mode publish for every session of that machine. Any
    account of the two homeservers may join it, and none of a third (a server ACL)."""
    async with _machine(config) as (machine, registry):
        localpart = trusted_room_localpart(peer_server)
        room = registry.rooms.get(localpart)
        if room is None:
            alias = RoomAlias(f"#{localpart}:{server_name(machine.user_id)}")
            found = await _owned_room_at(machine, alias)
            if found is None:
                own = parse_federation_address(server_name(machine.user_id), "the server name")
                peer = parse_federation_address(peer_server, "a paired machine's server name")
                found = await create_machine_pair_room(
                    machine,
                    localpart,
                    f"ClaudeMatrix {config.machine_name} for {peer_server}",
                    "Sessions of this machine in trusted mode, for a machine it trusts.",
                    # Synapse matches remote servers by host, and itself by its full name.
                    (own.named_host, str(own), peer.named_host, str(peer)),
                )
            room = registry.rooms[localpart] = found
        return RoomID(room)


async def close_trusted_machine_room(config: Config, peer_server: str) -> bool:
    """The person no longer trusts that machine as a whole: every profile and presence of
    this machine's sessions in its room is taken back (redacted while the other machine is
    still in the room, so the redactions reach it), its members are removed, and the room's
    server ACL shuts it out. False if there was no such room."""
    async with _machine(config) as (machine, registry):
        room = registry.rooms.pop(trusted_room_localpart(peer_server), None)
        if room is None:
            return False
        found = RoomID(room)
        own = server_name(machine.user_id)
        for event in await machine.state_events(found, set(MEMBER_STATE)):
            if event.get("content") and str(event.get("state_key", "")).endswith(":" + own):
                await machine.redact(found, EventID(str(event["event_id"])), "trust ended")
        for user in await machine.members(found):
            if server_name(user) != own:
                with contextlib.suppress(HomeserverError):
                    await machine.kick(found, user)
        # A new room, should that machine be trusted again: this one stays shut.
        localpart = trusted_room_localpart(peer_server)
        await machine.delete_alias(RoomAlias(f"#{localpart}:{own}"))
        host = parse_federation_address(own, "the server name")
        acl = {"allow": [host.named_host, own], "deny": [], "allow_ip_literals": True}
        await machine.put_state(found, "m.room.server_acl", acl)
        return True
