"""Moving every identity of this machine from one homeserver to another with its history:
`machine federate` (the embedded homeserver renamed), `join` (to a team server) and `leave`
(back to the embedded one).

A Matrix ID belongs to its homeserver, so each identity gets an account on the new one (same
username where free) and its store follows: mail, mode, status, trust and blocks are renamed
to the new IDs; rooms, conversations and the encryption device belonged to the old account.
What the old homeserver still holds is fetched first, and old logins are moved aside, never
deleted.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from claudematrix.config import Config
from claudematrix.errors import ClaudeMatrixError, ConfigError
from claudematrix.identity import MACHINE_SLUG, OWNER, Identity
from claudematrix.ids import IdentityName, UserID
from claudematrix.local import layout
from claudematrix.matrix import MatrixClient
from claudematrix.paths import ensure_dir, state_dir
from claudematrix.service.accounts import ensure_account, load_account
from claudematrix.service.directory import remember_room
from claudematrix.service.machine import join_machine_rooms
from claudematrix.service.session import Service
from claudematrix.store import Store
from claudematrix.types import Label
from claudematrix.workspace import detect_workspace

__all__ = ["catch_up", "move_logins", "restore_logins", "new_accounts", "carry_over"]

# What of an identity's folder belongs to its account on one homeserver.
_LOGIN_FILES = (layout.ACCOUNT, layout.CRYPTO_DIR, layout.ROOMS_REGISTRY)


async def catch_up(config: Config, identities: Path, progress: Callable[[str], None]) -> None:
    """Every identity fetches what the homeserver still holds for it, into its store, before
    that homeserver is moved aside: no mail is left behind in it."""
    if not identities.is_dir():
        return
    for folder in sorted(p for p in identities.iterdir() if (p / layout.ACCOUNT).exists()):
        if folder.name.startswith("_") or not (folder / layout.STORE_DB).exists():
            continue
        name = IdentityName(folder.name)
        service = Service(config, Identity(name, name == OWNER, False), progress=progress)
        try:
            await service.connect(start_homeserver=False)
            await service.sync()
        except ClaudeMatrixError as exc:
            raise ConfigError(
                f"could not fetch {name}'s waiting mail before the move ({exc}); nothing was "
                "changed: make sure the homeserver answers (`claudematrix up` starts the embedded "
                "one), then run this command again"
            ) from None
        finally:
            await service.close()


def move_logins(identities: Path, to: Path) -> list[tuple[str, Path]]:
    """Every identity's login and encryption device moved aside (the machine's room registry
    too: those rooms stay on the old homeserver). Returns the identities that have a store,
    to be given new accounts."""
    with_store: list[tuple[str, Path]] = []
    if not identities.is_dir():
        return with_store
    for folder in sorted(p for p in identities.iterdir() if p.is_dir()):
        aside = to / folder.name
        for name in _LOGIN_FILES:
            path = folder / name
            if path.exists():
                ensure_dir(aside)
                shutil.move(str(path), str(aside / name))
        if (folder / layout.STORE_DB).exists():
            with_store.append((folder.name, folder / layout.STORE_DB))
    return with_store


async def carry_over(config: Config, path: Path, renamed: dict[UserID, UserID]) -> None:
    """History follows every renamed identity, and this one is back in the machine's lobby
    at once (its project room comes when it next runs in its project)."""
    store = Store(path)
    try:
        store.rename_users(renamed)
        slug = path.parent.name
        creds = load_account(config, slug)
        if creds is None or store.own_user_id() != creds.user_id:
            return
        if Label.parse(store.setting("mode") or Label.PRIVATE.value) is Label.SECRET:
            return  # a secret identity is in no room of the machine
        client = MatrixClient(creds)
        try:
            here = detect_workspace(str(state_dir()))
            for kind, room in await join_machine_rooms(config, client, here, ["lobby"]):
                await remember_room(store, client, room, kind, sealed=True)
        finally:
            await client.close()
    finally:
        store.close()


async def _new_account(config: Config, slug: str, path: Path) -> tuple[UserID, UserID] | None:
    """The identity's account on the renamed homeserver, under its old username (None for
    one that never had an account)."""
    store = Store(path)
    try:
        old = store.own_user_id()
        if old is None or slug == MACHINE_SLUG:
            return None
        localpart = old[1:].split(":", 1)[0]
        wanted = [localpart, f"{localpart}-{slug[:8]}"]
        if slug == OWNER:  # the person's usual name here, not one a team server gave them
            owner = Identity(IdentityName(slug), True, False).localpart_candidates()
            wanted = [*owner[:1], *wanted, *owner[1:]]
        store.forget_rooms()
        creds = await ensure_account(config, slug, wanted, is_owner=slug == OWNER)
        store.set_own_user_id(creds.user_id)
        return (old, creds.user_id)
    finally:
        store.close()


def restore_logins(kept: Path, identities: Path) -> None:
    """Logins that move_logins put in `kept` go back where they were, where that identity has
    none now (the embedded homeserver's accounts, when a machine leaves a team server)."""
    if not kept.is_dir():
        return
    for folder in sorted(p for p in kept.iterdir() if p.is_dir()):
        home = identities / folder.name
        if (home / layout.ACCOUNT).exists():
            continue
        ensure_dir(home)
        for name in _LOGIN_FILES:
            if (folder / name).exists() and not (home / name).exists():
                shutil.move(str(folder / name), str(home / name))
    for folder in sorted(p for p in kept.iterdir() if p.is_dir()):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(kept.iterdir()):
        kept.rmdir()


async def new_accounts(config: Config, identities: list[tuple[str, Path]]) -> dict[UserID, UserID]:
    """Each identity's account on the homeserver `config` names now: old ID -> new ID."""
    moved = [await _new_account(config, slug, store) for slug, store in identities]
    return {old: new for old, new in (m for m in moved if m is not None)}
