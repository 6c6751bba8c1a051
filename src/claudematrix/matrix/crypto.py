"""One identity's end-to-end encryption device: matrix-nio's Olm machine (vodozemac), driven
by our own plain /sync.

The machine lives in the identity's `crypto/` dir: nio's key store (0600, in a 0700 dir),
pickled with a key of this device's own (`pickle.key`, 0600, made once), never nio's
constant. Only the process that owns the identity's sync opens it (the daemon, or a one-off
command while no daemon holds the identity): one device, one owner.

What a sync brings for the device is handled here: to-device messages (room keys sent to
us, key requests), the server's count of our one-time keys (topped up whenever it is below
the maximum, 0 included), and whose devices changed (queried again before we trust them).
Room events that arrive encrypted are decrypted one by one with `decrypt`; what cannot be
decrypted yet returns None and is retried when keys arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import nio
from nio.crypto import ENCRYPTION_ENABLED

from claudematrix.matrix.sas import Verifications
from claudematrix.paths import ensure_dir, write_private

__all__ = [
    "Crypto",
    "Decrypted",
    "ENCRYPTED_EVENT",
    "ENCRYPTION_STATE",
    "MEGOLM",
    "crypto_available",
]

ENCRYPTED_EVENT = "m.room.encrypted"
ENCRYPTION_STATE = "m.room.encryption"
MEGOLM = "m.megolm.v1.aes-sha2"
# Sends to-device messages of one event type: {user: {device: content}}.
ToDevice = Callable[[str, dict[str, dict[str, Any]]], Awaitable[None]]
# Given a user and their devices now [(device id, ed25519)], the device ids a key may go to.
Admit = Callable[[str, list[tuple[str, str]]], set[str]]
_PICKLE_KEY = "pickle.key"
_DEVICELESS_RECHECK_S = 60.0

log = logging.getLogger(__name__)


def crypto_available() -> bool:
    """matrix-nio's encryption extra (vodozemac) is installed."""
    return bool(ENCRYPTION_ENABLED)


def _pickle_key(directory: Path) -> str:
    path = directory / _PICKLE_KEY
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(32)
    write_private(path, key + "\n")
    return key


def _private(directory: Path) -> None:
    """nio creates its database with the process umask: keep every file in it 0600."""
    for path in directory.iterdir():
        if path.is_file() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


