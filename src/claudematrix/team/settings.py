"""What `claudematrix server init` chooses for a team's Synapse, and the homeserver.yaml it
writes from that: PostgreSQL, registration by token only, rate limits, federation off unless
asked, no media or URL previews, and the session settings every ClaudeMatrix homeserver has."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from claudematrix.errors import ConfigError, StateCorrupt
from claudematrix.homeserver.synapse_config import session_settings
from claudematrix.paths import read_json

from .layout import TeamDir

__all__ = [
    "DEFAULT_LISTEN",
    "TeamSettings",
    "load_settings",
    "parse_listen",
    "parse_public_url",
    "parse_server_name",
    "synapse_yaml_settings",
]

DEFAULT_LISTEN = "127.0.0.1:8008"
_SERVER_NAME = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")

# Agents of one person send in bursts (a worker's progress edits, a fan-out to a project);
# a flood from one account is held to this. Per account, per second / burst.
_MESSAGES = {"per_second": 20, "burst_count": 200}
# Every new Claude Code session registers an account; a machine opening a dozen at once
# must pass, a script registering thousands must not.
_REGISTRATIONS = {"per_second": 0.5, "burst_count": 30}
# The rest is people and attackers: a person mistyping can retry soon, guessing cannot.
_LOGINS: dict[str, Any] = {
    "address": {"per_second": 0.5, "burst_count": 10},
    "account": {"per_second": 0.2, "burst_count": 5},
    "failed_attempts": {"per_second": 0.05, "burst_count": 5},
}
_JOINS = {
    "local": {"per_second": 5, "burst_count": 50},
    "remote": {"per_second": 0.1, "burst_count": 10},
}
_INVITES = {
    # The machine account invites each new session into its lobby and project rooms.
    "per_room": {"per_second": 5, "burst_count": 50},
    "per_user": {"per_second": 1, "burst_count": 20},
    "per_issuer": {"per_second": 5, "burst_count": 50},
}


@dataclass(frozen=True)
class TeamSettings:
    server_name: str
    public_url: str
    listen_host: str
    listen_port: int
    federation: bool = False
    synapse_venv: str | None = None  # None: <dir>/venv, made by ClaudeMatrix

    @property
    def local_url(self) -> str:
        """Where this host reaches its own Synapse (health checks, the admin API)."""
        host = self.listen_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1" if host != "::" else "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.listen_port}"


def parse_server_name(value: str) -> str:
    name = value.strip()
    if not name or not _SERVER_NAME.match(name):
        raise ConfigError(
            f"{value!r} is not a server name: give the domain that will end every Matrix ID "
            "on this server, e.g. example.org or matrix.example.org"
        )
    return name


def parse_public_url(value: str) -> str:
    parsed = urllib.parse.urlsplit(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigError(
            f"{value!r} is not a URL: give the address clients reach this server at, e.g. "
            "https://matrix.example.org"
        )
    return value.strip().rstrip("/")


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{value!r} is not ADDRESS:PORT: give where Synapse listens for the reverse proxy, "
            f"e.g. {DEFAULT_LISTEN}"
        )
    return host, int(port)


def load_settings(team: TeamDir) -> TeamSettings:
    data = read_json(team.settings_path)
    if data is None:
        raise ConfigError(
            f"{team.root} is not a team server directory: run `claudematrix server init "
            f"--dir {team.root} ...` first (or give the --dir it was made in)"
        )
    try:
        return TeamSettings(**data)
    except TypeError:
        raise StateCorrupt(
            f"{team.settings_path} does not hold the team server's settings: restore it from "
            "a backup, or run `claudematrix server init` in a new directory"
        ) from None


def synapse_yaml_settings(
    settings: TeamSettings, team: TeamDir, database_args: dict[str, Any]
) -> dict[str, Any]:
    """The whole homeserver.yaml as a dict. `database_args`: psycopg2 connection keywords."""
    paths = team.synapse
    resources = ["client"] + (["federation"] if settings.federation else [])
    return {
        "server_name": settings.server_name,
        "public_baseurl": settings.public_url + "/",
        "listeners": [
            {
                "port": settings.listen_port,
                "bind_addresses": [settings.listen_host],
                "type": "http",
                "tls": False,
                # Behind a TLS reverse proxy: rate limits and logs see the client's address.
                "x_forwarded": True,
                "resources": [{"names": resources, "compress": False}],
            }
        ],
        "database": {
            "name": "psycopg2",
            "txn_limit": 10000,
            "args": {**database_args, "cp_min": 5, "cp_max": 10},
        },
        "log_config": str(paths.log_config_path),
        "signing_key_path": str(paths.signing_key_path),
        # Stays on this host: `claudematrix server` makes its admin login with it, and
        # machines join with registration tokens instead.
        "registration_shared_secret_path": str(paths.secret_path),
        "macaroon_secret_key_path": str(paths.macaroon_path),
        "form_secret_path": str(paths.form_secret_path),
        "enable_registration": True,
        "registration_requires_token": True,
        "enable_media_repo": False,
        "media_store_path": str(paths.media_path),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        **_federation(settings),
        **session_settings(),
        "rc_message": _MESSAGES,
        "rc_registration": _REGISTRATIONS,
        "rc_registration_token_validity": {"per_second": 0.1, "burst_count": 10},
        "rc_login": _LOGINS,
        "rc_joins": _JOINS,
        "rc_invites": _INVITES,
        "rc_room_creation": {"per_second": 1, "burst_count": 30},
        "rc_delayed_event_mgmt": {"per_second": 10, "burst_count": 100},
        "rc_key_requests": {"per_second": 20, "burst_count": 200},
    }


def _federation(settings: TeamSettings) -> dict[str, Any]:
    if settings.federation:
        return {"allow_public_rooms_over_federation": False}
    return {"federation_domain_whitelist": [], "allow_public_rooms_over_federation": False}
