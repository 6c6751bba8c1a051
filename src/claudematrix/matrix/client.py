"""A thin async wrapper over matrix-nio: our types in, our errors out.

nio returns error objects instead of raising and retries dead connections forever by
default; this wrapper turns both into ClaudeMatrixError subclasses with a next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import aiohttp
import nio
from nio.api import MATRIX_API_PATH_V3

from claudematrix.errors import (
    EncryptionUnavailable,
    Forbidden,
    HomeserverError,
    HomeserverUnavailable,
    InvalidParam,
    NotFound,
    RateLimited,
    RegistrationFailed,
    RoomInUse,
    UnknownRecipient,
    homeserver_error,
)
from claudematrix.ids import EventID, RoomAlias, RoomID, UserID, server_name
from claudematrix.matrix.content import PRESENCE_EVENT, PROFILE_EVENT
from claudematrix.matrix.crypto import (
    ENCRYPTED_EVENT,
    ENCRYPTION_STATE,
    MEGOLM,
    Admit,
    Crypto,
    crypto_available,
)

__all__ = ["MatrixClient", "SessionCredentials", "SYNC_FILTER", "SYNC_MARK", "OWN_EVENTS_PER_MARK"]

T = TypeVar("T")
_TOKEN = "access_token"  # the query parameter nio's path builders add

# nio logs every error response it validates (e.g. a 404 for an alias we only probe) to the
# root logger, which would print to the user's terminal; our errors carry what matters.
logging.getLogger("nio").addHandler(logging.NullHandler())
logging.getLogger("nio").propagate = False

# Large timeline windows: /sync otherwise returns 10 events per room and marks the rest
# "limited" (PLATFORM.md); we still backfill whatever a limited timeline leaves out.
_CS = "/_matrix/client/v3"
# A homeserver that rate-limits sends (the embedded one does not): as nio did for us.
_SEND_RATE_LIMIT_RETRIES = 5
_RATE_LIMIT_WAIT_S = 0.5
_DELAY_PARAM = "org.matrix.msc4140.delay"
_DELAYED_EVENTS = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
# My own events never come back in my sync (the filter's not_senders), so its position only
# moves when something else arrives; meanwhile Synapse works out every wake of my long-poll
# again from that old position, so each event I send costs it more than the last (the bench
# measured 40 ms per message become 65 after 150 sends). After this many own events, a
# mark written to my account data, which the filter lets through, brings the long-poll back
# with a current position. Fewer marks cost a request each; more let the work grow.
OWN_EVENTS_PER_MARK = 16
SYNC_MARK = "com.claudematrix.sync_mark"
SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"types": [SYNC_MARK]},
    "room": {
        "timeline": {
            "limit": 100,
            "types": [
                "m.room.message",
                ENCRYPTED_EVENT,
                ENCRYPTION_STATE,
                "m.room.member",
                PROFILE_EVENT,
                PRESENCE_EVENT,
            ],
        },
        # Room state: only what sync.py reads (who is in, their profile and presence).
        "state": {"types": ["m.room.member", ENCRYPTION_STATE, PROFILE_EVENT, PRESENCE_EVENT]},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}


@dataclass(frozen=True)
class SessionCredentials:
    homeserver: str
    user_id: UserID
    access_token: str
    device_id: str

    def __repr__(self) -> str:  # never show the token
        return f"SessionCredentials(user_id={self.user_id!r}, device_id={self.device_id!r})"


def _config() -> nio.AsyncClientConfig:
    return nio.AsyncClientConfig(
        max_timeouts=0,
        max_limit_exceeded=5,
        request_timeout=30,
        store_sync_tokens=False,
        encryption_enabled=False,
    )


def _unavailable(url: str) -> HomeserverUnavailable:
    return HomeserverUnavailable(
        f"cannot reach the homeserver at {url}: start it with `claudematrix up` "
        "(or check CLAUDEMATRIX_HOMESERVER)"
    )


def _transient(status: int, body: object) -> bool:
    """A failure that the same request can get past later: the homeserver's own 500/503/504,
    or any 5xx that is not a Matrix answer (a proxy before a homeserver that is down). A
    homeserver's own 502 is about another server (federation), and stays an error."""
    if status in (500, 503, 504):
        return True
    return status >= 500 and not (isinstance(body, dict) and "errcode" in body)


