"""`claudematrix join URL --token T` and `claudematrix leave`: this machine's sessions move
to a team's homeserver, and back to the embedded one (docs/team.md).

On the team server every machine keeps its own lobby and project rooms (their aliases carry
the machine's ID, and only its machine account invites), so membership still proves who is on
this machine and in this project; sessions of other machines are remote there. The token is
kept in config.json (0600): each new session registers its account with it.

Logins are never thrown away: the embedded homeserver's wait in <state dir>/embedded-logins
while the machine is on a team server (`leave` puts them back), and a team server's in
<state dir>/team-logins/<server> once it left (joining that server again puts them back, so
the machine's rooms there are its own again). The embedded homeserver is not started while
the machine is on a team server.
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from claudematrix import homeserver
from claudematrix.config import Config, load_config, stored_setting, update_stored_config
from claudematrix.errors import ConfigError, HomeserverUnavailable
from claudematrix.identity import MACHINE_SLUG, OWNER
from claudematrix.ids import UserID, server_name
from claudematrix.local import layout
from claudematrix.locks import FileLock
from claudematrix.matrix import SessionCredentials
from claudematrix.paths import ensure_dir, state_dir
from claudematrix.service.accounts import ensure_account, person_account, save_account
from claudematrix.service.machine import machine_localpart
from claudematrix.service.relocation import (
    carry_over,
    catch_up,
    move_logins,
    new_accounts,
    restore_logins,
)

__all__ = ["Moved", "join_team", "leave_team", "EMBEDDED_LOGINS", "TEAM_LOGINS"]

EMBEDDED_LOGINS = "embedded-logins"
TEAM_LOGINS = "team-logins"
# What `join` sets in config.json, and `leave` forgets.
_TEAM_KEYS = (
    "homeserver",
    "registration_token",
    "owner_user",
    "owner_password",
    "owner_access_token",
    "embedded_server_name",
)
_OVERRIDES = (
    "CLAUDEMATRIX_HOMESERVER",
    "CLAUDEMATRIX_REGISTRATION_TOKEN",
    "CLAUDEMATRIX_SERVER_NAME",
)


@dataclass(frozen=True)
class Moved:
    url: str  # the homeserver this machine is on now
    server_name: str
    owner: UserID | None  # the person's account, when `join --user` gave one
    moved: list[tuple[UserID, UserID]]  # (old Matrix ID, new Matrix ID) of each identity
    kept_at: Path | None  # where the old logins went
    token_only: bool = False  # already on this server: only the token was replaced


def _refuse_overrides(action: str) -> None:
    set_here = [name for name in _OVERRIDES if os.environ.get(name)]
    if set_here:
        raise ConfigError(
            f"{', '.join(set_here)} set in this environment would override what `{action}` "
            "writes: unset it (everywhere it is set) and run this again"
        )


def _check_token(url: str, token: str) -> None:
    if not homeserver.versions_ok(url, timeout=10.0):
        raise HomeserverUnavailable(
            f"no Matrix homeserver answers at {url}: check the URL (the team server's public "
            "URL, as `claudematrix server status` prints it) and this machine's network"
        )
    valid = homeserver.registration_token_valid(url, token)
    if valid is None:
        raise ConfigError(
            f"{url} does not register accounts with tokens: is it a ClaudeMatrix team "
            "server (`claudematrix server init`)?"
        )
    if not valid:
        raise ConfigError(
            f"the token is not valid on {url}: it is used up, revoked, expired or mistyped; "
            "ask the server's operator for a new one (`claudematrix server token`)"
        )


async def join_team(
    config: Config,
    url: str,
    token: str,
    *,
    person: str | None = None,
    password: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
    stop_daemon: Callable[[], bool],
) -> Moved:
    """`stop_daemon`: stops this machine's daemon (True if one ran); the caller's, as the
    daemon is built on this package."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"{url!r} is not a URL: give the team server's, e.g. https://matrix.example.org"
        )
    if person is not None and not password:
        raise ConfigError(f"give the password of {person} (you are asked for it at a terminal)")
    _refuse_overrides("join")
    await asyncio.to_thread(_check_token, url, token)
    home = state_dir()
    async with FileLock(home / layout.DAEMON_START_LOCK):
        # The person's login first: a wrong password changes nothing.
        you = await person_account(url, token, person, password or "") if person else None
        if config.external_url == url:  # on it already: a new token (and maybe the person)
            update_stored_config({"registration_token": token})
            config = load_config()
            if you is not None:
                save_account(OWNER, you, None)  # the password is not kept
            return Moved(url, config.server_name, _id(you), [], None, token_only=True)
        if await asyncio.to_thread(stop_daemon):
            progress("claudematrix: daemon stopped (it starts again on the team server)")
        kept = await _leave_current(config, home, "join", progress)
        update_stored_config(
            {
                "homeserver": url,
                "registration_token": token,
                **({"embedded_server_name": config.server_name} if config.embedded else {}),
            },
            forget=("owner_user", "owner_password", "owner_access_token"),
        )
        config = load_config()
        restore_logins(_logins_of(config, home), home / layout.IDENTITIES)
        config = await _learn_server_name(config)
        if you is not None:
            save_account(OWNER, you, None)
        identities = [(slug, path) for slug, path in _stores(home) if slug != MACHINE_SLUG]
        renamed = await new_accounts(config, identities)
        for _slug, path in identities:
            await carry_over(config, path, renamed)
    return Moved(url, config.server_name, _id(you), list(renamed.items()), kept)


