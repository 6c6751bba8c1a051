"""The store under test, in memory and in a file; messages to put in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from claudematrix.ids import EventID, RoomID, UserID
from claudematrix.store import Store
from claudematrix.types import Direction, Label, Message

ME = UserID("@cc-me:localhost")
PEER = UserID("@cc-peer:localhost")
ROOM = RoomID("!dm:localhost")


def msg(
    n: int,
    *,
    subject: str | None = None,
    body: str | None = None,
    direction: Direction = Direction.IN,
    label: Label = Label.PRIVATE,
    sender_name: str = "Peer",
) -> Message:
    incoming = direction is Direction.IN
    return Message(
        event_id=EventID(f"$event{n}"),
        room_id=ROOM,
        sender=PEER if incoming else ME,
        sender_name=sender_name,
        direction=direction,
        subject=f"subject {n}" if subject is None else subject,
        body=f"body {n}" if body is None else body,
        label=label,
        origin_ts=1_700_000_000_000 + n,
        recipient=ME if incoming else PEER,
    )


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Every store test runs twice: on an in-memory database and on a file (WAL)."""
    s = Store.in_memory() if request.param == "memory" else Store(tmp_path / "store.db")
    try:
        yield s
    finally:
        s.close()
