"""Minimal JSON over HTTP with urllib (the homeserver package uses no HTTP library)."""

from __future__ import annotations

import http.client
import ipaddress
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["Response", "Unreachable", "request_json", "versions_ok"]


class Unreachable(Exception):
    """Nothing answered at the URL (refused, reset, timed out, unresolvable)."""


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _opener(url: str) -> urllib.request.OpenerDirector:
    # A proxy from the environment must never see loopback traffic (or the secrets in it).
    if _is_loopback(url):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def request_json(
    method: str,
    url: str,
    payload: dict[str, Any] | None = None,
    timeout: float = 10.0,
    *,
    token: str | None = None,
) -> Response:
    """Send a request; return status and JSON body (empty dict if the body is not JSON).

    HTTP error statuses are returned, not raised; only "nothing answered" raises Unreachable.
    """
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _opener(url).open(req, timeout=timeout) as resp:
            return Response(resp.status, _parse(resp.read()))
    except urllib.error.HTTPError as err:
        with err:
            return Response(err.code, _parse(err.read()))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise Unreachable(str(reason)) from None


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def versions_ok(base_url: str, timeout: float = 2.0) -> bool:
    """True if a Matrix homeserver answers GET /_matrix/client/versions at base_url."""
    try:
        resp = request_json("GET", f"{base_url}/_matrix/client/versions", timeout=timeout)
    except Unreachable:
        return False
    return resp.status == 200 and isinstance(resp.body.get("versions"), list)
