"""Value types shared by the store, the Matrix layer, the service and the front ends."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from claudematrix.errors import BadLabel
from claudematrix.ids import EventID, RoomID, UserID

__all__ = ["Label", "Audience", "Where", "Direction", "Message", "Contact", "MAX_MESSAGE_BYTES"]

# Larger bodies are refused, not truncated: a person can split them, nothing is lost.
MAX_MESSAGE_BYTES = 64 * 1024


class Label(str, enum.Enum):
    """How far something may travel (README, "Privacy modes")."""

    SECRET = "secret"
    PRIVATE = "private"
    TRUSTED = "trusted"
    PUBLIC = "public"

    @classmethod
    def parse(cls, text: str) -> Label:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise BadLabel(
                f"unknown label {text!r}: use one of secret, private, trusted, public"
            ) from None


class Audience(str, enum.Enum):
    """Where a party stands relative to me, nearest first."""

    SELF = "self"
    PROJECT = "same project"
    MACHINE = "same machine"
    TRUSTED = "trusted remote"
    ANYONE = "remote"


@dataclass(frozen=True)
class Where:
    """Where a party stands, and the paired machine they are on if it is another one."""

    audience: Audience
    machine: str | None = None

    @property
    def value(self) -> str:
        """As headers show it: "same project", "remote (beta)", ..."""
        return f"{self.audience.value} ({self.machine})" if self.machine else self.audience.value


class Direction(str, enum.Enum):
    IN = "in"
    OUT = "out"


@dataclass(frozen=True)
class Message:
    event_id: EventID
    room_id: RoomID
    sender: UserID
    direction: Direction
    subject: str
    body: str
    label: Label
    origin_ts: int  # milliseconds since the epoch, as the homeserver stamped it
    sender_name: str = ""
    reply_to: EventID | None = None
    recipient: UserID | None = None
    local_id: int | None = None  # the short id people type: `claudematrix read 12`
    read: bool = False
    announced: bool = False
    # Encrypted by a device nobody verified (not by emoji, not this machine's own session).
    unverified_device: bool = False


@dataclass(frozen=True)
class Contact:
    """Someone I can reach, with what they chose to publish to me."""

    user_id: UserID
    display_name: str
    audience: Audience
    last_seen_ts: int | None = None
    status: str = ""
    dm_room: RoomID | None = None
    short_name: str = ""
    project: str = ""
    branch: str = ""
    host: str = ""
    task: str = ""
    mode: str = ""
    online: bool = False
    machine: str | None = None  # the paired machine they are on, if another one

    @property
    def where(self) -> Where:
        return Where(self.audience, self.machine)
