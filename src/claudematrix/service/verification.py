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

if TYPE_CHECKING:
    from claudematrix.service.session import Service

__all__ = ["Compare", "verify_device", "VERIFY_TIMEOUT_S"]

# Shown the emoji (pairs of emoji and their name), the person answers: do they match?
Compare = Callable[[list[tuple[str, str]]], Awaitable[bool]]
VERIFY_TIMEOUT_S = 180.0  # time for the person to pick up their client and answer
_KEY_RECEIVED = 3  # nio's SasState.key_received: both keys are in, the emoji can be shown


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
    crypto = _device(service)
    found = await crypto.devices_of(user_id)
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

    transaction = await crypto.start_verification(user_id, device_id)
    deadline = time.monotonic() + timeout_s

    def state() -> Any:
        return crypto.verification(transaction)

    await _until(
        service, lambda: state().canceled or state().state.value >= _KEY_RECEIVED, deadline
    )
    sas = state()
    if sas.canceled:
        return f"not verified: {user_id}'s device {device_id} canceled ({sas.cancel_reason})"
    if not await compare(sas.get_emoji()):
        await crypto.reject_verification(transaction)
        return (
            f"not verified: the emoji did not match; {user_id}'s device {device_id} stays "
            "unverified"
        )
    await crypto.confirm_verification(transaction)
    await _until(service, lambda: state().canceled or state().verified, deadline)
    if not state().verified:
        return f"not verified: {user_id}'s device {device_id} canceled ({state().cancel_reason})"
    service.store.verified_device(user_id, device_id, keys[device_id])
    return (
        f"verified {user_id}'s device {device_id}: its mail is no longer marked, and it "
        "receives encrypted mail"
    )


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


async def _until(service: Service, done: Callable[[], bool], deadline: float) -> None:
    """Wait for the other device's answers: the daemon's sync brings them; a process of
    our own syncs for them."""
    while not done():
        if time.monotonic() > deadline:
            raise VerificationFailed(
                "no answer from the other device in time: accept the verification in the "
                "person's client, then run the command again"
            )
        if service.syncing_forever:
            await asyncio.sleep(0.1)
        else:
            await service.sync(timeout_ms=1000)
