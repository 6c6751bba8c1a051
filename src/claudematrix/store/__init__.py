"""The local store: one SQLite database per identity, the only thing hooks ever read."""

from claudematrix.store._directory import (
    Device,
    Membership,
    Person,
    Presence,
    Profile,
    Request,
)
from claudematrix.store._store import RoomRecord, Store, SyncBatch
from claudematrix.store._worker import Command

__all__ = [
    "Store",
    "SyncBatch",
    "RoomRecord",
    "Person",
    "Membership",
    "Profile",
    "Presence",
    "Request",
    "Device",
    "Command",
]
