"""Matrix accounts for identities: created on first use, reused ever after (0600 files)."""

from __future__ import annotations

import asyncio
import functools
import secrets
import socket
from pathlib import Path

from claudematrix import homeserver
from claudematrix.config import Config
from claudematrix.errors import (
    ConfigError,
    HomeserverError,
    RegistrationFailed,
    StateCorrupt,
    UserInUse,
)
from claudematrix.identity import ADMIN_SLUG
from claudematrix.ids import UserID, server_name
from claudematrix.local import layout
from claudematrix.locks import FileLock
from claudematrix.matrix import MatrixClient, SessionCredentials
from claudematrix.paths import identity_dir, read_json, state_dir, write_json_private

__all__ = [
    "ensure_account",
    "load_account",
    "account_path",
    "stored_password",
    "remember_password",
    "save_account",
    "can_administer",
    "admin_credentials",
    "recover_account",
    "log_in_on_new_device",
    "person_account",
]


def account_path(slug: str) -> Path:
    """Where an identity's account lives; looking does not create anything."""
    return state_dir() / layout.IDENTITIES / slug / layout.ACCOUNT


def load_account(config: Config, slug: str) -> SessionCredentials | None:
    data = read_json(account_path(slug))
    if data is None:
        return None
    try:
        return SessionCredentials(
            homeserver=config.homeserver_url,
            user_id=UserID(data["user_id"]),
            access_token=str(data["access_token"]),
            device_id=str(data["device_id"]),
        )
    except (KeyError, TypeError):
        raise StateCorrupt(
            f"{account_path(slug)} lacks the account fields: move it aside, then run "
            "`claudematrix recover` to log in to the same account again"
        ) from None


def stored_password(slug: str) -> str | None:
    data = read_json(account_path(slug)) or {}
    value = data.get("password")
    return str(value) if value else None


def remember_password(slug: str, password: str) -> None:
    data = read_json(account_path(slug)) or {}
    data["password"] = password
    write_json_private(account_path(slug), data)


def save_account(slug: str, creds: SessionCredentials, password: str | None) -> None:
    write_json_private(
        account_path(slug),
        {
            "user_id": creds.user_id,
            "access_token": creds.access_token,
            "device_id": creds.device_id,
            "password": password,
            "homeserver": creds.homeserver,
        },
    )


def _device() -> str:
    return f"claudematrix@{socket.gethostname()}"


async def _register(
    config: Config, localpart: str, password: str, *, admin: bool = False
) -> SessionCredentials:
    device = _device()
    if config.embedded or config.registration_shared_secret:
        secret = await asyncio.to_thread(homeserver.registration_shared_secret, config)
        account = await asyncio.to_thread(
            functools.partial(
                homeserver.register_account,
                config.homeserver_url,
                secret,
                localpart,
                password,
                admin=admin,
            )
        )
        return SessionCredentials(
            config.homeserver_url,
            UserID(account.user_id),
            account.access_token,
            account.device_id,
        )
    if config.registration_token and not admin:
        try:
            return await MatrixClient.register_with_token(
                config.homeserver_url, localpart, password, config.registration_token, device
            )
        except UserInUse:
            raise
        except RegistrationFailed:
            await _require_token_valid(config, config.registration_token)
            raise
    raise ConfigError(
        f"cannot create an account on {config.homeserver_url}: set "
        "CLAUDEMATRIX_REGISTRATION_TOKEN (or CLAUDEMATRIX_REGISTRATION_SHARED_SECRET)"
    )


async def _require_token_valid(config: Config, token: str) -> None:
    """A registration refused because the machine's token no longer works says so, and what
    to do, instead of the homeserver's terse refusal."""
    valid = await asyncio.to_thread(
        homeserver.registration_token_valid, config.homeserver_url, token
    )
    if valid is False:
        raise ConfigError(
            f"this machine's registration token for {config.homeserver_url} is used up, "
            "revoked or expired, so a new session cannot get an account there: ask the "
            "server's operator for a new one and run `claudematrix join "
            f"{config.homeserver_url} --token NEW`"
        )


