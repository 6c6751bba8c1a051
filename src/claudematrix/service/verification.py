"""Emoji verification of a person's device (`claudematrix verify`): the session's device and
the person's client each show seven emoji derived from a key exchange; the person compares
them and says whether they match. Only that answer, given by the person in their own
terminal, verifies a device: nothing a message or another device sends can.

It runs where the identity's device lives: in the daemon (which syncs the identity, so the
other device's answers arrive by themselves) or in this process, which then syncs for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from claudematrix.errors import EncryptionUnavailable, InvalidInput, VerificationFailed
from claudematrix.ids import parse_user_id
from claudematrix.local import layout
from claudematrix.service.machine import is_local

if TYPE_CHECKING:
    from claudematrix.service.session import Service

__all__ = ["Compare", "verify_device", "VERIFY_TIMEOUT_S"]

# Shown the emoji (pairs of emoji and their name), the person answers: do they match?
Compare = Callable[[list[tuple[str, str]]], Awaitable[bool]]
VERIFY_TIMEOUT_S = 180.0  # time for the person to pick up their client and answer


async def verify_device(
    service: Service,
    user: str,
    device_id: str | None,
    compare: Compare,
    *,
    timeout_s: float = VERIFY_TIMEOUT_S,
) -> str:
    """Verify one device of `user` by emoji; what came of it, in one line."""
    user_id = parse_user_id(user.strip())
    if is_local(service.config, user_id):  # no person there to compare emoji
        return (
            f"nothing to verify: {user_id} is a session of this machine, whose device is "
            "known from this machine's own accounts"
        )
    verifying = _device(service).verifications
    found = await verifying.devices_of(user_id)
    if not found:
        raise InvalidInput(
            f"{user_id} has no encryption device: they must log in with a client that has "
            "encryption on (Element does) and open it once"
        )
    if device_id is None:
        if len(found) > 1:
            listed = ", ".join(d for d, _ in found)
            raise InvalidInput(
                f"{user_id} has {len(found)} devices ({listed}): name one with --device"
            )
        device_id = found[0][0]
    keys = dict(found)
    if device_id not in keys:
        raise InvalidInput(
            f"{user_id} has no device {device_id}: see `claudematrix devices {user_id}`"
        )
    who = f"{user_id}'s device {device_id}"

    transaction = await verifying.request(user_id, device_id)
    deadline = time.monotonic() + timeout_s

    def refused() -> str | None:
        if transaction in verifying.refused:
            return verifying.refused[transaction] or "canceled"
        sas = verifying.state(transaction)
        return (sas.cancel_reason or "canceled") if sas is not None and sas.canceled else None

    async def step() -> None:
        await verifying.step(transaction)

    await _until(
        service, step, lambda: bool(refused() or verifying.emoji_ready(transaction)), deadline
    )
    if refused():
        return f"not verified: {who} canceled ({refused()})"
    sas = verifying.state(transaction)
    assert sas is not None
    if not await compare(sas.get_emoji()):
        await verifying.reject(transaction)
        return f"not verified: the emoji did not match; {who} stays unverified"
    await verifying.confirm(transaction)
    await _until(service, step, lambda: bool(refused() or sas.verified), deadline)
    if not sas.verified:
        return f"not verified: {who} canceled ({refused()})"
    await verifying.done(transaction)
    service.store.verified_device(user_id, device_id, keys[device_id])
    return f"verified {who}: its mail is no longer marked, and it receives encrypted mail"


def _device(service: Service) -> Any:
    client = service.require_client()
    if client.crypto is None and service.try_own_sync():
        client.open_device(service.dir / layout.CRYPTO_DIR)
    if client.crypto is None:
        raise EncryptionUnavailable(
            "this identity's encryption device is held by another process (its daemon): "
            "run `claudematrix verify` again, it goes through the daemon"
        )
    return client.crypto


async def _until(
    service: Service, step: Callable[[], Awaitable[None]], done: Callable[[], bool], deadline: float
) -> None:
    """Wait for the other device's answers: the daemon's sync brings them; a process of
    our own syncs for them. `step` moves things on from our side meanwhile."""
    while True:
        await step()
        if done():
            return
        if time.monotonic() > deadline:
            raise VerificationFailed(
                "no answer from the other device in time: accept the verification in the "
                "person's client, then run the command again"
            )
        if service.syncing_forever:
            await asyncio.sleep(0.1)
        else:
            await service.sync(timeout_ms=1000)