def _failing(url: str, what: str, status: int) -> HomeserverUnavailable:
    """A 5xx: the homeserver (or its database, or the proxy before it) failed, not refused;
    the same request can succeed later, so it is "away", and what was queued stays queued."""
    return HomeserverUnavailable(
        f"{what} failed: the homeserver at {url} answered HTTP {status} (restarting, or its "
        "database down?): try again shortly"
    )


async def _json_or_none(response: aiohttp.ClientResponse) -> Any:
    """The body as JSON; None if it is not JSON (an HTML error page of a proxy, say)."""
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def _error(what: str, detail: object, errcode: str | None) -> HomeserverError:
    """A homeserver's refusal as our error of its errcode's class (errors.ERRCODES)."""
    if errcode == "M_UNKNOWN_TOKEN":
        return homeserver_error(
            f"{what}: the homeserver no longer accepts this session's login; run the command "
            "again to log in afresh",
            errcode,
        )
    return homeserver_error(f"{what} failed: {detail} ({errcode or 'no errcode'})", errcode)


def _everyone(_user: str, devices: list[tuple[str, str]]) -> set[str]:
    return {device_id for device_id, _key in devices}


def _no_device(user: UserID) -> EncryptionUnavailable:
    if not crypto_available():
        return EncryptionUnavailable(
            "this room is end-to-end encrypted and this install has no encryption support: "
            "reinstall ClaudeMatrix (its matrix-nio[e2e] dependency); the message was not sent"
        )
    return EncryptionUnavailable(
        f"this room is end-to-end encrypted and {user}'s encryption device is held by the "
        "process that syncs it: send from that session (or through the daemon); the message "
        "was not sent"
    )


def _no_such_user(user: UserID) -> UnknownRecipient:
    return UnknownRecipient(
        f"no Matrix user {user} exists: check the ID, or run `claudematrix contacts` to see "
        "who you can reach"
    )


