"""Making a machine that so far served only itself ready to pair: `claudematrix machine
federate ADDRESS:PORT`, one command, with every session's history kept.

A Matrix ID ends in its homeserver's name, and a homeserver keeps its name for the life of its
database. So the homeserver starts afresh under the new name, and each identity gets a new
account with the same username: @cc-1a2b3c4d:localhost becomes @cc-1a2b3c4d:100.64.0.7:8448.
Each identity's store keeps its mail, mode, status, trust list and blocks; its rooms,
conversations and encryption device belonged to the old account and start again. The old
homeserver's database and the old logins are moved aside, not deleted.

While this runs it holds the daemon's start lock: a session asking for the daemon waits, and
gets one that serves the new accounts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from claudematrix import homeserver
from claudematrix.config import Config, load_config, update_stored_config
from claudematrix.errors import ConfigError
from claudematrix.federation.address import FederationAddress, parse_federation_address
from claudematrix.ids import UserID
from claudematrix.local import layout
from claudematrix.locks import FileLock
from claudematrix.paths import ensure_dir, state_dir
from claudematrix.service.relocation import carry_over, catch_up, move_logins, new_accounts

__all__ = ["Federated", "federate"]


@dataclass(frozen=True)
class Federated:
    old_server_name: str
    server_name: str
    address: str
    moved: list[tuple[UserID, UserID]]  # (old Matrix ID, new Matrix ID) of each identity
    kept_at: Path | None  # where the old homeserver's data and logins were moved


def _new_name(config: Config, address: FederationAddress, server_name: str | None) -> str:
    if not config.embedded:
        raise ConfigError(
            f"this machine uses the homeserver {config.homeserver_url}: its admin sets up "
            "federation there"
        )
    if config.federation is not None:
        raise ConfigError(
            f"this machine already federates as {config.server_name} (listener "
            f"{config.federation}): `claudematrix machine card` prints its card"
        )
    if os.environ.get("CLAUDEMATRIX_SERVER_NAME"):
        raise ConfigError(
            "CLAUDEMATRIX_SERVER_NAME is set in this environment and would override the new "
            "name: unset it (everywhere it is set) and run this again"
        )
    name = server_name or (None if address.unspecified else str(address))
    if not name:
        raise ConfigError(
            f"{address} listens on every address, so it names no machine: add --server-name "
            "with the name or address:port other machines reach this one at"
        )
    named = parse_federation_address(name, "the server name")
    if named.unspecified or named.host == "localhost":
        raise ConfigError(
            f"no other machine can reach this one as {name}: give the address (or name) they "
            "reach it at, e.g. its LAN or Tailscale address"
        )
    return name


async def federate(
    config: Config,
    address: FederationAddress,
    server_name: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
    *,
    stop_daemon: Callable[[], bool],
) -> Federated:
    """`stop_daemon`: stops this machine's daemon (True if one ran); the caller's, as the
    daemon is built on this package."""
    new = _new_name(config, address, server_name)
    old_name = config.server_name
    home = state_dir()
    async with FileLock(home / layout.DAEMON_START_LOCK):
        if new == config.server_name:  # named for federation already: only the listener
            update_stored_config({"federation": str(address)})
            config = load_config()
            await asyncio.to_thread(homeserver.start, config, progress)
            await asyncio.to_thread(homeserver.apply_settings, config, progress)
            return Federated(config.server_name, new, str(address), [], None)
        if await asyncio.to_thread(stop_daemon):
            progress("claudematrix: daemon stopped (it starts again for the new accounts)")
        await asyncio.to_thread(homeserver.start, config, progress)
        await catch_up(config, home / layout.IDENTITIES, progress)
        await asyncio.to_thread(homeserver.stop, config)
        kept = ensure_dir(home / f"before-federation-{time.strftime('%Y%m%d-%H%M%S')}")
        _move_homeserver_data(config, kept / "homeserver")
        identities = move_logins(home / layout.IDENTITIES, kept / layout.IDENTITIES)
        update_stored_config({"server_name": new, "federation": str(address)})
        config = load_config()
        await asyncio.to_thread(homeserver.start, config, progress)
        renamed = await new_accounts(config, identities)
        for _slug, path in identities:
            await carry_over(config, path, renamed)
    return Federated(old_name, new, str(address), list(renamed.items()), kept)


def _move_homeserver_data(config: Config, to: Path) -> None:
    """The database, media and generated config go; the Synapse install and secrets stay."""
    paths = homeserver.homeserver_paths(config)
    ensure_dir(to)
    db = paths.db_path
    for path in (
        db,
        db.with_name(db.name + "-wal"),
        db.with_name(db.name + "-shm"),
        paths.media_path,
        paths.config_path,
        paths.inputs_path,
    ):
        if path.exists():
            shutil.move(str(path), str(to / path.name))
