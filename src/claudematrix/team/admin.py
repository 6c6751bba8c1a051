"""The team server's own admin login and what it is for: registration tokens.

The login is made on first use with the registration secret, which never leaves this host
(homeserver.yaml points Synapse at it), and kept in <dir>/admin.json (0600). Machines and
people join with tokens made here; none of them ever holds an admin secret.
"""

from __future__ import annotations

import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from claudematrix.errors import ConfigError, HomeserverError, HomeserverUnavailable
from claudematrix.homeserver import register_account
from claudematrix.homeserver._http import Response, Unreachable, request_json
from claudematrix.homeserver._lock import file_lock
from claudematrix.paths import read_json, write_json_private

from .layout import TeamDir
from .settings import TeamSettings

__all__ = [
    "RegistrationToken",
    "admin_token",
    "create_token",
    "list_tokens",
    "parse_duration",
    "revoke_token",
]

ADMIN_LOCALPART = "cm-team-admin"
_TOKENS = "/_synapse/admin/v1/registration_tokens"
_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class RegistrationToken:
    token: str
    uses_allowed: int | None  # None: any number
    pending: int
    completed: int
    expiry_ms: int | None  # None: never

    @property
    def state(self) -> str:
        if self.expiry_ms is not None and self.expiry_ms <= time.time() * 1000:
            return "expired"
        if self.uses_allowed is not None and self.completed + self.pending >= self.uses_allowed:
            return "used up"
        return "valid"

    def as_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "uses_allowed": self.uses_allowed,
            "pending": self.pending,
            "completed": self.completed,
            "expiry_ms": self.expiry_ms,
            "state": self.state,
        }


def parse_duration(value: str) -> int:
    """'30m', '12h', '7d', '2w' -> seconds."""
    found = _DURATION.match(value.strip().lower())
    if not found or int(found.group(1)) == 0:
        raise ConfigError(f"{value!r} is not a duration: give a number and m, h, d or w, e.g. 7d")
    return int(found.group(1)) * _UNIT_S[found.group(2)]


def _call(
    settings: TeamSettings, method: str, path: str, token: str, body: dict[str, Any] | None = None
) -> Response:
    try:
        return request_json(method, settings.local_url + path, body, timeout=15.0, token=token)
    except Unreachable as exc:
        raise HomeserverUnavailable(
            f"the team server is not answering at {settings.local_url} ({exc}): start it "
            "(`claudematrix server start --dir <its directory>`, or its service)"
        ) from None


def _valid(settings: TeamSettings, token: str) -> bool:
    resp = _call(settings, "GET", "/_matrix/client/v3/account/whoami", token)
    return resp.status == 200


def admin_token(team: TeamDir, settings: TeamSettings) -> str:
    """The admin login's access token, made (or made again, if it stopped working) here."""
    stored = read_json(team.admin_path) or {}
    token = stored.get("access_token")
    if isinstance(token, str) and _valid(settings, token):
        return token
    with file_lock(
        team.admin_lock_path,
        timeout=60.0,
        held_message="another `claudematrix server` command is making the admin login: retry",
    ):
        stored = read_json(team.admin_path) or {}
        token = stored.get("access_token")
        if isinstance(token, str) and _valid(settings, token):
            return token
        secret = team.synapse.secret_path.read_text().strip()
        localpart = stored.get("localpart") or ADMIN_LOCALPART
        if stored:  # that login stopped working: a new admin account, the old one stays
            localpart = f"{ADMIN_LOCALPART}-{secrets.token_hex(3)}"
        account = register_account(
            settings.local_url, secret, localpart, secrets.token_urlsafe(24), admin=True
        )
        write_json_private(
            team.admin_path,
            {
                "localpart": localpart,
                "user_id": account.user_id,
                "access_token": account.access_token,
            },
        )
        return account.access_token


def _token_of(body: dict[str, Any]) -> RegistrationToken:
    return RegistrationToken(
        token=str(body.get("token")),
        uses_allowed=body.get("uses_allowed"),
        pending=int(body.get("pending") or 0),
        completed=int(body.get("completed") or 0),
        expiry_ms=body.get("expiry_time"),
    )


def _refused(resp: Response, what: str) -> HomeserverError:
    reason = resp.body.get("error") or f"HTTP {resp.status}"
    return HomeserverError(f"the team server refused to {what}: {reason}", resp.body.get("errcode"))


def create_token(
    team: TeamDir, settings: TeamSettings, uses: int | None, expires_s: int | None
) -> RegistrationToken:
    if uses is not None and uses < 1:
        raise ConfigError("--uses must be 1 or more (leave it out for any number of uses)")
    body: dict[str, Any] = {"uses_allowed": uses}
    if expires_s is not None:
        body["expiry_time"] = int((time.time() + expires_s) * 1000)
    resp = _call(settings, "POST", _TOKENS + "/new", admin_token(team, settings), body)
    if resp.status != 200:
        raise _refused(resp, "make a registration token")
    return _token_of(resp.body)


def list_tokens(team: TeamDir, settings: TeamSettings) -> list[RegistrationToken]:
    resp = _call(settings, "GET", _TOKENS, admin_token(team, settings))
    if resp.status != 200:
        raise _refused(resp, "list the registration tokens")
    found = resp.body.get("registration_tokens")
    return [_token_of(item) for item in (found if isinstance(found, list) else [])]


def revoke_token(team: TeamDir, settings: TeamSettings, token: str) -> None:
    path = f"{_TOKENS}/{urllib.parse.quote(token, safe='')}"
    resp = _call(settings, "DELETE", path, admin_token(team, settings))
    if resp.status == 404:
        raise ConfigError(
            f"there is no registration token {token!r}: `claudematrix server tokens` lists them"
        )
    if resp.status != 200:
        raise _refused(resp, "revoke the token")
