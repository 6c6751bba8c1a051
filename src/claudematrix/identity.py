"""Who a process acts as: --as, else the Claude Code session, else the person ("owner")."""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass

from claudematrix.ids import IdentityName, parse_identity_name, sanitize_localpart
from claudematrix.local import layout
from claudematrix.session_env import SessionEnv
from claudematrix.workspace import Workspace

__all__ = [
    "Identity",
    "resolve_identity",
    "OWNER",
    "MACHINE_SLUG",
    "ADMIN_SLUG",
    "display_name_for",
    "neutral_name",
]

OWNER = IdentityName("owner")
# Not valid IdentityNames (leading underscore), so no --as can ever collide with them. The
# admin account is made only where the state dir holds the registration secret (which can
# make admins anyway): to tell whether a user exists now that profiles are private, and to
# give a session whose credentials were lost its own account back.
MACHINE_SLUG = layout.MACHINE
ADMIN_SLUG = layout.ADMIN
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass(frozen=True)
class Identity:
    name: IdentityName
    is_owner: bool
    from_session_env: bool

    @property
    def slug(self) -> str:
        """Its folder under <state dir>/identities."""
        return self.name

    @property
    def short(self) -> str:
        return self.name[:8] if _UUID.match(self.name) else self.name

    def localpart_candidates(self) -> list[str]:
        """Matrix usernames to try, best first; later ones only if earlier are taken."""
        if self.is_owner:
            base = sanitize_localpart(_os_user())
        elif _UUID.match(self.name):
            base = "cc-" + self.name[:8].lower()
        else:
            base = "cc-" + sanitize_localpart(self.name)
        more = sanitize_localpart(self.name.replace("-", ""))[:12]
        return [base, f"{base}-{more}", f"{base}-{os.urandom(3).hex()}"]


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "owner"


def resolve_identity(as_name: str | None = None, env: SessionEnv | None = None) -> Identity:
    if as_name:
        name = parse_identity_name(as_name)
        return Identity(name, name == OWNER, from_session_env=False)
    environ = os.environ if env is None else env.environ
    session = environ.get("CLAUDE_CODE_SESSION_ID", "").strip()
    if session:
        return Identity(parse_identity_name(session), False, from_session_env=True)
    return Identity(OWNER, True, from_session_env=False)


def display_name_for(identity: Identity, ws: Workspace) -> str:
    """A name that tells a person which session this is: project, branch, host, short id."""
    if identity.is_owner:
        return f"{_os_user()} (owner on {ws.host})"
    where = ws.project + (f"@{ws.branch}" if ws.branch else "")
    return f"{where} on {ws.host} ({identity.short})"


def neutral_name(identity: Identity) -> str:
    """The name shown where my mode does not reach: says nothing about my work or machine."""
    if identity.is_owner:
        return _os_user()
    return f"ClaudeMatrix session {identity.short}"
