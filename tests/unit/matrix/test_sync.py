"""sync_once on a canned /sync response: what one response changes in the store.

The client is a stand-in that returns the response; the homeserver itself is exercised by the
integration tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from claudematrix.ids import RoomID, UserID
from claudematrix.matrix.content import PROFILE_EVENT, UNREADABLE_SUBJECT, build_content
from claudematrix.matrix.sync import Invite, SyncOutcome, WelcomeCheck, sync_once
from claudematrix.store import RoomRecord, Store, SyncBatch
from claudematrix.types import Label

ME = UserID("@cc-me:localhost")
BOB = UserID("@cc-bob:localhost")
LOBBY = RoomID("!lobby")
DM = RoomID("!dm")


class CannedClient:
    user_id = ME
    crypto = None  # no encryption device: encrypted events stay unreadable

    def note_encrypted(self, room: RoomID) -> None:
        self.encrypted.add(room)

    def known_encrypted(self, room: RoomID) -> bool:
        return room in self.encrypted

    def membership_changed(self, room: RoomID) -> None:
        pass

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.encrypted: set[RoomID] = set()

    async def sync(
        self, since: str | None, timeout_ms: int, *, full_state: bool = False
    ) -> dict[str, Any]:
        return self.response

    async def messages_before(
        self, room: RoomID, token: str | None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        return [], None


def _event(
    kind: str, sender: UserID, content: dict[str, Any], n: int, **extra: Any
) -> dict[str, Any]:
    return {
        "type": kind,
        "sender": sender,
        "content": content,
        "event_id": f"$e{n}",
        "origin_server_ts": 1000 + n,
        **extra,
    }


async def _no_invites(_invite: Invite) -> None:
    return None


async def _everyone(senders: set[UserID]) -> set[UserID]:
    return senders


def _step(store: Store, response: dict[str, Any], welcome: WelcomeCheck) -> SyncOutcome:
    return asyncio.run(
        sync_once(
            CannedClient(response),  # type: ignore[arg-type]
            store,
            timeout_ms=0,
            on_invite=_no_invites,
            welcome=welcome,
        )
    )


def test_a_name_published_in_the_same_response_names_the_message() -> None:
    store = Store.in_memory()
    store.commit_sync(
        SyncBatch(next_batch="s0", rooms=[RoomRecord(LOBBY, "lobby"), RoomRecord(DM, "dm", BOB)])
    )
    neutral = {"membership": "join", "displayname": "ClaudeMatrix session bob"}
    rich = "proj@main on vm (bob)"
    response = {
        "next_batch": "s1",
        "rooms": {
            "join": {  # the DM is listed first: its member event carries the neutral name
                DM: {
                    "timeline": {
                        "events": [
                            _event("m.room.member", BOB, neutral, 1, state_key=BOB),
                            _event(
                                "m.room.message",
                                BOB,
                                build_content("hi", "hello", Label.PRIVATE),
                                2,
                            ),
                        ]
                    }
                },
                LOBBY: {
                    "timeline": {
                        "events": [
                            _event(PROFILE_EVENT, BOB, {"display_name": rich}, 3, state_key=BOB),
                        ]
                    }
                },
            }
        },
    }
    outcome = _step(store, response, _everyone)
    (message,) = [store.message(str(i)) for i in outcome.new_message_ids]
    assert message.sender_name == rich
    assert store.next_batch() == "s1"


def test_mail_from_a_sender_outside_my_audience_is_held_as_a_request() -> None:
    store = Store.in_memory()
    store.commit_sync(SyncBatch(next_batch="s0", rooms=[RoomRecord(DM, "dm", BOB)]))
    stranger = UserID("@eve:evil.example")
    asked: list[set[UserID]] = []

    async def only_bob(senders: set[UserID]) -> set[UserID]:
        asked.append(set(senders))
        return senders & {BOB}

    response = {
        "next_batch": "s1",
        "rooms": {
            "join": {
                DM: {
                    "timeline": {
                        "events": [
                            _event(
                                "m.room.message",
                                BOB,
                                build_content("hi", "from bob", Label.PRIVATE),
                                1,
                            ),
                            _event(
                                "m.room.message",
                                stranger,
                                build_content("psst", "SECRET-BODY", Label.PUBLIC),
                                2,
                            ),
                        ]
                    }
                }
            }
        },
    }
    outcome = _step(store, response, only_bob)
    assert asked == [{BOB, stranger}]
    assert [store.message(str(i)).sender for i in outcome.new_message_ids] == [BOB]
    assert outcome.held == 1 and store.held_count(stranger) == 1
    assert [m.sender for m in store.inbox(include_read=True)] == [BOB]
    assert store.search("SECRET") == []  # held mail is not searchable, not listed
    (request,) = store.requests()
    assert (request.inviter, request.kind, request.room_id) == (stranger, "message", DM)
    # Accepting releases it, once.
    released = store.release_held(stranger)
    assert [store.message(str(i)).body for i in released] == ["SECRET-BODY"]
    assert store.release_held(stranger) == [] and store.held_count() == 0


def _encrypted(n: int) -> dict[str, Any]:
    content = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEn...",
        "sender_key": "curve-key",
        "session_id": "session",
        "device_id": "BOBDEVICE",
    }
    return _event("m.room.encrypted", BOB, content, n)


def _one_encrypted_message(n: int) -> dict[str, Any]:
    return {
        "next_batch": f"s{n}",
        "rooms": {"join": {DM: {"timeline": {"events": [_encrypted(n)]}}}},
    }


def test_an_encrypted_message_that_cannot_be_read_is_kept_and_announced() -> None:
    store = Store.in_memory()
    store.commit_sync(SyncBatch(next_batch="s0", rooms=[RoomRecord(DM, "dm", BOB)]))
    outcome = _step(store, _one_encrypted_message(1), _everyone)
    (message,) = [store.message(str(i)) for i in outcome.new_message_ids]
    assert message.sender == BOB and message.subject == UNREADABLE_SUBJECT
    assert message.label is Label.SECRET
    assert [(e, r) for e, r, _raw in store.undecrypted()] == [("$e1", DM)]


def test_an_unreadable_message_from_a_stranger_is_held_as_a_request() -> None:
    store = Store.in_memory()
    store.commit_sync(SyncBatch(next_batch="s0", rooms=[RoomRecord(DM, "dm", BOB)]))

    async def nobody(_senders: set[UserID]) -> set[UserID]:
        return set()

    outcome = _step(store, _one_encrypted_message(2), nobody)
    assert outcome.new_message_ids == [] and outcome.held == 1
    assert [r.inviter for r in store.requests()] == [BOB]
    assert [e for e, _r, _raw in store.undecrypted()] == ["$e2"]


def test_plaintext_in_a_room_with_encryption_on_is_marked_as_vouched_for_by_no_device() -> None:
    store = Store.in_memory()
    store.commit_sync(
        SyncBatch(next_batch="s0", rooms=[RoomRecord(DM, "dm", BOB), RoomRecord(LOBBY, "lobby")])
    )
    text = build_content("hi", "hello", Label.PRIVATE)
    encryption = {"algorithm": "m.megolm.v1.aes-sha2"}
    response = {
        "next_batch": "s1",
        "rooms": {
            "join": {
                DM: {
                    "state": {
                        "events": [_event("m.room.encryption", BOB, encryption, 1, state_key="")]
                    },
                    "timeline": {"events": [_event("m.room.message", BOB, text, 2)]},
                },
                LOBBY: {"timeline": {"events": [_event("m.room.message", BOB, text, 3)]}},
            }
        },
    }
    outcome = _step(store, response, _everyone)
    marked = {
        store.message(str(i)).room_id: store.message(str(i)).unverified_device
        for i in outcome.new_message_ids
    }
    assert marked == {DM: True, LOBBY: False}
