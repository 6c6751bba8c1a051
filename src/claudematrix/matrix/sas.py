"""Emoji verification (SAS) of another user's device over to-device messages, as current
clients run it: we send a request, their device answers ready, we start; accept, key and
MAC follow (nio's Sas does those), and both end with done. A device that starts itself
after ready is accepted; a client that knows only the older flow (start with no request)
gets our start when it has not answered the request in a while.

Nothing here verifies anything by itself: `confirm` is called only when the person said the
emoji match.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import nio
from nio.crypto.sas import Sas, SasState

__all__ = ["Verifications"]

REQUEST = "m.key.verification.request"
READY = "m.key.verification.ready"
CANCEL = "m.key.verification.cancel"
DONE = "m.key.verification.done"
SAS_V1 = "m.sas.v1"
# A client that never answers a request may know only the start-first flow.
OLDER_FLOW_AFTER_S = 10.0


class Verifications:
    def __init__(self, client: nio.AsyncClient) -> None:
        self._nio = client
        self._asked: dict[str, tuple[str, str, float]] = {}  # transaction -> user, device, when
        self.refused: dict[str, str] = {}  # transaction -> why, canceled before it started

    @property
    def _olm(self) -> Any:
        return self._nio.olm

    async def devices_of(self, user: str) -> list[tuple[str, str]]:
        """(device id, ed25519) of every current device of `user`, asked of the server now."""
        self._olm.add_changed_users({user})
        await self._nio.keys_query()
        return [(d.id, d.ed25519) for d in self._olm.device_store.active_user_devices(user)]

    async def request(self, user: str, device_id: str) -> str:
        """Ask one device to verify; the transaction id. Its answers come with our sync."""
        transaction = str(uuid.uuid4())
        self._asked[transaction] = (user, device_id, time.monotonic())
        content = {
            "from_device": self._nio.device_id,
            "methods": [SAS_V1],
            "timestamp": int(time.time() * 1000),
            "transaction_id": transaction,
        }
        await self._send(nio.ToDeviceMessage(REQUEST, user, device_id, content))
        return transaction

    def observe(self, raw: dict[str, Any]) -> None:
        """A to-device event from a sync: the answers to our requests that nio does not
        know (ready, and a cancel before anything started)."""
        content = raw.get("content") or {}
        transaction = content.get("transaction_id")
        if not isinstance(transaction, str):
            return
        asked = self._asked.get(transaction)
        if asked is None or raw.get("sender") != asked[0]:
            return
        if transaction in self._olm.key_verifications:
            return  # started: nio's Sas has it from here
        kind = raw.get("type")
        methods = content.get("methods")
        if kind == READY and content.get("from_device") == asked[1]:
            if isinstance(methods, list) and SAS_V1 in methods:
                self._start(transaction)
            else:
                self.refused[transaction] = "their client offers no emoji verification"
        elif kind == CANCEL:
            self.refused[transaction] = str(content.get("reason") or content.get("code") or "")

    async def step(self, transaction: str) -> None:
        """Move a verification on from our side where it waits on us."""
        sas = self.state(transaction)
        if sas is None:
            asked = self._asked.get(transaction)
            if asked and time.monotonic() - asked[2] > OLDER_FLOW_AFTER_S:
                self._start(transaction)
        elif not sas.we_started_it and sas.state == SasState.started:
            await self._nio.accept_key_verification(transaction)
        if self._olm.outgoing_to_device_messages:
            await self._nio.send_to_device_messages()

    def state(self, transaction: str) -> Sas | None:
        return self._olm.key_verifications.get(transaction)

    def emoji_ready(self, transaction: str) -> bool:
        sas = self.state(transaction)
        return sas is not None and (sas.canceled or sas.state.value >= SasState.key_received.value)

    async def confirm(self, transaction: str) -> None:
        """The person saw the same emoji: send our MAC (verified once theirs arrives)."""
        await self._nio.confirm_short_auth_string(transaction)

    async def reject(self, transaction: str) -> None:
        """The emoji differ (or the person said no): cancel as a mismatch."""
        sas = self.state(transaction)
        if sas is not None and not sas.canceled:
            shown = sas.established_sas is not None
            await self._nio.cancel_key_verification(transaction, reject=shown)

    async def done(self, transaction: str) -> None:
        user, device, _ = self._asked.pop(transaction)
        await self._send(nio.ToDeviceMessage(DONE, user, device, {"transaction_id": transaction}))

    def _start(self, transaction: str) -> None:
        user, device_id, _ = self._asked[transaction]
        olm = self._olm
        try:
            device = olm.device_store[user][device_id]
        except KeyError:
            self.refused[transaction] = "the device is not known (yet)"
            return
        sas = Sas(
            olm.user_id,
            olm.device_id,
            olm.account.identity_keys["ed25519"],
            device,
            transaction_id=transaction,
        )
        olm.key_verifications[transaction] = sas
        olm.outgoing_to_device_messages.append(sas.start_verification())

    async def _send(self, message: nio.ToDeviceMessage) -> None:
        answer = await self._nio.to_device(message)
        if isinstance(answer, nio.ToDeviceError):
            raise ConnectionError(f"the verification could not be sent: {answer.message}")
