"""claudematrix.service.guard: a room's audience is that of its least-near member, joined or
invited, as the homeserver says just before sending; whoever should not be there is removed
first where we have the power, and whoever stays counts. A sealed room is measured from the
members the store recorded.

The homeserver is a stand-in holding each room's members; where people stand is a table."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import TypeVar

import pytest

import claudematrix.service.guard as guard_module
from claudematrix.config import Config, load_config
from claudematrix.errors import Forbidden
from claudematrix.ids import RoomID, UserID
from claudematrix.service.guard import Guard, farthest
from claudematrix.store import Membership, RoomRecord, Store, SyncBatch
from claudematrix.types import Audience

T = TypeVar("T")
ME = UserID("@cc-me:localhost")
NEIGHBOUR = UserID("@cc-neighbour:localhost")  # another session of this machine
FRIEND = UserID("@friend:far.example")  # trusted
STRANGER = UserID("@stranger:far.example")
ROOM = RoomID("!room:localhost")


class Homeserver:
    """Each room's members (joined or invited); kicks remove them unless refused."""

    user_id = ME

    def __init__(self, members: dict[UserID, str], unkickable: Iterable[UserID] = ()) -> None:
        self.rooms = {ROOM: dict(members)}
        self.unkickable = set(unkickable)
        self.asked = 0
        self.kicked: list[UserID] = []

    async def members(self, room: RoomID) -> dict[UserID, str]:
        self.asked += 1
        return dict(self.rooms[room])

    async def kick(self, room: RoomID, user: UserID) -> None:
        if user in self.unkickable:
            raise Forbidden(f"removing {user} failed: no power (M_FORBIDDEN)", "M_FORBIDDEN")
        self.kicked.append(user)
        del self.rooms[room][user]


@pytest.fixture
def config(isolated_home: Path) -> Config:
    """This machine holds accounts for me and my neighbour (that is what makes them local)."""
    for slug, user in (("me", ME), ("neighbour", NEIGHBOUR)):
        folder = isolated_home / "identities" / slug
        folder.mkdir(parents=True)
        (folder / "account.json").write_text(json.dumps({"user_id": user}))
    return load_config()


class Setup:
    def __init__(self, config: Config, homeserver: Homeserver, record: RoomRecord | None) -> None:
        self.store = Store.in_memory()
        self.homeserver = homeserver
        self.where = {ME: Audience.SELF, NEIGHBOUR: Audience.MACHINE, FRIEND: Audience.TRUSTED}
        self.learned: dict[UserID, Audience] = {}  # what a refresh from the homeserver finds
        self.refreshed = 0
        if record is not None:
            self.store.save_room(record)
        self.guard = Guard(
            config,
            self.store,
            lambda: homeserver,  # type: ignore[arg-type, return-value]
            lambda user: self.where.get(user, Audience.ANYONE),
            self.refresh,
        )

    async def refresh(self) -> None:
        self.refreshed += 1
        self.where.update(self.learned)

    def run(self, call: Callable[[Guard], Coroutine[object, object, T]]) -> T:
        return asyncio.run(call(self.guard))


def setup(
    config: Config,
    members: list[UserID],
    kind: str = "dm",
    *,
    sealed: bool = False,
    unkickable: Iterable[UserID] = (),
) -> Setup:
    joined = {u: "join" for u in [ME, *members]}
    return Setup(config, Homeserver(joined, unkickable), RoomRecord(ROOM, kind, sealed=sealed))


def test_the_farthest_of_some_audiences() -> None:
    assert farthest([]) is Audience.SELF
    assert farthest([Audience.PROJECT, Audience.ANYONE, Audience.MACHINE]) is Audience.ANYONE
    assert farthest([Audience.MACHINE, Audience.TRUSTED]) is Audience.TRUSTED


def test_a_room_is_as_far_as_its_farthest_member(config: Config) -> None:
    s = setup(config, [NEIGHBOUR, FRIEND])
    assert s.run(lambda g: g.audience(ROOM, "dm")) is Audience.TRUSTED
    assert s.homeserver.asked == 1  # asked, not taken from the store


def test_a_public_room_reaches_anyone(config: Config) -> None:
    s = setup(config, [NEIGHBOUR], "public")
    assert s.run(lambda g: g.audience(ROOM, "public")) is Audience.ANYONE