async def leave_team(
    config: Config,
    progress: Callable[[str], None] = lambda _m: None,
    *,
    stop_daemon: Callable[[], bool],
) -> Moved:
    if config.embedded:
        raise ConfigError(
            "this machine is on its own embedded homeserver, not a team server: nothing to leave"
        )
    _refuse_overrides("leave")
    home = state_dir()
    embedded_name = stored_setting("embedded_server_name")
    async with FileLock(home / layout.DAEMON_START_LOCK):
        if await asyncio.to_thread(stop_daemon):
            progress("claudematrix: daemon stopped (it starts again on the embedded homeserver)")
        kept = await _leave_current(config, home, "leave", progress)
        restore_logins(home / EMBEDDED_LOGINS, home / layout.IDENTITIES)
        update_stored_config(
            {"server_name": str(embedded_name)} if embedded_name else {},
            forget=_TEAM_KEYS,
        )
        config = load_config()
        await asyncio.to_thread(homeserver.start, config, progress)
        identities = _stores(home)
        renamed = await new_accounts(config, identities)
        for _slug, path in identities:
            await carry_over(config, path, renamed)
    return Moved(config.homeserver_url, config.server_name, None, list(renamed.items()), kept)


async def _leave_current(
    config: Config, home: Path, action: str, progress: Callable[[str], None]
) -> Path:
    """What the current homeserver holds for each identity is fetched, then every login is
    moved aside: the embedded homeserver's to embedded-logins (`leave` restores them), a team
    server's to before-<action>-<time>."""
    # A machine with no account yet (a new install joining at once) never starts Synapse.
    local = config.embedded and any(
        (folder.parent / layout.ACCOUNT).exists() for _slug, folder in _stores(home)
    )
    if local:
        await asyncio.to_thread(homeserver.start, config, progress)
    await catch_up(config, home / layout.IDENTITIES, progress)
    if config.embedded:
        await asyncio.to_thread(homeserver.stop, config)
    aside = _logins_of(config, home)
    if aside.exists():  # left there by hand or by a failed move: kept, and these go apart
        aside = home / f"before-{action}-{time.strftime('%Y%m%d-%H%M%S')}"
    ensure_dir(aside)
    move_logins(home / layout.IDENTITIES, aside)
    return aside


def _logins_of(config: Config, home: Path) -> Path:
    """Where the logins of the homeserver `config` names wait while the machine is elsewhere."""
    if config.embedded:
        return home / EMBEDDED_LOGINS
    where = urllib.parse.urlsplit(config.homeserver_url)
    name = f"{where.hostname}-{where.port or where.scheme}{where.path.replace('/', '_')}"
    return home / TEAM_LOGINS / name


def _stores(home: Path) -> list[tuple[str, Path]]:
    identities = home / layout.IDENTITIES
    if not identities.is_dir():
        return []
    return [
        (folder.name, folder / layout.STORE_DB)
        for folder in sorted(p for p in identities.iterdir() if p.is_dir())
        if (folder / layout.STORE_DB).exists()
    ]


async def _learn_server_name(config: Config) -> Config:
    """The team server's name, from the machine account's Matrix ID (no API tells it before
    there is an account): every alias of this machine's rooms ends in it."""
    base = machine_localpart(config)
    creds = await ensure_account(config, MACHINE_SLUG, [base, f"{base}-{os.urandom(3).hex()}"])
    update_stored_config({"server_name": server_name(creds.user_id)})
    return load_config()


def _id(creds: SessionCredentials | None) -> UserID | None:
    return creds.user_id if creds is not None else None
