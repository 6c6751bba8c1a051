"""`claudematrix server health`: what an operator (or a monitor) needs to know, one check
per line: the homeserver answering, its database reachable and migrated, disk space, and
registration by token working."""

from __future__ import annotations

import secrets
import shutil
from dataclasses import asdict, dataclass

from claudematrix.errors import ClaudeMatrixError
from claudematrix.homeserver import registration_token_valid
from claudematrix.homeserver._http import Unreachable, request_json

from .admin import admin_token
from .database import probe_config
from .layout import TeamDir
from .server import installed_synapse_python
from .settings import TeamSettings, load_settings

__all__ = ["Check", "health"]

# Below either, Synapse (and PostgreSQL beside it) is about to fail writes.
_MIN_FREE_BYTES = 1 << 30
_MIN_FREE_SHARE = 0.05
_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def _answering(team: TeamDir, settings: TeamSettings) -> Check:
    try:
        health = request_json("GET", settings.local_url + "/health", timeout=_TIMEOUT_S)
        versions = request_json(
            "GET", settings.local_url + "/_matrix/client/versions", timeout=_TIMEOUT_S
        )
    except Unreachable as exc:
        return Check(
            "homeserver",
            False,
            f"not answering at {settings.local_url} ({exc}): `claudematrix server start "
            f"--dir {team.root}`, or see {team.synapse.log_path}",
        )
    if health.status != 200 or versions.status != 200:
        return Check(
            "homeserver",
            False,
            f"answers at {settings.local_url} but unhealthy (health HTTP {health.status}, "
            f"versions HTTP {versions.status}): see {team.synapse.log_path}",
        )
    return Check("homeserver", True, f"answering at {settings.local_url}")


def _database(team: TeamDir, settings: TeamSettings) -> list[Check]:
    python = installed_synapse_python(team, settings)
    if python is None:
        return [
            Check(
                "database",
                False,
                "cannot check: Synapse or its PostgreSQL driver is not installed (`claudematrix "
                f"server start --dir {team.root}` installs them)",
            )
        ]
    report = probe_config(python, team.synapse.config_path)
    if report.error == "connect":
        return [
            Check(
                "database",
                False,
                f"PostgreSQL unreachable ({report.detail}): start it, or fix the connection "
                "in homeserver.yaml",
            )
        ]
    if report.error is not None:
        return [Check("database", False, f"cannot check ({report.error}: {report.detail})")]
    checks = [Check("database", True, f"PostgreSQL database {report.database!r} reachable")]
    if report.locale_problem:
        checks.append(Check("collation", False, f"{report.locale_problem}; Synapse needs C"))
    if report.schema_version is None:
        checks.append(
            Check("schema", False, "not created yet: Synapse makes it on its first start")
        )
    elif not report.migrated:
        checks.append(
            Check(
                "schema",
                False,
                f"at version {report.schema_version}, the installed Synapse wants "
                f"{report.synapse_schema}: restart the server to migrate it",
            )
        )
    else:
        checks.append(Check("schema", True, f"migrated (version {report.schema_version})"))
    return checks


def _disk(team: TeamDir) -> Check:
    usage = shutil.disk_usage(team.root)
    free_gib = usage.free / (1 << 30)
    if usage.free < _MIN_FREE_BYTES or usage.free < usage.total * _MIN_FREE_SHARE:
        return Check(
            "disk", False, f"{free_gib:.1f} GiB free under {team.root}: make room before it fills"
        )
    return Check("disk", True, f"{free_gib:.1f} GiB free under {team.root}")


def _registration(team: TeamDir, settings: TeamSettings) -> Check:
    """Registration by token is on (a made-up token is checked, and refused), and the admin
    login that makes tokens works."""
    try:
        # A made-up token: refused (False) where registration by token is on; None where not.
        valid = registration_token_valid(settings.local_url, "health-" + secrets.token_hex(8))
        if valid is not False:
            return Check("registration", False, "token registration is not working")
        admin_token(team, settings)
    except ClaudeMatrixError as exc:
        return Check("registration", False, f"cannot check, or the admin login fails: {exc}")
    return Check("registration", True, "open to registration tokens only; admin login works")


def health(team: TeamDir) -> list[Check]:
    settings = load_settings(team)
    answering = _answering(team, settings)
    checks = [answering, *_database(team, settings), _disk(team)]
    if answering.ok:
        checks.append(_registration(team, settings))
    else:
        checks.append(Check("registration", False, "cannot check: the homeserver is down"))
    return checks