def test_a_stranger_is_looked_up_again_before_counting(config: Config) -> None:
    """Someone may have joined the lobby since my last sync: the store is refreshed once."""
    newcomer = UserID("@cc-new:localhost")
    s = setup(config, [newcomer])
    s.learned = {newcomer: Audience.MACHINE}
    assert s.run(lambda g: g.audience(ROOM, "dm")) is Audience.MACHINE
    assert s.refreshed == 1


def test_a_stranger_in_my_circle_is_removed(config: Config) -> None:
    s = setup(config, [FRIEND, STRANGER], "circle")
    assert s.run(lambda g: g.audience(ROOM, "circle")) is Audience.TRUSTED
    assert s.homeserver.kicked == [STRANGER] and s.refreshed == 1


def test_a_stranger_who_cannot_be_removed_counts(config: Config) -> None:
    s = setup(config, [FRIEND, STRANGER], "circle", unkickable={STRANGER})
    assert s.run(lambda g: g.audience(ROOM, "circle")) is Audience.ANYONE


@pytest.mark.parametrize(
    ("kind", "audience"), [("lobby", "same machine"), ("project", "same project")]
)
def test_a_machine_room_holds_only_this_machines_identities(
    config: Config, monkeypatch: pytest.MonkeyPatch, kind: str, audience: str
) -> None:
    s = setup(config, [NEIGHBOUR], kind)
    assert s.run(lambda g: g.audience(ROOM, kind)).value == audience
    # A trusted remote account is no proof of nearness there: the machine account removes it.
    s = setup(config, [NEIGHBOUR, FRIEND], kind)
    removed: list[RoomID] = []

    async def remove_strangers(_config: Config, room: RoomID) -> list[UserID]:
        removed.append(room)
        del s.homeserver.rooms[room][FRIEND]
        return [FRIEND]

    monkeypatch.setattr(guard_module, "remove_strangers", remove_strangers)
    assert s.run(lambda g: g.audience(ROOM, kind)).value == audience
    assert removed == [ROOM]
    # One that stays makes it a room anyone may be in.
    s = setup(config, [NEIGHBOUR, STRANGER], kind)

    async def cannot_remove(_config: Config, room: RoomID) -> list[UserID]:
        return []

    monkeypatch.setattr(guard_module, "remove_strangers", cannot_remove)
    assert s.run(lambda g: g.audience(ROOM, kind)) is Audience.ANYONE


def test_a_sealed_room_is_measured_from_the_store(config: Config) -> None:
    s = setup(config, [], "dm", sealed=True)
    s.store.commit_sync(
        SyncBatch(
            next_batch="s1",
            memberships=[
                Membership(ROOM, ME, "", True),
                Membership(ROOM, NEIGHBOUR, "", True),
                Membership(ROOM, FRIEND, "", True),
            ],
        )
    )
    assert s.run(lambda g: g.audience(ROOM, "dm")) is Audience.TRUSTED
    assert s.run(lambda g: g.audience(ROOM, "lobby")) is Audience.MACHINE
    assert s.run(lambda g: g.audience(ROOM, "project")) is Audience.PROJECT
    assert s.homeserver.asked == 0


def test_a_dm_is_made_to_hold_just_the_two_of_us(config: Config) -> None:
    s = setup(config, [FRIEND, STRANGER])
    assert s.run(lambda g: g.dm_holds_only(ROOM, FRIEND)) is True
    assert s.homeserver.kicked == [STRANGER]
    s = setup(config, [FRIEND, STRANGER], unkickable={STRANGER})
    assert s.run(lambda g: g.dm_holds_only(ROOM, FRIEND)) is False
    s = setup(config, [STRANGER])  # the peer left: the conversation needs a new room
    assert s.run(lambda g: g.dm_holds_only(ROOM, FRIEND)) is False
    s = setup(config, [], sealed=True)
    s.store.commit_sync(SyncBatch(next_batch="s", memberships=[Membership(ROOM, FRIEND, "", True)]))
    assert s.run(lambda g: g.dm_holds_only(ROOM, FRIEND)) is True
    assert s.homeserver.asked == 0
