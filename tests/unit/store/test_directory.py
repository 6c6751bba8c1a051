"""claudematrix.store._directory: the directory tables: people, members, published profiles
and presence as sync leaves them (newer wins, an older event never overwrites), trust and
blocks as the person sets them, and message requests."""

from __future__ import annotations

from claudematrix.ids import RoomID, UserID
from claudematrix.store import Membership, Person, Presence, Profile, Request, Store, SyncBatch

BOB = UserID("@cc-bob:localhost")
EVE = UserID("@eve:evil.example")
LOBBY = RoomID("!lobby:localhost")


def sync(store: Store, **changes: object) -> None:
    store.commit_sync(SyncBatch(next_batch=None, **changes))  # type: ignore[arg-type]


def test_a_person_keeps_their_last_name_and_latest_sighting(store: Store) -> None:
    sync(store, people=[Person(BOB, "Bob", 5)])
    sync(store, people=[Person(BOB, "", 3)])  # no name, an older sighting: neither wins
    assert store.people()[BOB] == Person(BOB, "Bob", 5)
    sync(store, people=[Person(BOB, "Robert", 9)])
    assert store.people()[BOB] == Person(BOB, "Robert", 9)


def test_members_join_and_leave(store: Store) -> None:
    sync(store, memberships=[Membership(LOBBY, BOB, "Bob", True), Membership(LOBBY, EVE, "", True)])
    assert store.members(LOBBY) == {BOB: "Bob", EVE: ""}
    sync(store, memberships=[Membership(LOBBY, EVE, "", False)])
    assert store.members(LOBBY) == {BOB: "Bob"}


def test_a_profile_is_replaced_by_a_newer_one_and_withdrawn_by_an_empty_one(store: Store) -> None:
    sync(store, profiles=[Profile(BOB, LOBBY, {"status": "new"}, 20)])
    sync(store, profiles=[Profile(BOB, LOBBY, {"status": "old"}, 10)])  # arrives late
    assert store.profiles()[BOB].content == {"status": "new"}
    sync(store, profiles=[Profile(BOB, LOBBY, {}, 30)])  # secret mode: withdrawn
    assert BOB not in store.profiles()


def test_presence_is_the_latest_and_online_only_while_fresh(store: Store) -> None:
    sync(store, presence=[Presence(BOB, 1_000, 500, True)])
    sync(store, presence=[Presence(BOB, 900, 500, False)])  # an older heartbeat
    seen = store.presence()[BOB]
    assert seen == Presence(BOB, 1_000, 500, True)
    assert seen.is_online(1_500) and not seen.is_online(1_501)
    assert not Presence(BOB, 1_000, 500, False).is_online(1_000)  # said goodbye


def test_blocking_takes_back_trust_and_acceptance(store: Store) -> None:
    store.set_trusted(EVE, True)
    store.set_accepted(EVE, True)
    store.set_trusted(EVE, True)  # twice is once
    assert store.trusted() == {EVE} and store.accepted() == {EVE}
    store.set_blocked(EVE, True)
    assert store.blocked() == {EVE} and store.trusted() == set() and store.accepted() == set()
    store.set_blocked(EVE, False)
    assert store.blocked() == set() and store.trusted() == set()  # trust is not given back


def test_requests_newest_first_and_dropped_by_sender(store: Store) -> None:
    older = Request(RoomID("!a:x"), EVE, "Eve", 1)
    newer = Request(RoomID("!b:x"), EVE, "Eve", 2, kind="message")
    other = Request(RoomID("!c:x"), BOB, "Bob", 3)
    for request in (older, newer, other, older):  # the same one twice is kept once
        store.add_request(request)
    assert [r.room_id for r in store.requests()] == ["!c:x", "!b:x", "!a:x"]
    assert store.drop_requests_from(EVE) == [newer, older]
    assert store.requests() == [other]


def test_display_names_are_looked_up_for_the_asked_users_only(store: Store) -> None:
    many = [UserID(f"@cc-{i}:localhost") for i in range(1200)]  # more than one query holds
    sync(
        store,
        people=[Person(u, f"name {i}", 1) for i, u in enumerate(many)] + [Person(EVE, "", 1)],
        profiles=[
            Profile(BOB, LOBBY, {"display_name": "Bob (api)"}, 1),
            Profile(many[1100], LOBBY, {"display_name": "published 1100"}, 1),
            Profile(EVE, LOBBY, {"status": "no name"}, 1),
        ],
    )
    published, names = store.display_names([BOB, EVE, *many[1000:]])
    assert published == {BOB: "Bob (api)", many[1100]: "published 1100"}
    assert names == {u: f"name {i}" for i, u in enumerate(many) if i >= 1000}
    assert store.display_names([]) == ({}, {})
