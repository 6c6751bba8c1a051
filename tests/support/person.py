"""A person's Matrix client with end-to-end encryption on, as Element would have it: matrix-nio
used directly (its own sync, rooms and key handling), none of ClaudeMatrix's code paths.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import nio


class Person:
    def __init__(self, url: str, user_id: str, token: str, device_id: str, store: Path) -> None:
        store.mkdir(parents=True, exist_ok=True)
        config = nio.AsyncClientConfig(encryption_enabled=True, store_sync_tokens=False)
        self.client = nio.AsyncClient(
            url, user_id, device_id=device_id, store_path=str(store), config=config
        )
        self.client.restore_login(user_id, device_id, token)
        self.user_id = user_id
        self._first_keys: dict[str, str] = {}
        self.password = ""
        self.device_id = device_id
        self.received: list[tuple[str, str, str, bool]] = []  # room, sender, text, decrypted
        self.html: dict[str, str] = {}  # text -> its formatted_body, where it had one
        self.client.add_event_callback(self._on_text, nio.RoomMessageText)
        self.client.add_event_callback(self._on_undecryptable, nio.MegolmEvent)
        self.unreadable: list[str] = []  # event ids this device got but could not decrypt
        self.key_requests: list[nio.RoomKeyRequest] = []  # from other people's devices
        self.verification_requests: list[dict[str, Any]] = []  # as they came, unanswered

    @classmethod
    async def another_device(cls, url: str, user_id: str, password: str, store: Path) -> Person:
        """The same person signing in on another device (a new phone, a reinstall)."""
        probe = nio.AsyncClient(url, user_id)
        try:
            resp = await probe.login(password=password, device_name="second device")
        finally:
            await probe.close()
        assert isinstance(resp, nio.LoginResponse), resp
        return cls(url, user_id, resp.access_token, resp.device_id, store)

    async def _on_text(self, room: nio.MatrixRoom, event: nio.RoomMessageText) -> None:
        self.received.append((room.room_id, event.sender, event.body, bool(event.decrypted)))
        if event.formatted_body:
            self.html[event.body] = event.formatted_body

    async def _on_undecryptable(self, room: nio.MatrixRoom, event: nio.MegolmEvent) -> None:
        self.unreadable.append(event.event_id)

    async def forward_requested_keys(self) -> None:
        """Answer other people's key requests with the room key, as a client answers a
        device it means to share with (nio itself answers only its own user's devices)."""
        olm = self.client.olm
        for request in self.key_requests:
            group = olm.inbound_group_store.get(
                request.room_id, request.sender_key, request.session_id
            )
            assert group is not None, "asked for a key this device never made"
            olm.users_for_key_query.add(request.sender)
            await self.client.keys_query()
            device = olm.device_store[request.sender][request.requesting_device_id]
            if olm.session_store.get(device.curve25519) is None:
                await self.client.keys_claim({request.sender: [device.id]})
            session = olm.session_store.get(device.curve25519)
            forward = olm._encrypt_forwarding_key(request.room_id, group, session, device)
            resp = await self.client.to_device(forward)
            assert isinstance(resp, nio.ToDeviceResponse), resp

    async def learn_devices(self, user: str) -> None:
        """Fetch `user`'s device keys, as a client does for someone it talks with."""
        self.client.olm.users_for_key_query.add(user)
        await self.client.keys_query()

    async def answer_verification(
        self, *, match: bool, answer_requests: bool = True
    ) -> tuple[list[tuple[str, str]], Any]:
        """As a person at their client: accept the verification another device asks for
        (ready to a request, as current clients answer; with `answer_requests` off, as an
        older client that waits for a start), look at the emoji and say they match (or
        not). (the emoji shown, nio's verification)"""
        client = self.client
        deadline = time.monotonic() + 60
        shown: list[tuple[str, str]] = []
        seen: dict[str, Any] = {}  # nio forgets a verification once it is over
        while time.monotonic() < deadline:
            await self.sync(timeout_ms=500)
            while answer_requests and self.verification_requests:
                request = self.verification_requests.pop(0)
                ready = {
                    "from_device": self.device_id,
                    "methods": ["m.sas.v1"],
                    "transaction_id": request["content"]["transaction_id"],
                }
                to = (request["sender"], request["content"]["from_device"])
                sent = await client.to_device(
                    nio.ToDeviceMessage("m.key.verification.ready", *to, ready)
                )
                assert isinstance(sent, nio.ToDeviceResponse), sent
            await client.send_to_device_messages()
            seen.update(client.key_verifications)
            for transaction, sas in list(seen.items()):
                if sas.we_started_it:
                    continue
                if sas.canceled or sas.verified:
                    return shown, sas
                if sas.state.name == "started":
                    await client.accept_key_verification(transaction)
                elif sas.state.name in ("key_received", "mac_received") and not shown:
                    shown = sas.get_emoji()
                    if match:
                        await client.confirm_short_auth_string(transaction)
                    else:
                        await client.cancel_key_verification(transaction, reject=True)
        raise AssertionError("no verification finished in time")

    async def wait_text(self, words: str) -> tuple[str, str, str, bool]:
        def found() -> tuple[str, str, str, bool] | None:
            return next((r for r in self.received if words in r[2]), None)

        await self.sync_until(lambda: found() is not None, f"a message with {words!r}")
        got = found()
        assert got is not None
        return got

    def bodies(self, room: str) -> list[str]:
        """The text of what others said in `room`, edits included ("* ..."), in order."""
        return [
            text for r, sender, text, _d in self.received if r == room and sender != self.user_id
        ]

    async def close(self) -> None:
        await self.client.close()

    async def sync(self, timeout_ms: int = 0) -> None:
        resp = await self.client.sync(timeout=timeout_ms, full_state=self.client.next_batch is None)
        assert isinstance(resp, nio.SyncResponse), resp
        self.verification_requests += [
            e.source
            for e in resp.to_device_events
            if isinstance(e, nio.UnknownToDeviceEvent) and e.type == "m.key.verification.request"
        ]
        self.key_requests += [  # nio keeps these from its callbacks
            e
            for e in resp.to_device_events
            if isinstance(e, nio.RoomKeyRequest) and e.sender != self.user_id
        ]
        if self.client.should_upload_keys:
            await self.client.keys_upload()
        if self.client.should_query_keys:
            await self.client.keys_query()

    async def sync_until(self, done: Any, what: str, deadline_s: float = 60.0) -> None:
        deadline = time.monotonic() + deadline_s
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await self.sync(timeout_ms=1000)

    async def open_encrypted_dm(self, user: str) -> str:
        """A new direct chat with encryption on from the start, as clients make them."""
        resp = await self.client.room_create(
            is_direct=True,
            invite=[user],
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        assert isinstance(resp, nio.RoomCreateResponse), resp
        room = resp.room_id
        await self.sync_until(lambda: room in self.client.rooms, "the new room")
        return str(room)

    async def wait_joined(self, room: str, user: str) -> None:
        await self.sync_until(
            lambda: (
                user in self.client.rooms[room].users
                and self.client.rooms[room].users[user] is not None
                and user not in self.client.rooms[room].invited_users
            ),
            f"{user} to join",
        )

    async def send_text(self, room: str, text: str) -> str:
        resp = await self.client.room_send(
            room,
            "m.room.message",
            {"msgtype": "m.text", "body": text},
            ignore_unverified_devices=True,
        )
        assert isinstance(resp, nio.RoomSendResponse), resp
        return str(resp.event_id)

    async def send_text_without_deprecated_fields(self, room: str, text: str) -> str:
        """Encrypted as newer clients send it: no `sender_key` or `device_id` beside the
        ciphertext (deprecated since Matrix 1.3)."""
        await self.share_key_if_needed(room)
        payload = self.client.olm.group_encrypt(
            room, {"type": "m.room.message", "content": {"msgtype": "m.text", "body": text}}
        )
        payload = {k: v for k, v in payload.items() if k not in ("sender_key", "device_id")}
        return await self._send_encrypted(room, payload)

    async def _send_encrypted(self, room: str, payload: dict[str, Any]) -> str:
        """An `m.room.encrypted` event as it is: room_send would share the key first."""
        method, path, data = nio.Api.room_send(
            self.client.access_token, room, "m.room.encrypted", payload, uuid.uuid4()
        )
        resp = await self.client._send(nio.RoomSendResponse, method, path, data, (room,))
        assert isinstance(resp, nio.RoomSendResponse), resp
        return str(resp.event_id)

    async def _learn_room_devices(self, room: str) -> None:
        await self.client.joined_members(room)
        if self.client.should_query_keys:
            await self.client.keys_query()

    async def share_key_if_needed(self, room: str) -> None:
        await self._learn_room_devices(room)
        if self.client.olm.should_share_group_session(room):
            await self.client.share_group_session(room, ignore_unverified_devices=True)

    async def send_text_withholding_key(self, room: str, text: str) -> str:
        """Encrypted with a room key nobody has been given yet (a key that arrives late)."""
        olm = self.client.olm
        olm.create_outbound_group_session(room)
        session = olm.outbound_group_sessions[room]
        self._first_keys[room] = session.session_key  # as a client keeps it to share
        session.shared = True  # encrypt before sharing: what a slow or flaky client does
        payload = olm.group_encrypt(
            room, {"type": "m.room.message", "content": {"msgtype": "m.text", "body": text}}
        )
        session.shared = False
        return await self._send_encrypted(room, payload)

    async def share_key(self, room: str) -> None:
        """Send the room key to the room's devices now (learning them first, as room_send
        does before its first message)."""
        await self._learn_room_devices(room)
        olm = self.client.olm
        session = olm.outbound_group_sessions[room]
        if room in self._first_keys:  # the key from its first message on, not from now
            olm.outbound_group_sessions[room] = _KeyFromStart(session, self._first_keys.pop(room))
        try:
            await self.client.share_group_session(room, ignore_unverified_devices=True)
        finally:
            olm.outbound_group_sessions[room] = session


class _KeyFromStart:
    """An outbound room key that shares the key as it was before its first message."""

    def __init__(self, session: Any, first_key: str) -> None:
        self._session = session
        self.session_key = first_key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_session", "session_key"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._session, name, value)
