"""Settings: environment > <state dir>/config.json > defaults.

The embedded homeserver is the default. Setting a homeserver URL switches to an external
server, and then nothing is started locally.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claudematrix.errors import ConfigError
from claudematrix.federation.address import FederationAddress, parse_federation_address
from claudematrix.local import layout
from claudematrix.paths import read_json, state_dir, write_json_private
from claudematrix.session_env import SessionEnv

__all__ = [
    "Config",
    "load_config",
    "update_stored_config",
    "stored_setting",
    "DEFAULT_PORT",
    "DEFAULT_SERVER_NAME",
]

DEFAULT_PORT = 18008
DEFAULT_SERVER_NAME = "localhost"

# env var -> config.json key; documented in README "Use an existing homeserver".
_ENV_KEYS = {
    "CLAUDEMATRIX_HOMESERVER": "homeserver",
    "CLAUDEMATRIX_SERVER_NAME": "server_name",
    "CLAUDEMATRIX_PORT": "port",
    "CLAUDEMATRIX_REGISTRATION_SHARED_SECRET": "registration_shared_secret",
    "CLAUDEMATRIX_REGISTRATION_TOKEN": "registration_token",
    "CLAUDEMATRIX_USER": "owner_user",
    "CLAUDEMATRIX_PASSWORD": "owner_password",
    "CLAUDEMATRIX_ACCESS_TOKEN": "owner_access_token",
    "CLAUDEMATRIX_SYNAPSE_VENV": "synapse_venv",
    "CLAUDEMATRIX_MACHINE_NAME": "machine_name",
    "CLAUDEMATRIX_MODE": "mode",
    "CLAUDEMATRIX_FEDERATION": "federation",
}
_PLUGIN_MODE = "CLAUDEMATRIX_PLUGIN_MODE"
_MODES = ("secret", "private", "trusted", "public")


@dataclass(frozen=True)
class Config:
    home: Path
    # None means "use the embedded homeserver".
    external_url: str | None
    server_name: str
    port: int
    machine_id: str
    machine_name: str
    registration_shared_secret: str | None
    registration_token: str | None
    owner_user: str | None
    owner_password: str | None
    owner_access_token: str | None
    synapse_venv: Path | None
    # Where the embedded homeserver's federation listener binds; None: no federation at all.
    federation: FederationAddress | None = None
    # The mode a new identity starts in (default private); applied before it
    # joins or publishes anything.
    default_mode: str = "private"

    @property
    def embedded(self) -> bool:
        return self.external_url is None

    @property
    def homeserver_url(self) -> str:
        return self.external_url or f"http://127.0.0.1:{self.port}"

    def __repr__(self) -> str:  # never show secrets in tracebacks or logs
        return (
            f"Config(home={str(self.home)!r}, homeserver={self.homeserver_url!r}, "
            f"server_name={self.server_name!r}, machine_id={self.machine_id!r})"
        )


def _config_path(home: Path) -> Path:
    return home / layout.CONFIG


def _first_init(home: Path, environ: Any) -> dict[str, Any]:
    """Settings chosen once per state dir and kept: the machine's identity and server name.

    The server name is part of every Matrix ID made here, so it is fixed at the first run:
    CLAUDEMATRIX_SERVER_NAME if set, else the federation address if the machine is set up to
    federate from the start (other machines reach it by that name), else "localhost".
    """
    stored = read_json(_config_path(home)) or {}
    if not isinstance(stored, dict):
        raise ConfigError(f"{_config_path(home)} must hold a JSON object; fix or delete it")
    if "machine_id" not in stored:
        stored["machine_id"] = secrets.token_hex(4)
        federation = environ.get("CLAUDEMATRIX_FEDERATION") or stored.get("federation")
        chosen = environ.get("CLAUDEMATRIX_SERVER_NAME") or stored.get("server_name")
        if not chosen and federation:
            address = parse_federation_address(str(federation))
            chosen = None if address.unspecified else str(address)
        stored["server_name"] = chosen or DEFAULT_SERVER_NAME
        write_json_private(_config_path(home), stored)
    return stored


def update_stored_config(changes: dict[str, Any], forget: tuple[str, ...] = ()) -> None:
    """Change settings in <state dir>/config.json (the person's own commands do this);
    `forget`: keys to remove, back to their defaults."""
    home = state_dir()
    stored = _first_init(home, os.environ)
    kept = {key: value for key, value in stored.items() if key not in forget}
    write_json_private(_config_path(home), {**kept, **changes})


def stored_setting(key: str) -> Any:
    """One setting as config.json holds it (None if absent), beneath any environment."""
    stored = read_json(_config_path(state_dir()))
    return stored.get(key) if isinstance(stored, dict) else None


def load_config(session: SessionEnv | None = None) -> Config:
    """The settings of `session` (default: this process's own environment)."""
    environ = os.environ if session is None else session.environ
    home = state_dir()
    values: dict[str, Any] = dict(_first_init(home, environ))
    # The plugin's "mode" option (.mcp.json passes it on): below the environment variable,
    # above config.json. Unset, it arrives empty.
    if environ.get(_PLUGIN_MODE):
        values["mode"] = environ[_PLUGIN_MODE]
    for env, key in _ENV_KEYS.items():
        if environ.get(env):
            values[key] = environ[env]
    url = values.get("homeserver") or None
    if url is not None and not str(url).startswith(("http://", "https://")):
        raise ConfigError(
            f"homeserver {url!r} must be an http(s) URL, e.g. https://matrix.example.org"
        )
    try:
        port = int(values.get("port", DEFAULT_PORT))
    except ValueError:
        raise ConfigError("CLAUDEMATRIX_PORT must be a port number, e.g. 18008") from None
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is out of range: use 1-65535")
    venv = values.get("synapse_venv")
    federation = values.get("federation")
    mode = str(values.get("mode") or "private").strip().lower()
    if mode not in _MODES:
        raise ConfigError(
            f"CLAUDEMATRIX_MODE {mode!r} is not a mode: use one of {', '.join(_MODES)}"
        )
    return Config(
        home=home,
        external_url=str(url).rstrip("/") if url else None,
        server_name=str(values.get("server_name") or DEFAULT_SERVER_NAME),
        port=port,
        machine_id=str(values["machine_id"]),
        machine_name=str(values.get("machine_name") or socket.gethostname()),
        registration_shared_secret=values.get("registration_shared_secret"),
        registration_token=values.get("registration_token"),
        owner_user=values.get("owner_user"),
        owner_password=values.get("owner_password"),
        owner_access_token=values.get("owner_access_token"),
        synapse_venv=Path(venv).expanduser() if venv else None,
        federation=parse_federation_address(str(federation)) if federation else None,
        default_mode=mode,
    )
