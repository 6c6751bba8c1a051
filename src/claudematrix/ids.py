"""Typed identifiers and the one place that validates their syntax."""

from __future__ import annotations

import re
from typing import NewType

from claudematrix.errors import InvalidInput

__all__ = [
    "UserID",
    "RoomID",
    "RoomAlias",
    "EventID",
    "IdentityName",
    "parse_user_id",
    "parse_room_id",
    "parse_room_alias",
    "parse_identity_name",
    "is_user_id",
    "is_room_ref",
    "localpart",
    "server_name",
    "sanitize_localpart",
]

UserID = NewType("UserID", str)
RoomID = NewType("RoomID", str)
RoomAlias = NewType("RoomAlias", str)
EventID = NewType("EventID", str)
# The local name of an identity: "owner", a Claude Code session id, or a name given with --as.
IdentityName = NewType("IdentityName", str)

_SERVER = r"[A-Za-z0-9.\-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?"
_USER_RE = re.compile(rf"^@([a-z0-9._=\-/+]+):({_SERVER})$")
# Room version 12 IDs are "!<hash>" with no server part; older ones are "!<local>:<server>".
_ROOM_RE = re.compile(rf"^!([A-Za-z0-9._~\-=+/]+)(?::({_SERVER}))?$")
_ALIAS_RE = re.compile(rf"^#([^:\s]+):({_SERVER})$")
_IDENTITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
_LOCALPART_BAD = re.compile(r"[^a-z0-9._=\-]+")


def is_user_id(text: str) -> bool:
    return text.startswith("@")


def is_room_ref(text: str) -> bool:
    return text.startswith(("!", "#"))


def parse_user_id(text: str) -> UserID:
    if not _USER_RE.fullmatch(text) or len(text) > 255:
        raise InvalidInput(
            f"{text!r} is not a valid Matrix user ID: use the form @name:server, "
            "e.g. @alice:localhost"
        )
    return UserID(text)


def parse_room_id(text: str) -> RoomID:
    if not _ROOM_RE.fullmatch(text):
        raise InvalidInput(
            f"{text!r} is not a valid Matrix room ID: use the form !id or !id:server"
        )
    return RoomID(text)


def parse_room_alias(text: str) -> RoomAlias:
    if not _ALIAS_RE.fullmatch(text):
        raise InvalidInput(f"{text!r} is not a valid Matrix room alias: use #name:server")
    return RoomAlias(text)


def parse_identity_name(text: str) -> IdentityName:
    if not _IDENTITY_RE.fullmatch(text):
        raise InvalidInput(
            f"{text!r} is not a usable session name: use letters, digits, '.', '_' or '-' "
            "(at most 64), starting with a letter or digit"
        )
    return IdentityName(text)


def localpart(user_id: UserID) -> str:
    return user_id[1:].split(":", 1)[0]


def server_name(user_id: UserID) -> str:
    return user_id.split(":", 1)[1]


def sanitize_localpart(text: str) -> str:
    """Turn any name into characters a Matrix localpart may hold."""
    cleaned = _LOCALPART_BAD.sub("-", text.lower()).strip("-.")
    return cleaned or "x"
