"""The embedded Matrix homeserver (Synapse): install, configure, start/stop, accounts.

Depends only on claudematrix.errors, .paths, .config and the standard library.
"""

from __future__ import annotations

from ._http import versions_ok
from .accounts import (
    RegisteredAccount,
    federation_down_since,
    register_account,
    registration_token_valid,
    reset_password,
    user_exists,
)
from .install import SYNAPSE_VERSION, ensure_installed
from .layout import HomeserverPaths, homeserver_paths
from .nudge import peer_lets_us_in
from .process import HomeserverStatus, apply_settings, start, status, stop
from .synapse_config import own_server_name, registration_shared_secret

__all__ = [
    "SYNAPSE_VERSION",
    "apply_settings",
    "HomeserverPaths",
    "HomeserverStatus",
    "RegisteredAccount",
    "ensure_installed",
    "federation_down_since",
    "homeserver_paths",
    "peer_lets_us_in",
    "own_server_name",
    "register_account",
    "registration_shared_secret",
    "registration_token_valid",
    "reset_password",
    "user_exists",
    "versions_ok",
    "start",
    "status",
    "stop",
]