class MatrixClient:
    def __init__(self, creds: SessionCredentials) -> None:
        self.creds = creds
        self.user_id = creds.user_id
        self._nio = nio.AsyncClient(
            creds.homeserver, creds.user_id, device_id=creds.device_id, config=_config()
        )
        self._nio.restore_login(creds.user_id, creds.device_id, creds.access_token)
        self._auth = {"Authorization": f"Bearer {creds.access_token}"}
        # My own events are never news to me (a send records itself), and without this every
        # message I send would wake my own long-poll.
        timeline = {**SYNC_FILTER["room"]["timeline"], "not_senders": [creds.user_id]}
        own_filter = {**SYNC_FILTER, "room": {**SYNC_FILTER["room"], "timeline": timeline}}
        # Encoded once: quoting the filter was a tenth of a sync's own work.
        self._sync_filter_query = urlencode(
            {"filter": json.dumps(own_filter, separators=(",", ":"))}
        )
        self.crypto: Crypto | None = None
        self._plain_rooms: set[RoomID] = set()  # looked up: no encryption (yet)
        self._sealed_rooms: set[RoomID] = set()  # encrypted, seen without a device to match
        self._key_members: dict[RoomID, set[UserID]] = {}
        self._long_polls = False  # this client keeps a long-poll: its position matters
        self._own_events_unsynced = 0  # my events its position may not have passed yet
        self._marks_made = 0
        self._mark: asyncio.Task[None] | None = None

    def open_device(self, directory: Path) -> Crypto | None:
        """Load this identity's encryption device (made on first use): only by the one
        process that owns the identity's sync. None where the encryption extra is absent."""
        if self.crypto is None and crypto_available():
            self.crypto = Crypto.open(self._nio, directory)
        return self.crypto

    async def log_out(self) -> None:
        """End this login: the homeserver deletes its device and that device's keys, so
        nobody encrypts for it any more. Best effort: a device that stays is only unused."""
        with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, TimeoutError):
            await self._nio.logout()

    async def close(self) -> None:
        if self._mark is not None:
            self._mark.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mark
        if self.crypto is not None:
            self.crypto.close()
        await self._nio.close()

    async def _call(self, what: str, request: Awaitable[T]) -> T:
        try:
            response = await request
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, TimeoutError):
            raise _unavailable(self.creds.homeserver) from None
        if isinstance(response, nio.ErrorResponse):
            transport = getattr(response, "transport_response", None)
            status = getattr(transport, "status", 0)
            body = {"errcode": response.status_code} if response.status_code else None
            if isinstance(status, int) and _transient(status, body):
                raise _failing(self.creds.homeserver, what, status)
            raise _error(what, response.message, response.status_code)
        return response

    # --- account ------------------------------------------------------------------------

    @staticmethod
    async def _new_session(
        homeserver: str,
        user: str,
        request: Callable[[nio.AsyncClient], Awaitable[Any]],
        failure: Callable[[nio.ErrorResponse], HomeserverError],
    ) -> SessionCredentials:
        """Log in or register with a throwaway client; its token becomes the session's."""
        client = nio.AsyncClient(homeserver, user, config=_config())
        try:
            try:
                resp = await request(client)
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                raise _unavailable(homeserver) from None
            if isinstance(resp, nio.ErrorResponse):
                raise failure(resp)
            return SessionCredentials(
                homeserver, UserID(resp.user_id), resp.access_token, resp.device_id
            )
        finally:
            await client.close()

    @staticmethod
    async def login(homeserver: str, user: str, password: str, device: str) -> SessionCredentials:
        return await MatrixClient._new_session(
            homeserver,
            user,
            lambda c: c.login(password=password, device_name=device),
            lambda r: homeserver_error(
                f"login as {user} failed: {r.message}; check the password", r.status_code
            ),
        )

    @staticmethod
    async def register_with_token(
        homeserver: str, localpart: str, password: str, token: str, device: str
    ) -> SessionCredentials:
        return await MatrixClient._new_session(
            homeserver,
            localpart,
            lambda c: c.register_with_token(localpart, password, token, device),
            lambda r: homeserver_error(
                f"registering {localpart} failed: {r.message}", r.status_code, RegistrationFailed
            ),
        )

    async def whoami(self) -> UserID:
        resp = await self._call("whoami", self._nio.whoami())
        return UserID(resp.user_id)

    async def set_displayname(self, name: str) -> None:
        await self._call("setting the display name", self._nio.set_displayname(name))

    async def displayname(self, user: UserID) -> str | None:
        """Their display name, or None if there is none I may see (profiles are private to
        people who share a room)."""
        try:
            resp = await self._call("looking up a profile", self._nio.get_displayname(user))
        except (NotFound, Forbidden):
            return None
        return str(resp.displayname or "")

    async def require_user(self, user: UserID) -> str | None:
        """The user's display name; None if the homeserver will not show me their profile
        (we share no room); UnknownRecipient if it says there is no such user."""
        try:
            resp = await self._call("looking up a profile", self._nio.get_profile(user))
        except Forbidden:
            return None
        except (NotFound, InvalidParam):
            raise _no_such_user(user) from None
        except HomeserverError:
            if server_name(user) != server_name(self.user_id):
                raise UnknownRecipient(
                    f"{user} is on another homeserver, which this one cannot reach: use an "
                    "account on this homeserver, or a shared homeserver"
                ) from None
            raise
        return str(resp.displayname or "")

    async def change_password(self, old: str, new: str) -> None:
        # nio has no call for this one endpoint; it is plain client-server API.
        url = f"{self.creds.homeserver}/_matrix/client/v3/account/password"
        body = {
            "new_password": new,
            "logout_devices": False,
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self.user_id},
                "password": old,
            },
        }
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(url, json=body, headers=self._auth) as resp,
            ):
                if resp.status != 200:
                    data = await resp.json(content_type=None)
                    raise homeserver_error(
                        f"changing the password failed: {data.get('error', resp.status)}",
                        data.get("errcode"),
                    )
        except aiohttp.ClientConnectionError:
            raise _unavailable(self.creds.homeserver) from None

    # --- rooms --------------------------------------------------------------------------

    async def create_room(
        self,
        *,
        public: bool,
        power_levels: dict[str, Any],
        history_visibility: str,
        alias_localpart: str | None = None,
        name: str | None = None,
        topic: str | None = None,
        invite: tuple[UserID, ...] = (),
        direct: bool = False,
        encrypted: bool = False,
        only_servers: tuple[str, ...] = (),
    ) -> RoomID:
        """Create a room; a taken alias is routed around (the room is made without it).
        `only_servers`: the homeservers (by host) allowed to take part at all (a server ACL,
        which every homeserver in the room enforces, joins included)."""
        what = f"creating room #{alias_localpart}" if alias_localpart else "creating a room"
        request = {
            "visibility": nio.RoomVisibility.private,  # never listed in the room directory
            "name": name,
            "topic": topic,
            "preset": nio.RoomPreset.public_chat if public else nio.RoomPreset.private_chat,
            "is_direct": direct,
            "invite": list(invite),
            "power_level_override": power_levels,
            "initial_state": [
                {
                    "type": "m.room.history_visibility",
                    "content": {"history_visibility": history_visibility},
                }
            ],
        }
        if encrypted:
            request["initial_state"].append(
                {"type": ENCRYPTION_STATE, "state_key": "", "content": {"algorithm": MEGOLM}}
            )
        if only_servers:
            acl = {"allow": list(only_servers), "deny": [], "allow_ip_literals": True}
            request["initial_state"].append(
                {"type": "m.room.server_acl", "state_key": "", "content": acl}
            )
        try:
            resp = await self._call(what, self._nio.room_create(alias=alias_localpart, **request))
        except RoomInUse:
            if alias_localpart is None:
                raise
            resp = await self._call(what, self._nio.room_create(**request))
        room = RoomID(resp.room_id)
        if encrypted:
            self.note_encrypted(room)
        return room

    async def resolve_alias(self, alias: RoomAlias) -> RoomID | None:
        try:
            resp = await self._call("resolving " + alias, self._nio.room_resolve_alias(alias))
        except NotFound:
            return None
        return RoomID(resp.room_id)

    async def invite(self, room: RoomID, user: UserID) -> None:
        try:
            await self._call(f"inviting {user}", self._nio.room_invite(room, user))
        except Forbidden:
            # Inviting someone already there is refused too: that one is no failure.
            member = await self.get_state(room, "m.room.member", user) or {}
            if member.get("membership") not in ("join", "invite"):
                raise

    async def put_state(
        self, room: RoomID, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> EventID:
        resp = await self._call(
            f"publishing {event_type}",
            self._nio.room_put_state(room, event_type, content, state_key=state_key),
        )
        self._sent_own_event()
        return EventID(resp.event_id)

    async def put_state_later(
        self,
        room: RoomID,
        event_type: str,
        content: dict[str, Any],
        state_key: str,
        delay_ms: int,
    ) -> str:
        """Have the homeserver itself publish this state in `delay_ms`, unless restarted or
        cancelled first (MSC4140 delayed events); returns its delay id."""
        path = (
            f"{_CS}/rooms/{quote(room, safe='')}/state/{quote(event_type, safe='')}/"
            f"{quote(state_key, safe='')}?{_DELAY_PARAM}={int(delay_ms)}"
        )
        data = await self._json("PUT", path, f"scheduling {event_type}", body=content)
        delay_id = data.get("delay_id") if isinstance(data, dict) else None
        if not isinstance(delay_id, str):
            raise HomeserverError(f"scheduling {event_type} failed: no delay id in the answer")
        return delay_id

    async def delayed_event(self, delay_id: str, action: str) -> None:
        """ "restart" the timer of a delayed event, "cancel" it, or "send" it now."""
        path = f"{_DELAYED_EVENTS}/{quote(delay_id, safe='')}"
        await self._json("POST", path, f"updating a delayed event ({action})", {"action": action})

    async def set_room_displayname(self, room: RoomID, name: str) -> EventID:
        """A display name seen only by the members of one room."""
        return await self.put_state(
            room, "m.room.member", {"membership": "join", "displayname": name}, self.user_id
        )

    async def redact(self, room: RoomID, event: EventID, reason: str = "withdrawn") -> None:
        await self._call("withdrawing an event", self._nio.room_redact(room, event, reason))
        self._sent_own_event()

    async def kick(self, room: RoomID, user: UserID) -> None:
        await self._call(f"removing {user}", self._nio.room_kick(room, user))

    async def reject(self, room: RoomID) -> None:
        await self._call("declining an invitation", self._nio.room_leave(room))

    async def join(self, room: str) -> RoomID:
        resp = await self._call(f"joining {room}", self._nio.join(room))
        return RoomID(resp.room_id)

    async def leave(self, room: RoomID) -> None:
        await self._call(f"leaving {room}", self._nio.room_leave(room))

    async def joined_members(self, room: RoomID) -> dict[UserID, str]:
        resp = await self._call("listing room members", self._nio.joined_members(room))
        return {UserID(m.user_id): str(m.display_name or "") for m in resp.members}

    async def members(self, room: RoomID) -> dict[UserID, str]:
        """Everyone joined or invited, as the homeserver says now: who can read what I post
        (an invited user reads from the moment of the invitation)."""
        path = nio.Api._build_path(
            ["rooms", room, "members"],
            {"access_token": self.creds.access_token, "not_membership": "leave"},
        )
        data = await self._json("GET", path, "listing room members")
        found: dict[UserID, str] = {}
        for event in data.get("chunk") or []:
            if not isinstance(event, dict) or not isinstance(event.get("state_key"), str):
                continue
            membership = (event.get("content") or {}).get("membership")
            if membership in ("join", "invite"):
                found[UserID(event["state_key"])] = str(membership)
        return found

    async def get_state(
        self, room: RoomID, event_type: str, state_key: str = ""
    ) -> dict[str, Any] | None:
        """A state event's content, or None if there is none (or I may not see it)."""
        method, path = nio.Api.room_get_state_event(
            self.creds.access_token, room, event_type, state_key
        )
        try:
            content = await self._json(method, path, f"reading {event_type}")
        except (NotFound, Forbidden):
            return None
        return content if isinstance(content, dict) else None

    async def delete_alias(self, alias: RoomAlias) -> None:
        """Remove an alias (mine); one already gone is no error."""
        path = nio.Api._build_path(
            ["directory", "room", alias], {"access_token": self.creds.access_token}
        )
        with contextlib.suppress(NotFound):
            await self._json("DELETE", path, f"removing {alias}")

    async def state_events(self, room: RoomID, event_types: set[str]) -> list[dict[str, Any]]:
        """The room's current state events of these types (whole events, with their ids)."""
        path = nio.Api._build_path(
            ["rooms", room, "state"], {"access_token": self.creds.access_token}
        )
        events = await self._json("GET", path, "reading the room's state")
        return (
            [e for e in events if isinstance(e, dict) and e.get("type") in event_types]
            if isinstance(events, list)
            else []
        )

    async def creators(self, room: RoomID) -> set[UserID]:
        """Who created the room (and, in room version 12, its additional creators: they hold
        unlimited power there); empty if I cannot see the room."""
        path = nio.Api._build_path(
            ["rooms", room, "state", "m.room.create", ""],
            {"access_token": self.creds.access_token, "format": "event"},
        )
        try:
            event = await self._json("GET", path, "reading how the room was created")
        except (NotFound, Forbidden):
            return set()
        if not isinstance(event, dict) or not isinstance(event.get("sender"), str):
            return set()
        extra = (event.get("content") or {}).get("additional_creators") or []
        return {UserID(event["sender"])} | {UserID(str(u)) for u in extra}

    async def _json(
        self, method: str, path: str, what: str, body: dict[str, Any] | None = None
    ) -> Any:
        """A plain client-server request, for endpoints nio has no call for."""
        try:
            response = await self._plain(method, path, body=body)
            data = await _json_or_none(response)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, TimeoutError):
            raise _unavailable(self.creds.homeserver) from None
        if _transient(response.status, data):
            raise _failing(self.creds.homeserver, what, response.status)
        if data is None:
            raise HomeserverError(f"{what} failed: the homeserver sent no JSON")
        if response.status != 200:
            details = data if isinstance(data, dict) else {}
            raise _error(what, details.get("error", response.status), details.get("errcode"))
        return data

    async def _plain(
        self,
        method: str,
        path: str,
        *,
        timeout: float | None = None,
        body: dict[str, Any] | None = None,
    ) -> aiohttp.ClientResponse:
        """nio's raw send, with the token in the Authorization header as nio's own calls
        have it: nio's path builders put it in the query, which proxies and logs keep."""
        parts = urlsplit(path)
        if _TOKEN in parts.query:
            query = [q for q in parse_qsl(parts.query, keep_blank_values=True) if q[0] != _TOKEN]
            path = urlunsplit(parts._replace(query=urlencode(query)))
        headers = self._auth if body is None else {**self._auth, "Content-Type": "application/json"}
        response: aiohttp.ClientResponse = await self._nio.send(
            method,
            path,
            data=None if body is None else json.dumps(body),
            headers=headers,
            timeout=timeout,
        )
        return response

    async def send(
        self,
        room: RoomID,
        content: dict[str, Any],
        txn_id: str,
        admit: Admit | None = None,
    ) -> EventID:
        """Send with a caller-chosen transaction id: a retry with the same id is a no-op.
        Into an encrypted room the message goes encrypted, or not at all."""
        event_type = "m.room.message"
        if await self.is_encrypted(room):
            if self.crypto is None:
                raise _no_device(self.user_id)
            members = await self._members_for_keys(room)
            try:
                content = await self.crypto.encrypt(
                    room, event_type, content, members, self._to_device, admit or _everyone
                )
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError, TimeoutError):
                # nio's own key requests: the homeserver went away in the middle of them
                raise _unavailable(self.creds.homeserver) from None
            event_type = ENCRYPTED_EVENT
        path = f"{_CS}/rooms/{quote(room, safe='')}/send/{event_type}/{quote(txn_id, safe='')}"
        for attempt in range(_SEND_RATE_LIMIT_RETRIES + 1):
            try:
                data = await self._json("PUT", path, "sending the message", body=content)
                break
            except RateLimited:  # the same transaction id: a retry cannot send it twice
                if attempt == _SEND_RATE_LIMIT_RETRIES:
                    raise
                await asyncio.sleep(_RATE_LIMIT_WAIT_S * (attempt + 1))
        event_id = data.get("event_id") if isinstance(data, dict) else None
        if not isinstance(event_id, str):
            raise HomeserverError("sending the message failed: no event id in the answer")
        self._sent_own_event()
        return EventID(event_id)

    def known_encrypted(self, room: RoomID) -> bool:
        """Whether the sync (or an earlier look) has seen encryption on in the room."""
        return room in self._sealed_rooms or bool(self.crypto and self.crypto.is_encrypted(room))

    async def is_encrypted(self, room: RoomID) -> bool:
        """Whether the room has encryption on: from the sync, else asked once per process."""
        if self.known_encrypted(room):
            return True
        if room in self._plain_rooms:
            return False
        if await self.get_state(room, ENCRYPTION_STATE):
            self.note_encrypted(room)
            return True
        self._plain_rooms.add(room)
        return False

    async def _members_for_keys(self, room: RoomID) -> set[UserID]:
        """Who a room key goes to (joined and invited): asked once, then kept until the
        sync sees the room's membership change."""
        known = self._key_members.get(room)
        if known is None:
            known = self._key_members[room] = set(await self.members(room))
        return known

    def membership_changed(self, room: RoomID) -> None:
        self._key_members.pop(room, None)

    async def has_device_keys(self, user: UserID) -> bool:
        """Whether `user` has a device that published encryption keys (someone with none,
        e.g. a plain bot, could read nothing in an encrypted room)."""
        data = await self._json(
            "POST", f"{_CS}/keys/query", "asking for devices", {"device_keys": {user: []}}
        )
        devices = (data.get("device_keys") or {}).get(user) if isinstance(data, dict) else None
        return bool(devices)

    def note_encrypted(self, room: RoomID) -> None:
        self._plain_rooms.discard(room)
        if self.crypto is not None:
            self.crypto.note_encrypted(room)
        else:
            self._sealed_rooms.add(room)

    async def _to_device(self, event_type: str, messages: dict[str, dict[str, Any]]) -> None:
        path = f"{_CS}/sendToDevice/{quote(event_type, safe='')}/{uuid.uuid4().hex}"
        await self._json("PUT", path, "sending a room key", {"messages": messages})

    async def mark_read(self, room: RoomID, event: EventID) -> None:
        await self._call("sending a read receipt", self._nio.room_read_markers(room, event, event))

    # --- sync ---------------------------------------------------------------------------

    def _sent_own_event(self) -> None:
        self._own_events_unsynced += 1
        due = self._own_events_unsynced >= OWN_EVENTS_PER_MARK
        if due and self._long_polls and (self._mark is None or self._mark.done()):
            self._mark = asyncio.get_running_loop().create_task(self._mark_position())

    async def _mark_position(self) -> None:
        """Wake my own long-poll so that it comes back with a current position (see
        OWN_EVENTS_PER_MARK). Best effort: if this fails, the next own event tries again."""
        self._marks_made += 1
        path = f"{_CS}/user/{quote(self.user_id, safe='')}/account_data/{SYNC_MARK}"
        with contextlib.suppress(HomeserverError, HomeserverUnavailable):
            await self._json("PUT", path, "marking the sync position", {"n": self._marks_made})

    async def sync(
        self, since: str | None, timeout_ms: int, *, full_state: bool = False
    ) -> dict[str, Any]:
        """One /sync, as the homeserver's JSON.

        Done as a plain request on nio's HTTP session: nio's own sync() validates every
        response against JSON schemas (~1.4 ms each) and keeps room state we never use.
        """
        self._long_polls = self._long_polls or timeout_ms > 0
        query = f"timeout={int(timeout_ms)}&{self._sync_filter_query}"
        if since:
            query += "&" + urlencode({"since": since})
        if full_state:
            query += "&full_state=true"
        path = f"{MATRIX_API_PATH_V3}/sync?{query}"  # no token: it is a header
        try:
            response = await self._plain("GET", path, timeout=timeout_ms / 1000 + 15)
            data = await _json_or_none(response)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, TimeoutError):
            raise _unavailable(self.creds.homeserver) from None
        if _transient(response.status, data):
            raise _failing(self.creds.homeserver, "syncing", response.status)
        if data is None:
            raise HomeserverError("syncing failed: the homeserver sent no JSON")
        if response.status != 200 or not isinstance(data, dict):
            details = data if isinstance(data, dict) else {}
            raise _error("syncing", details.get("error", response.status), details.get("errcode"))
        # The answer's position is past all I sent but what went out in its last moments.
        self._own_events_unsynced = 0
        return data

    async def messages_before(
        self, room: RoomID, token: str | None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of history going back from `token`: (events newest first, next token)."""
        resp = await self._call(
            "fetching history",
            self._nio.room_messages(
                room,
                start=token,
                limit=limit,
                message_filter={"types": ["m.room.message", ENCRYPTED_EVENT]},
            ),
        )
        events = [e.source for e in resp.chunk if isinstance(getattr(e, "source", None), dict)]
        return events, (resp.end if resp.chunk else None)