async def _external_owner(config: Config) -> SessionCredentials | None:
    """On an external server the person may already have an account: use it."""
    if config.embedded or not config.owner_user:
        return None
    if config.owner_access_token:
        probe = MatrixClient(
            SessionCredentials(
                config.homeserver_url, UserID(config.owner_user), config.owner_access_token, ""
            )
        )
        try:
            user = await probe.whoami()
        finally:
            await probe.close()
        return SessionCredentials(config.homeserver_url, user, config.owner_access_token, "")
    if config.owner_password:
        return await MatrixClient.login(
            config.homeserver_url,
            config.owner_user,
            config.owner_password,
            _device(),
        )
    return None


async def ensure_account(
    config: Config,
    slug: str,
    localparts: list[str],
    *,
    is_owner: bool = False,
    admin: bool = False,
) -> SessionCredentials:
    existing = load_account(config, slug)
    if existing is not None:
        return existing
    async with FileLock(identity_dir(slug) / layout.ACCOUNT_LOCK):
        existing = load_account(config, slug)  # made by a concurrent process meanwhile
        if existing is not None:
            return existing
        if is_owner:
            creds = await _external_owner(config)
            if creds is not None:
                save_account(slug, creds, None)
                return creds
        if not config.embedded:  # "unreachable" says more than "no registration token"
            await asyncio.to_thread(homeserver.start, config)
        password = secrets.token_urlsafe(24)
        last: UserInUse | None = None
        for localpart in localparts:
            try:
                creds = await _register(config, localpart, password, admin=admin)
            except UserInUse as exc:
                last = exc
                continue
            save_account(slug, creds, password)
            return creds
        assert last is not None
        raise last


def can_administer(config: Config) -> bool:
    """Does this state dir hold the homeserver's registration secret (and so admin power)?"""
    return config.embedded or bool(config.registration_shared_secret)


async def admin_credentials(config: Config) -> SessionCredentials | None:
    """The admin account's login, made on first use; None where we have no admin power."""
    if not can_administer(config):
        return None
    base = f"cm-admin-{config.machine_id}"
    # A lost admin login is simply replaced: the registration secret makes another.
    return await ensure_account(
        config, ADMIN_SLUG, [base, f"{base}-{secrets.token_hex(3)}"], admin=True
    )


async def recover_account(config: Config, slug: str, user: str) -> SessionCredentials:
    """Log in again to an account of this state dir whose credentials were lost, keeping its
    Matrix ID: the admin API gives it a new password (other logins stay). `user` is a
    Matrix ID or, for the machine's own accounts, a localpart on this homeserver."""
    admin = await admin_credentials(config)
    if admin is None:
        raise ConfigError(
            f"the homeserver {config.homeserver_url} does not let ClaudeMatrix reset a "
            "password (no registration shared secret here): log in to that account from a "
            "Matrix client, or run `claudematrix recover --new-account` to keep the local "
            "history under a new Matrix ID"
        )
    user_id = user if user.startswith("@") else f"@{user}:{server_name(admin.user_id)}"
    password = secrets.token_urlsafe(24)
    await asyncio.to_thread(
        homeserver.reset_password, config.homeserver_url, admin.access_token, user_id, password
    )
    creds = await MatrixClient.login(config.homeserver_url, user_id, password, _device())
    save_account(slug, creds, password)
    return creds


async def log_in_on_new_device(config: Config, slug: str, user: UserID) -> SessionCredentials:
    """A new login (so a new device) for an identity whose device keys were lost, with its
    stored password, or one the admin API sets where that password no longer works."""
    password = stored_password(slug)
    if password:
        try:
            creds = await MatrixClient.login(config.homeserver_url, user, password, _device())
        except HomeserverError:
            pass  # changed since (e.g. the person's `password`): the admin way below
        else:
            save_account(slug, creds, password)
            return creds
    return await recover_account(config, slug, user)


async def person_account(
    url: str, token: str | None, user: str, password: str
) -> SessionCredentials:
    """The person's own account on the homeserver at `url` (a team server): logged in if it
    exists, else registered with the registration `token`."""
    localpart = user[1:].split(":", 1)[0] if user.startswith("@") else user
    try:
        return await MatrixClient.login(url, user, password, _device())
    except HomeserverError as exc:
        if not token:
            raise
        login_failure = exc
    try:
        return await MatrixClient.register_with_token(url, localpart, password, token, _device())
    except UserInUse:
        raise ConfigError(
            f"{user} exists on {url} and did not take that password "
            f"({login_failure.message}): run this again with the right one"
        ) from None
