"""What only the person may change: mode, trust, blocks, requests.

Nothing here runs because of a message: callers are the CLI (a person at a terminal) or MCP
tools that first get the person's confirmation. Moving to a more private mode, untrusting and
blocking never need confirmation; opening up, trusting and accepting always do.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

from claudematrix.config import Config
from claudematrix.errors import (
    ClaudeMatrixError,
    ConsentRequired,
    HomeserverError,
    InvalidInput,
    ModeChangeFailed,
    UnknownRecipient,
)
from claudematrix.ids import RoomID, UserID, parse_user_id
from claudematrix.local.untrusted import STATUS_MAX, unsafe_characters
from claudematrix.matrix import MatrixClient
from claudematrix.policy import opens_up
from claudematrix.service.directory import Directory
from claudematrix.service.recipients import existing_user
from claudematrix.store import Request, RoomRecord, Store
from claudematrix.types import Label

__all__ = ["People", "Accepted"]


class Host(Protocol):
    """What People needs of the identity it serves (claudematrix.service.Service is one)."""

    config: Config
    store: Store
    directory: Directory

    def require_client(self) -> MatrixClient: ...

    async def join_invitation(
        self, room_id: RoomID, inviter: UserID, direct: bool
    ) -> RoomRecord | None: ...

    def signal_new_mail(self, newest_id: int) -> None: ...

    def try_own_sync(self) -> bool: ...

    async def sync(self, timeout_ms: int = 0) -> list[int]: ...


@dataclass(frozen=True)
class Accepted:
    rooms: list[RoomID]  # conversations joined
    released: int  # held messages moved to the inbox


def _person_only(action: str, command: str) -> ConsentRequired:
    return ConsentRequired(
        f"{action} needs the person's confirmation: ask them to run `claudematrix {command}` "
        f"in their terminal (or /claudematrix:{command.split()[0]})"
    )


class People:
    def __init__(self, service: Host) -> None:
        self.service = service

    async def set_mode(self, mode: str | Label, *, confirmed: bool) -> Label:
        """Apply a mode, and store it only once it is in force: a change that fails leaves
        the previous mode (re-applied) with a one-line error, and every command working."""
        new = mode if isinstance(mode, Label) else Label.parse(mode)
        old = self.service.directory.mode()
        if opens_up(old, new) and not confirmed:
            raise _person_only(f"switching from {old.value} to {new.value}", f"mode {new.value}")
        try:
            await self.service.directory.apply_mode(new)
            if new in (Label.TRUSTED, Label.PUBLIC):
                await self.share_circle(new)
        except ClaudeMatrixError as exc:
            if opens_up(old, new):  # take back what was opened; what was closed stays closed
                with contextlib.suppress(ClaudeMatrixError):
                    await self.service.directory.apply_mode(old)
            raise ModeChangeFailed(
                f"could not switch to {new.value} ({exc}); the mode stays {old.value}"
            ) from None
        self.service.store.set_setting("mode", new.value)
        return new

    async def set_status(self, text: str) -> str:
        status = text.strip()
        if len(status) > STATUS_MAX or unsafe_characters(status):
            raise InvalidInput(
                f"a status is one line of at most {STATUS_MAX} characters, without control, "
                "escape or invisible characters: retype it as plain text"
            )
        self.service.store.set_setting("status", status)
        await self.service.directory.publish()
        return status

    async def _existing_user(self, user: str) -> UserID:
        user_id = parse_user_id(user.strip())
        await existing_user(self.service.config, self.service.require_client(), user_id)
        return user_id

    def confirm_device(self, user: str, device_id: str, *, confirmed: bool) -> UserID:
        """The person vouches for a contact's held (new or changed) device: room keys go to
        it from the next message on."""
        if not confirmed:
            raise _person_only(f"confirming {user}'s device {device_id}", f"devices {user}")
        user_id = parse_user_id(user.strip())
        if not self.service.store.confirm_device(user_id, device_id):
            raise InvalidInput(
                f"{user_id} has no held device {device_id}: `claudematrix devices {user_id}` "
                "lists the ones waiting for you"
            )
        return user_id

    async def trust(self, user: str, *, confirmed: bool) -> UserID:
        if not confirmed:
            raise _person_only(f"trusting {user}", f"trust {user}")
        user_id = await self._existing_user(user)
        self.service.store.set_blocked(user_id, False)
        self.service.store.set_trusted(user_id, True)
        await self._accept_from(user_id)  # trusting someone accepts their requests
        mode = self.service.directory.mode()
        if mode in (Label.TRUSTED, Label.PUBLIC):
            await self.share_circle_with(user_id, mode)
        return user_id

    async def share_circle_with(self, user: UserID, mode: Label) -> None:
        circle = await self.service.directory.circle()
        await self.service.require_client().invite(circle, user)
        await self.service.directory.publish(mode)

    async def share_circle(self, mode: Label) -> None:
        """After opening up to trusted: invite everyone already trusted."""
        for user in self.service.store.trusted():
            await self.share_circle_with(user, mode)

    async def untrust(self, user: str) -> UserID:
        user_id = parse_user_id(user.strip())
        self.service.store.set_trusted(user_id, False)
        client = self.service.require_client()
        for circle in self.service.store.rooms_of_kind("circle"):
            if user_id in self.service.store.members(circle):
                await client.kick(circle, user_id)
        return user_id

    async def block(self, user: str) -> UserID:
        user_id = parse_user_id(user.strip())
        self.service.store.set_blocked(user_id, True)
        self.service.store.drop_held(user_id)
        client = self.service.require_client()
        for request in self.service.store.drop_requests_from(user_id):
            if request.kind == "invite":
                with contextlib.suppress(HomeserverError):
                    await client.reject(request.room_id)
        for circle in self.service.store.rooms_of_kind("circle"):
            if user_id in self.service.store.members(circle):
                await client.kick(circle, user_id)
        return user_id

    async def unblock(self, user: str) -> UserID:
        user_id = parse_user_id(user.strip())
        self.service.store.set_blocked(user_id, False)
        return user_id

    def requests(self) -> list[Request]:
        return self.service.store.requests()

    async def accept(self, user: str, *, confirmed: bool) -> Accepted:
        if not confirmed:
            raise _person_only(f"accepting {user}'s request", f"accept {user}")
        user_id = parse_user_id(user.strip())
        if not any(r.inviter == user_id for r in self.service.store.requests()):
            raise UnknownRecipient(
                f"no request from {user_id}: run `claudematrix requests` to see pending ones"
            )
        return await self._accept_from(user_id)

    async def _accept_from(self, user_id: UserID) -> Accepted:
        """Their mail comes to my inbox from now on: invitations joined, held mail released.
        (It says nothing about how near they are: what I send them is still labelled.)"""
        store = self.service.store
        store.set_accepted(user_id, True)
        joined = []
        for request in store.drop_requests_from(user_id):
            if request.kind != "invite":
                continue
            record = await self.service.join_invitation(
                request.room_id, user_id, direct=request.is_direct
            )
            if record is not None:
                store.save_room(record)
                joined.append(record.room_id)
        released = store.release_held(user_id)
        if released:
            self.service.signal_new_mail(max(released))
        if joined and self.service.try_own_sync():
            await self.service.sync()
        return Accepted(joined, len(released))
