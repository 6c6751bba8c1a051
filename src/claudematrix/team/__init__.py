"""A team's own Synapse on PostgreSQL (`claudematrix server ...`): its config, process,
health and registration tokens. Machines join it with `claudematrix join` (claudematrix.service).

Depends on claudematrix.homeserver (install, process and the admin API of Synapse), .errors
and .paths; runs on the team's host, not in a session.
"""

from __future__ import annotations

from .admin import RegistrationToken, create_token, list_tokens, parse_duration, revoke_token
from .health import Check, health
from .layout import TeamDir
from .server import TeamStatus, exec_foreground, init, start, status, stop
from .settings import (
    DEFAULT_LISTEN,
    TeamSettings,
    load_settings,
    parse_listen,
    parse_public_url,
    parse_server_name,
)

__all__ = [
    "DEFAULT_LISTEN",
    "Check",
    "RegistrationToken",
    "TeamDir",
    "TeamSettings",
    "TeamStatus",
    "create_token",
    "exec_foreground",
    "health",
    "init",
    "list_tokens",
    "load_settings",
    "parse_duration",
    "parse_listen",
    "parse_public_url",
    "parse_server_name",
    "revoke_token",
    "start",
    "status",
    "stop",
]
