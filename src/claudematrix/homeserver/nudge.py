"""After this machine's homeserver starts, tell each paired machine that it is back; and
ask whether a paired machine lets this one in.

A homeserver that failed to reach a peer backs off (minutes, then hours) before it retries,
so mail queued for this machine while it was off or asleep could wait that long. Synapse
clears its backoff for a server the moment it receives a signed request from it. Any
federation query makes one: here, looking up an alias on each peer (which exists or not,
the answer does not matter), asked of our own homeserver as the machine account.
"""

from __future__ import annotations

import json
import urllib.parse

from claudematrix.config import Config
from claudematrix.federation.peers import load_peers
from claudematrix.local import layout

from ._http import Unreachable, request_json

__all__ = ["nudge_peers", "peer_lets_us_in", "NUDGE_ALIAS"]

NUDGE_ALIAS = "claudematrix-back"
# Our homeserver signs and sends its query at once; waiting for the peer's answer (or for a
# peer that is away to time out) gains nothing, so a start waits at most this per peer.
_WAIT_S = 2.0


def _machine_token(config: Config) -> str | None:
    path = config.home / layout.IDENTITIES / layout.MACHINE / layout.ACCOUNT
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # no machine account yet: no session here, so nothing waits for us
    token = data.get("access_token") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


def nudge_peers(config: Config) -> list[str]:
    """Ask our homeserver about an alias on each paired machine; returns the servers asked.
    Never raises: a peer that is down now is nudged again on our next start, and it makes
    its own request when it comes back."""
    if config.federation is None or not config.embedded:
        return []
    peers = load_peers(config.home)
    token = _machine_token(config) if peers else None
    if token is None:
        return []
    asked = []
    for peer in peers:
        try:
            _ask_about_alias(config, peer.server_name, token, _WAIT_S)
        except Unreachable:
            continue
        asked.append(peer.server_name)
    return asked


def peer_lets_us_in(config: Config, server: str, timeout: float = 15.0) -> bool | None:
    """Whether the paired machine `server` answers this one over federation (it has added
    this machine's card too); None if that cannot be told (no machine account yet)."""
    token = _machine_token(config)
    if token is None:
        return None
    for _attempt in range(2):  # right after a restart, the first question can go unanswered
        try:
            status = _ask_about_alias(config, server, token, timeout)
        except Unreachable:
            continue
        return status in (200, 404)  # it answered: the alias exists or not; 502: refused
    return None


def _ask_about_alias(config: Config, server: str, token: str, timeout: float) -> int:
    alias = urllib.parse.quote(f"#{NUDGE_ALIAS}:{server}", safe="")
    url = f"{config.homeserver_url}/_matrix/client/v3/directory/room/{alias}"
    return request_json("GET", url, timeout=timeout, token=token).status
