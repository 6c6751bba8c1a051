"""Presence held by delayed events, and the heartbeat where a homeserver has none: which
requests go out, that a room event is made only for news, and that nothing of an earlier run
or a withdrawn room can fire later. The homeserver side (a restart wakes nobody, a crash
turns offline within the TTL) is tested against Synapse in tests/integration."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from claudematrix.errors import HomeserverError, HomeserverUnavailable, NotFound
from claudematrix.ids import RoomID, UserID
from claudematrix.service.presence import HELD_TTL_MS, Presence
from claudematrix.store import Store

LOBBY, CIRCLE = RoomID("!lobby:x"), RoomID("!circle:x")


@dataclass
class Homeserver:
    """What the client asked for; delayed events on or off, and failures on demand."""

    delayed: bool = True
    user_id: UserID = UserID("@me:x")
    events: list[tuple[RoomID, dict[str, Any]]] = field(default_factory=list)
    scheduled: dict[str, RoomID] = field(default_factory=dict)
    actions: list[tuple[str, str]] = field(default_factory=list)
    lost: set[str] = field(default_factory=set)
    down: bool = False

    async def put_state(
        self, room: RoomID, event_type: str, content: dict[str, Any], key: str
    ) -> str:
        if self.down:
            raise HomeserverUnavailable("down")
        self.events.append((room, content))
        return f"$e{len(self.events)}"

    async def put_state_later(
        self, room: RoomID, event_type: str, content: dict[str, Any], key: str, delay_ms: int
    ) -> str:
        if self.down:
            raise HomeserverUnavailable("down")
        if not self.delayed:
            raise HomeserverError("delayed events are not supported", "M_UNKNOWN")
        assert content["online"] is False and "last_active" not in content
        delay_id = f"syd_{len(self.scheduled)}"
        self.scheduled[delay_id] = room
        return delay_id

    async def delayed_event(self, delay_id: str, action: str) -> None:
        if self.down:
            raise HomeserverUnavailable("down")
        if delay_id in self.lost or delay_id not in self.scheduled:
            raise NotFound("no such delayed event", "M_NOT_FOUND")
        self.actions.append((action, delay_id))
        if action == "cancel":
            del self.scheduled[delay_id]


def presence(hs: Homeserver, store: Store | None = None) -> Presence:
    return Presence(lambda: hs, store or Store.in_memory(), lambda: 2500, lambda _l: None)  # type: ignore[arg-type, return-value]


def test_online_is_said_once_then_kept_alive_without_room_events() -> None:
    hs = Homeserver()
    p = presence(hs)
    asyncio.run(p.say([LOBBY, CIRCLE], True))
    assert [(room, c["online"], c["ttl_ms"]) for room, c in hs.events] == [
        (LOBBY, True, HELD_TTL_MS),
        (CIRCLE, True, HELD_TTL_MS),
    ]
    assert sorted(hs.scheduled.values()) == [CIRCLE, LOBBY]
    asyncio.run(p.say([LOBBY, CIRCLE], True))  # no news: nothing
    asyncio.run(p.refresh([LOBBY, CIRCLE], True))
    asyncio.run(p.refresh([LOBBY, CIRCLE], True))
    assert len(hs.events) == 2  # kept alive by restarts alone
    assert [a for a, _ in hs.actions] == ["restart"] * 4


def test_going_offline_cancels_the_delayed_events_and_says_so() -> None:
    hs = Homeserver()
    p = presence(hs)
    asyncio.run(p.say([LOBBY], True))
    asyncio.run(p.say([LOBBY], False))
    assert hs.scheduled == {}
    assert [c["online"] for _, c in hs.events] == [True, False]
    assert hs.events[-1][1]["ttl_ms"] == 2500  # offline is never "held"


def test_a_delayed_event_that_fired_is_noticed_and_online_said_again() -> None:
    hs = Homeserver()
    p = presence(hs)
    asyncio.run(p.say([LOBBY], True))
    hs.lost = set(hs.scheduled)  # fired while the homeserver could not hear our restarts
    asyncio.run(p.refresh([LOBBY], True))
    assert [c["online"] for _, c in hs.events] == [True, True]
    assert len(hs.scheduled) == 2  # a new one


def test_without_delayed_events_presence_is_a_heartbeat() -> None:
    hs = Homeserver(delayed=False)
    p = presence(hs)
    asyncio.run(p.say([LOBBY], True))
    asyncio.run(p.refresh([LOBBY], True))
    asyncio.run(p.refresh([LOBBY], True))
    assert p.held is False
    assert [(c["online"], c["ttl_ms"]) for _, c in hs.events] == [(True, 2500)] * 3


def test_a_withdrawn_room_keeps_nothing_that_could_fire_there() -> None:
    hs = Homeserver()
    p = presence(hs)
    asyncio.run(p.say([LOBBY, CIRCLE], True))
    asyncio.run(p.forget(LOBBY))
    assert list(hs.scheduled.values()) == [CIRCLE]


def test_the_next_run_takes_over_what_a_killed_run_left_without_a_room_event() -> None:
    store = Store.in_memory()
    hs = Homeserver()
    asyncio.run(presence(hs, store).say([LOBBY, CIRCLE], True))  # then: killed
    left = dict(hs.scheduled)
    hs.events.clear()
    nxt = presence(hs, store)
    asyncio.run(nxt.resume())
    asyncio.run(nxt.say([LOBBY, CIRCLE], True))
    assert hs.events == []  # "online" still stands: nobody's sync wakes
    assert hs.scheduled == left and sorted(hs.actions) == [("restart", d) for d in sorted(left)]
    asyncio.run(nxt.say([LOBBY, CIRCLE], False))  # and they are this run's to cancel
    assert hs.scheduled == {}


def test_a_room_whose_delayed_event_fired_meanwhile_hears_online_again() -> None:
    store = Store.in_memory()
    hs = Homeserver()
    asyncio.run(presence(hs, store).say([LOBBY, CIRCLE], True))
    fired = next(d for d, room in hs.scheduled.items() if room == LOBBY)
    hs.lost = {fired}
    hs.events.clear()
    nxt = presence(hs, store)
    asyncio.run(nxt.resume())
    asyncio.run(nxt.say([LOBBY, CIRCLE], True))
    assert [(room, c["online"]) for room, c in hs.events] == [(LOBBY, True)]
    assert sorted(set(hs.scheduled.values()) - {LOBBY}) == [CIRCLE]
    assert len([r for r in hs.scheduled.values() if r == LOBBY]) == 2  # a new one


def test_a_run_that_is_not_the_owner_cancels_what_it_takes_back() -> None:
    """A one-off command withdrawing from a room cancels the delayed event the owning run
    stored, and keeps the others."""
    store = Store.in_memory()
    hs = Homeserver()
    asyncio.run(presence(hs, store).say([LOBBY, CIRCLE], True))
    asyncio.run(presence(hs, store).forget(LOBBY))
    assert list(hs.scheduled.values()) == [CIRCLE]
    assert list(presence(hs, store)._delays) == [CIRCLE]


def test_held_online_is_said_again_before_its_own_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hs = Homeserver()
    p = presence(hs)
    asyncio.run(p.say([LOBBY], True))
    asyncio.run(p.refresh([LOBBY], True))
    assert len(hs.events) == 1
    later = time.time() + HELD_TTL_MS / 1000 * 0.6
    monkeypatch.setattr(time, "time", lambda: later)
    asyncio.run(p.refresh([LOBBY], True))
    assert [c["online"] for _, c in hs.events] == [True, True]
    assert hs.events[-1][1]["last_active"] >= int(later * 1000) - 1
    asyncio.run(p.refresh([LOBBY], True))
    assert len(hs.events) == 2  # and then kept alive quietly again


def test_delays_stored_before_their_time_was_kept_are_taken_over_and_said_again_soon() -> None:
    store = Store.in_memory()
    hs = Homeserver()
    hs.scheduled["syd_old"] = LOBBY
    store.set_setting("presence_delays", '{"!lobby:x": "syd_old"}')
    p = presence(hs, store)
    asyncio.run(p.resume())
    assert hs.actions == [("restart", "syd_old")]
    asyncio.run(p.refresh([LOBBY], True))
    assert [c["online"] for _, c in hs.events] == [True]


def test_a_failed_cancel_is_tried_again_not_forgotten() -> None:
    hs = Homeserver()
    p = presence(hs)
    asyncio.run(p.say([LOBBY], True))
    hs.down = True
    with pytest.raises(HomeserverUnavailable):
        asyncio.run(p.say([LOBBY], False))
    hs.down = False
    asyncio.run(p.say([LOBBY], False))
    assert hs.scheduled == {}  # the "offline" that would have fired later is gone
