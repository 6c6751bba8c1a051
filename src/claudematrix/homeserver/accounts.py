"""Creating accounts with Synapse's shared-secret admin registration API.

GET /_synapse/admin/v1/register gives a one-use nonce; the POST carries an HMAC-SHA1 over
nonce, user, password and the admin flag, keyed with registration_shared_secret. Nothing
here logs or puts into an error message the secret, the password or the access token.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from claudematrix.errors import (
    HomeserverError,
    HomeserverUnavailable,
    RegistrationFailed,
    homeserver_error,
)

from ._http import Response, Unreachable, request_json

__all__ = ["RegisteredAccount", "register_account", "user_exists", "reset_password"]

_PATH = "/_synapse/admin/v1/register"
_RATE_LIMIT_WAIT = 15.0


@dataclass(frozen=True)
class RegisteredAccount:
    user_id: str
    access_token: str = field(repr=False)
    device_id: str


def _mac(secret: str, nonce: str, localpart: str, password: str, admin: bool) -> str:
    digest = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    digest.update(nonce.encode())
    digest.update(b"\x00")
    digest.update(localpart.encode())
    digest.update(b"\x00")
    digest.update(password.encode())
    digest.update(b"\x00")
    digest.update(b"admin" if admin else b"notadmin")
    return digest.hexdigest()


def _call(
    method: str, url: str, payload: dict[str, Any] | None = None, token: str | None = None
) -> Response:
    try:
        return request_json(method, url, payload, timeout=30.0, token=token)
    except Unreachable as err:
        base = url.split("/_synapse/", 1)[0]
        raise HomeserverUnavailable(
            f"the homeserver at {base} is not answering ({err}): run `claudematrix up` "
            "(or check CLAUDEMATRIX_HOMESERVER)"
        ) from None


def _failure(resp: Response, localpart: str) -> RegistrationFailed:
    errcode = str(resp.body.get("errcode") or "M_UNKNOWN")
    error = str(resp.body.get("error") or f"HTTP {resp.status}")
    hints = {
        "M_USER_IN_USE": "pick another name, or log in to that account instead",
        "M_FORBIDDEN": "the registration shared secret is wrong for this homeserver",
    }
    hint = hints.get(errcode) or (
        "the registration shared secret is wrong for this homeserver"
        if resp.status in (401, 403)
        else "check that the homeserver has a registration_shared_secret, and see its log"
    )
    failure = homeserver_error(
        f"could not register {localpart!r}: {error} ({errcode}); {hint}",
        errcode,
        RegistrationFailed,
    )
    assert isinstance(failure, RegistrationFailed)
    return failure


def register_account(
    base_url: str,
    shared_secret: str,
    localpart: str,
    password: str,
    *,
    admin: bool = False,
    displayname: str | None = None,
) -> RegisteredAccount:
    """Register `localpart` on the homeserver at `base_url`; return its first login."""
    url = base_url.rstrip("/") + _PATH
    deadline = time.monotonic() + _RATE_LIMIT_WAIT
    while True:
        got = _call("GET", url)
        nonce = got.body.get("nonce")
        if got.status != 200 or not isinstance(nonce, str):
            raise HomeserverError(
                f"the homeserver at {base_url} did not give a registration nonce "
                f"(HTTP {got.status}); is it a Synapse with the admin API on this URL?",
                errcode=str(got.body.get("errcode") or "") or None,
            )
        payload: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": _mac(shared_secret, nonce, localpart, password, admin),
        }
        if displayname is not None:
            payload["displayname"] = displayname
        resp = _call("POST", url, payload)
        if resp.status == 200:
            break
        if resp.body.get("errcode") == "M_LIMIT_EXCEEDED" and time.monotonic() < deadline:
            retry_ms = resp.body.get("retry_after_ms")
            wait = retry_ms / 1000 if isinstance(retry_ms, (int, float)) else 0.5
            time.sleep(min(max(wait, 0.05), 2.0))
            continue
        raise _failure(resp, localpart)
    body = resp.body
    user_id, token, device = body.get("user_id"), body.get("access_token"), body.get("device_id")
    if not (isinstance(user_id, str) and isinstance(token, str) and isinstance(device, str)):
        raise HomeserverError(
            f"the homeserver registered {localpart!r} but its answer lacked user_id, "
            "access_token or device_id"
        )
    return RegisteredAccount(user_id=user_id, access_token=token, device_id=device)


def registration_token_valid(base_url: str, token: str) -> bool | None:
    """Would the homeserver register an account with `token` now? None if it takes no
    registration tokens at all (registration closed, or not a homeserver that has them)."""
    query = urllib.parse.urlencode({"token": token})
    url = (
        f"{base_url.rstrip('/')}/_matrix/client/v1/register/m.login.registration_token/"
        f"validity?{query}"
    )
    resp = _call("GET", url)
    if resp.status == 429:
        raise homeserver_error(
            f"the homeserver at {base_url} limits token checks: wait a minute and retry",
            "M_LIMIT_EXCEEDED",
        )
    if resp.status != 200 or not isinstance(resp.body.get("valid"), bool):
        return None
    return bool(resp.body["valid"])


# --- the admin API, for an admin account's token (the state dir's "_admin" identity) -------


def user_exists(base_url: str, admin_token: str, user_id: str) -> bool:
    """Does the homeserver have this local account (deactivated ones count as gone)?"""
    url = f"{base_url.rstrip('/')}/_synapse/admin/v2/users/{urllib.parse.quote(user_id)}"
    resp = _call("GET", url, token=admin_token)
    if resp.status == 404:
        return False
    if resp.status != 200:
        raise HomeserverError(
            f"the homeserver would not say whether {user_id} exists "
            f"({resp.body.get('errcode') or resp.status})",
            errcode=str(resp.body.get("errcode") or "") or None,
        )
    return not resp.body.get("deactivated")


def reset_password(base_url: str, admin_token: str, user_id: str, password: str) -> None:
    """Give a local account a new password, keeping its other logins."""
    url = f"{base_url.rstrip('/')}/_synapse/admin/v1/reset_password/{urllib.parse.quote(user_id)}"
    resp = _call("POST", url, {"new_password": password, "logout_devices": False}, admin_token)
    if resp.status != 200:
        raise HomeserverError(
            f"the homeserver refused to reset the password of {user_id} "
            f"({resp.body.get('errcode') or resp.status}: {resp.body.get('error', '')})",
            errcode=str(resp.body.get("errcode") or "") or None,
        )


def federation_down_since(base_url: str, admin_token: str, server: str) -> int | None:
    """Since when (ms) this homeserver has failed to reach `server` over federation, by
    Synapse's own records; None when it reaches it (or never had to)."""
    where = urllib.parse.quote(server, safe="")
    url = f"{base_url}/_synapse/admin/v1/federation/destinations/{where}"
    resp = _call("GET", url, token=admin_token)
    failed = resp.body.get("failure_ts") if resp.status == 200 else None
    return int(failed) if isinstance(failed, int) and failed > 0 else None