class Crypto:
    """The device of one identity, on the nio client that speaks for it."""

    def __init__(self, client: nio.AsyncClient, directory: Path) -> None:
        self._nio = client
        self.directory = directory
        # The devices each room's current outbound key went to: a change means a new key.
        self._key_holders: dict[str, frozenset[tuple[str, str]]] = {}
        self.upload_refused = ""  # why the server refused this device's keys, if it did
        self.held_back: list[tuple[str, str]] = []  # (user, device) the last key skipped
        self._asked: set[str] = set()  # room keys asked for by this process
        self._asked_devices: dict[str, float] = {}  # device-less users -> when last looked up
        self.verifications = Verifications(client)

    @classmethod
    def open(cls, client: nio.AsyncClient, directory: Path) -> Crypto:
        # Made afresh if it was deleted since this (long-lived) process last saw it.
        directory.mkdir(mode=0o700, exist_ok=True)
        ensure_dir(directory)
        client.config = dataclasses.replace(
            client.config,
            encryption_enabled=True,
            pickle_key=_pickle_key(directory),
            store=nio.store.DefaultStore,
        )
        client.store_path = str(directory)
        client.load_store()
        _private(directory)
        crypto = cls(client, directory)
        crypto._accept_answers_to_key_requests()
        return crypto

    @property
    def _olm(self) -> Any:
        return self._nio.olm

    @property
    def device_key(self) -> str:
        """This device's ed25519 fingerprint, as people compare it."""
        return str(self._olm.account.identity_keys["ed25519"])

    def close(self) -> None:
        store = self._nio.store
        if store is not None and getattr(store, "database", None) is not None:
            store.database.close()

    def discard(self) -> None:
        """Close and delete this device's store: for a device that was replaced (its keys
        on the homeserver were another store's, lost), so nothing can read with it."""
        path = getattr(self._nio.store, "database_path", None)
        self.close()
        if path:
            Path(path).unlink(missing_ok=True)

    # --- which rooms are encrypted (kept in the device's store) ---------------------------

    def is_encrypted(self, room_id: str) -> bool:
        return room_id in self._nio.encrypted_rooms

    def note_encrypted(self, room_id: str) -> None:
        """Encryption, once on in a room, stays on (Matrix has no way to turn it off)."""
        if room_id not in self._nio.encrypted_rooms:
            self._nio.encrypted_rooms.add(room_id)
            self._nio.store.save_encrypted_rooms([room_id])

    # --- sending ------------------------------------------------------------------------

    async def encrypt(
        self,
        room_id: str,
        event_type: str,
        content: dict[str, Any],
        people: Iterable[str],
        to_device: ToDevice,
        admit: Admit,
    ) -> dict[str, Any]:
        """The `m.room.encrypted` content for an event in `room_id`, its room key first sent
        to every current device of `members` (a new key whenever those devices change, so
        one who left cannot read on)."""
        olm = self._olm
        members = set(people)
        # Someone known with no device yet may have one now (its keys came after we looked,
        # and no room told us): asked again, at most once a minute, rather than sent a key
        # nobody can read.
        now = time.monotonic()
        deviceless = {
            m
            for m in members & olm.tracked_users
            if not list(olm.device_store.active_user_devices(m))
            and now - self._asked_devices.get(m, -_DEVICELESS_RECHECK_S) >= _DEVICELESS_RECHECK_S
        }
        self._asked_devices.update(dict.fromkeys(deviceless, now))
        unknown = (members - olm.tracked_users) | deviceless
        if unknown:
            olm.add_changed_users(unknown)
        if olm.should_query_keys:
            await self._nio.keys_query()
        missing = olm.get_missing_sessions(sorted(members))
        if missing:
            await self._nio.keys_claim(missing)
        holders = frozenset(self._admitted(members, admit))
        if olm.should_share_group_session(room_id) or holders != self._key_holders.get(room_id):
            await self._share_key(room_id, members, to_device)
            self._key_holders[room_id] = holders
        return dict(olm.group_encrypt(room_id, {"type": event_type, "content": content}))

    def _admitted(self, members: set[str], admit: Admit) -> set[tuple[str, str]]:
        """The devices a room key may go to; the others are kept out (nio's blacklist, which
        the key sharing skips) and listed in `held_back`."""
        olm = self._olm
        admitted: set[tuple[str, str]] = set()
        self.held_back = []
        for user in sorted(members):
            devices = [
                d
                for d in olm.device_store.active_user_devices(user)
                if not (user == self._nio.user_id and d.id == self._nio.device_id)
            ]
            allowed = admit(user, [(d.id, d.ed25519) for d in devices]) if devices else set()
            for device in devices:
                if device.id in allowed:
                    admitted.add((user, device.id))
                    if olm.is_device_blacklisted(device):
                        olm.unblacklist_device(device)
                else:
                    self.held_back.append((user, device.id))
                    if not olm.is_device_blacklisted(device):
                        olm.blacklist_device(device)
        return admitted

    async def _share_key(self, room_id: str, members: set[str], to_device: ToDevice) -> None:
        olm = self._olm
        if room_id in olm.outbound_group_sessions:
            olm.outbound_group_sessions[room_id].shared = False
        olm.create_outbound_group_session(room_id)
        for _with, batch in olm.share_group_session_parallel(
            room_id, sorted(members), ignore_unverified_devices=True
        ):
            await to_device(ENCRYPTED_EVENT, batch["messages"])
        olm.outbound_group_sessions[room_id].shared = True

    # --- what a sync brings -------------------------------------------------------------

    def receive(self, response: dict[str, Any]) -> bool:
        """Take in a /sync response's device part. True if room keys may have arrived (so
        messages that could not be decrypted are worth trying again)."""
        counts = response.get("device_one_time_keys_count")
        if isinstance(counts, dict):
            # 0 counts too: nio's own sync handling skips it, and keys would run out.
            self._olm.uploaded_key_count = int(counts.get("signed_curve25519") or 0)
        lists = response.get("device_lists")
        if isinstance(lists, dict):
            changed = {u for u in lists.get("changed") or [] if isinstance(u, str)}
            if changed:
                self._olm.add_changed_users(changed)
        keys_came = False
        to_device = response.get("to_device")
        events = to_device.get("events") if isinstance(to_device, dict) else None
        for raw in events if isinstance(events, list) else []:
            if not isinstance(raw, dict) or not isinstance(raw.get("content"), dict):
                continue
            self.verifications.observe(raw)
            event = nio.ToDeviceEvent.parse_event(raw)
            if event is None or isinstance(event, nio.events.misc.BadEvent):
                continue
            try:
                self._olm.handle_to_device_event(event)
            except Exception:  # a hostile or broken message must not stop the sync
                log.debug("a to-device message could not be handled", exc_info=True)
                continue
            keys_came = keys_came or raw.get("type") == ENCRYPTED_EVENT
        return keys_came

    async def maintain(self) -> None:
        """Top up our one-time keys and learn changed devices, as the server asks. Runs
        after a sync is committed; a failure here waits for the next sync to try again."""
        try:
            if self._olm.should_upload_keys and not self.upload_refused:
                answer = await self._nio.keys_upload()
                _private(self.directory)
                if isinstance(answer, nio.KeysUploadError):
                    # Refused for good (this device id has other keys on the server, as
                    # when the store was lost): asking after every sync would repeat it.
                    self.upload_refused = str(answer.status_code or "refused")
            if self._olm.should_query_keys:
                await self._nio.keys_query()
            # Key requests and answers to verification, queued by nio or by us.
            await self._nio.send_to_device_messages()
        except (aiohttp.ClientError, asyncio.TimeoutError, nio.LocalProtocolError):
            log.debug("device upkeep failed; retried after the next sync", exc_info=True)

    async def know_devices(self, sender_keys: dict[str, set[str]]) -> None:
        """Learn the devices of senders we do not follow yet, or whose message names a device
        key we do not know (a device that uploaded its keys after we last looked), so that
        what they encrypted is tied to the device that did (else it shows as from an
        unknown, unverified one). `sender_keys`: sender -> the device keys their events name."""
        olm = self._olm
        unknown = {
            user
            for user, keys in sender_keys.items()
            if user not in olm.tracked_users
            or keys - {d.curve25519 for d in olm.device_store.active_user_devices(user)}
        }
        if unknown:
            olm.add_changed_users(unknown)
        if olm.should_query_keys:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                await self._nio.keys_query()

    # --- keys that did not come: asked for from the sender's devices ----------------------

    def ask_for_key(self, event: dict[str, Any], room_id: str) -> None:
        """Ask the sender's devices for the room key of an event we cannot read, once per
        key; the request goes out with the next upkeep (`maintain`)."""
        parsed = _megolm(event, room_id, self._sender_key_of)
        olm = self._olm
        if parsed is None or parsed.session_id in olm.outgoing_key_requests:
            return
        if parsed.session_id in self._asked:
            return
        self._asked.add(parsed.session_id)
        olm.outgoing_to_device_messages.append(
            parsed.as_key_request(parsed.sender, self._nio.device_id, parsed.session_id)
        )

    def _sender_key_of(self, session_id: str) -> str:
        """The sender key of a room key we hold, found by its (unique) session id."""
        for session in self._olm.inbound_group_store:
            if session.id == session_id:
                return str(session.sender_key)
        return ""

    def _accept_answers_to_key_requests(self) -> None:
        """nio takes a forwarded room key only from our own verified devices. Take one also
        from the device that made the key, answering our request for it: that is the key
        it would have sent in the first place, Olm-encrypted from that same device."""
        olm = self._olm
        own_rule = olm._should_accept_forward

        def accept(sender: str, sender_key: str, event: Any) -> bool:
            if own_rule(sender, sender_key, event):
                return True
            content = (getattr(event, "source", None) or {}).get("content") or {}
            asked = olm.outgoing_key_requests.get(getattr(event, "session_id", None))
            return bool(
                asked is not None
                and event.algorithm == MEGOLM
                and asked.room_id == event.room_id
                and content.get("sender_key") == sender_key
                and not content.get("forwarding_curve25519_key_chain")
            )

        olm._should_accept_forward = accept

    def decrypt(self, event: dict[str, Any], room_id: str) -> Decrypted | None:
        """The plaintext of an `m.room.encrypted` room event, with the device that sent it,
        or None while its room key is missing (or it is not a Megolm event at all)."""
        parsed = _megolm(event, room_id, self._sender_key_of)
        if parsed is None:
            return None
        try:
            plain = self._olm.decrypt_megolm_event(parsed, room_id)
        except nio.EncryptionError:
            return None
        source = getattr(plain, "source", None)
        if not isinstance(source, dict) or isinstance(plain, nio.events.misc.BadEvent):
            return None
        decrypted = dict(source)
        decrypted["event_id"] = event.get("event_id")
        decrypted["sender"] = event.get("sender")
        decrypted["origin_server_ts"] = event.get("origin_server_ts")
        # The device is the one whose key made the room key, never what the event claims.
        device = self._olm.device_store.device_from_sender_key(
            str(event.get("sender")), parsed.sender_key
        )
        return Decrypted(decrypted, device.id if device else "", bool(plain.verified))


@dataclasses.dataclass(frozen=True)
class Decrypted:
    event: dict[str, Any]  # the plaintext event, with the outer event's id, sender and time
    device_id: str  # the sender's device that made the room key ("" if not known yet)
    verified: bool  # that device was verified by emoji (`claudematrix verify`)


def _megolm(
    event: dict[str, Any], room_id: str, sender_key_of: Callable[[str], str]
) -> nio.MegolmEvent | None:
    content = event.get("content")
    if isinstance(content, dict) and not {"sender_key", "device_id"} <= content.keys():
        # Left out by newer clients (deprecated since Matrix 1.3: the session id alone names
        # the key), yet nio requires them: the sender key is that of the key we hold.
        content = dict(content)
        content.setdefault("device_id", "")
        content.setdefault("sender_key", sender_key_of(str(content.get("session_id", ""))))
        event = {**event, "content": content}
    try:
        parsed = nio.MegolmEvent.from_dict(event)
    except Exception:  # whatever a hostile sender put there
        return None
    if not isinstance(parsed, nio.MegolmEvent):
        return None
    parsed.room_id = room_id
    return parsed
