"""The privacy table (README, "Privacy modes"): the one place that says who may see what.

Every outbound path (message send, profile/status publish, directory listing, public post)
asks `check` before anything leaves the machine. Which of a contact's encryption devices a
room key may go to is decided here too (`admit_devices`).
"""

from __future__ import annotations

from collections.abc import Sequence

from claudematrix.errors import PolicyRefused
from claudematrix.ids import UserID
from claudematrix.store import Device
from claudematrix.types import Audience, Label

__all__ = ["allows", "check", "opens_up", "admit_devices", "AUDIENCES_FOR"]

# label -> audiences it may reach (README, "Privacy modes")
AUDIENCES_FOR: dict[Label, frozenset[Audience]] = {
    Label.SECRET: frozenset({Audience.SELF}),
    Label.PRIVATE: frozenset({Audience.SELF, Audience.PROJECT, Audience.MACHINE}),
    Label.TRUSTED: frozenset({Audience.SELF, Audience.PROJECT, Audience.MACHINE, Audience.TRUSTED}),
    Label.PUBLIC: frozenset(Audience),
}


def allows(label: Label, audience: Audience) -> bool:
    return audience in AUDIENCES_FOR[label]


def opens_up(old: Label, new: Label) -> bool:
    """Does moving from mode `old` to `new` let more people see things (so the person must
    confirm it)?"""
    return AUDIENCES_FOR[new] > AUDIENCES_FOR[old]


def check(label: Label, audience: Audience, what: str, whom: str) -> None:
    """Refuse, never downgrade: a label that does not reach `audience` is an error."""
    if allows(label, audience):
        return
    widest = next(
        (lbl.value for lbl in Label if audience in AUDIENCES_FOR[lbl]), Label.PUBLIC.value
    )
    trust_hint = " or have the person trust them" if audience is Audience.ANYONE else ""
    raise PolicyRefused(
        f"refused: {what} is labelled {label.value}, and {whom} is {audience.value}; "
        f"a {label.value} label does not reach them (label it {widest} if it may travel that "
        f"far{trust_hint})"
    )


def admit_devices(
    user: UserID,
    known: Sequence[Device],
    current: Sequence[tuple[str, str]],
    *,
    same_machine: bool = False,
) -> list[Device]:
    """Trust on first use. The devices `user` has now, (device id, ed25519 key), decided
    against what I pinned before: all pinned the first time I meet the user; later, a
    device I have not seen, or one whose key changed, is held (no room key goes to it)
    until the person confirms it. A session of this machine (proven by the lobby, not the
    owner, whose devices are a person's) is pinned as it is: its accounts live in this
    state dir, the trust root of every session here, and `recover` gives one a new device.
    Nothing a message says can change this."""
    pinned = {d.device_id: d.ed25519 for d in known if d.state == "pinned"}
    first_use = not known or same_machine
    decided: list[Device] = []
    for device_id, key in current:
        trusted = first_use or pinned.get(device_id) == key
        decided.append(Device(user, device_id, key, "pinned" if trusted else "held"))
    return decided
