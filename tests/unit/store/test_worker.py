"""A worker's commands in its store: stored once per message, in order per room."""

from __future__ import annotations

from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.store import Store

ANN = UserID("@ann:localhost")
ROOM, OTHER = RoomID("!a:localhost"), RoomID("!b:localhost")


def test_a_message_becomes_one_command_however_often_it_comes(store: Store) -> None:
    first = store.add_command(EventID("$1"), ROOM, ANN, "do it")
    assert first is not None and first.state == "queued" and first.prompt == "do it"
    assert store.add_command(EventID("$1"), ROOM, ANN, "do it") is None  # a replayed sync
    assert [c.id for c in store.waiting_in(ROOM)] == [first.id]


def test_commands_wait_in_order_per_room_and_count_who_is_ahead(store: Store) -> None:
    made = [store.add_command(EventID(f"${n}"), ROOM, ANN, f"c{n}") for n in range(3)]
    elsewhere = store.add_command(EventID("$x"), OTHER, ANN, "other room")
    assert all(made) and elsewhere is not None
    one, two, three = (c for c in made if c is not None)
    assert [store.ahead_of(c) for c in (one, two, three, elsewhere)] == [0, 1, 2, 0]
    store.start_command(one.id, EventID("$progress"))
    store.set_process_group(one.id, 4242)
    running = store.commands_in("running")
    assert [(c.id, c.progress_event, c.process_group) for c in running] == [
        (one.id, "$progress", 4242)
    ]
    assert store.ahead_of(three) == 2  # the running one still counts
    store.end_command(one.id, "done")
    ended = store.command(one.id)
    assert ended is not None and ended.state == "done" and ended.process_group is None
    assert [c.id for c in store.waiting_in(ROOM)] == [two.id, three.id]


def test_each_room_remembers_its_claude_code_session(store: Store) -> None:
    assert store.room_session(ROOM) is None
    store.set_room_session(ROOM, "s-1")
    store.set_room_session(ROOM, "s-2")
    assert (store.room_session(ROOM), store.room_session(OTHER)) == ("s-2", None)
