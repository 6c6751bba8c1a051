"""claudematrix.policy: the README's "Privacy modes" table, written out cell by cell; refuse,
never downgrade.

| label    | self/owner | same project | same machine | trusted remote | anyone |
|----------|:---:|:---:|:---:|:---:|:---:|
| secret   | yes | no  | no  | no  | no  |
| private  | yes | yes | yes | no  | no  |
| trusted  | yes | yes | yes | yes | no  |
| public   | yes | yes | yes | yes | yes |

Every cell is one literal line below (nothing derived), so a change to the table in the code
shows up here as a failing cell, not as a silently updated expectation.
"""

from __future__ import annotations

import pytest

from claudematrix import policy
from claudematrix.errors import ClaudeMatrixError, PolicyRefused
from claudematrix.ids import UserID
from claudematrix.policy import admit_devices
from claudematrix.store import Device
from claudematrix.types import Audience, Label

CELLS: list[tuple[Label, Audience, bool]] = [
    # secret: only self and the owner
    (Label.SECRET, Audience.SELF, True),
    (Label.SECRET, Audience.PROJECT, False),
    (Label.SECRET, Audience.MACHINE, False),
    (Label.SECRET, Audience.TRUSTED, False),
    (Label.SECRET, Audience.ANYONE, False),
    # private: this machine (same project and same machine)
    (Label.PRIVATE, Audience.SELF, True),
    (Label.PRIVATE, Audience.PROJECT, True),
    (Label.PRIVATE, Audience.MACHINE, True),
    (Label.PRIVATE, Audience.TRUSTED, False),
    (Label.PRIVATE, Audience.ANYONE, False),
    # trusted: plus the person's trusted remote contacts
    (Label.TRUSTED, Audience.SELF, True),
    (Label.TRUSTED, Audience.PROJECT, True),
    (Label.TRUSTED, Audience.MACHINE, True),
    (Label.TRUSTED, Audience.TRUSTED, True),
    (Label.TRUSTED, Audience.ANYONE, False),
    # public: anyone
    (Label.PUBLIC, Audience.SELF, True),
    (Label.PUBLIC, Audience.PROJECT, True),
    (Label.PUBLIC, Audience.MACHINE, True),
    (Label.PUBLIC, Audience.TRUSTED, True),
    (Label.PUBLIC, Audience.ANYONE, True),
]

# The narrowest label that reaches an audience: what a refusal suggests instead.
NARROWEST_REACHING: dict[Audience, str] = {
    Audience.SELF: "secret",
    Audience.PROJECT: "private",
    Audience.MACHINE: "private",
    Audience.TRUSTED: "trusted",
    Audience.ANYONE: "public",
}


def _cell_id(cell: tuple[Label, Audience, bool]) -> str:
    label, audience, allowed = cell
    return f"{label.value}->{audience.name.lower()}:{'yes' if allowed else 'no'}"


def test_cells_cover_the_whole_table_once() -> None:
    pairs = [(label, audience) for label, audience, _ in CELLS]
    assert len(pairs) == len(set(pairs)) == len(Label) * len(Audience) == 20
    assert set(pairs) == {(lbl, aud) for lbl in Label for aud in Audience}
    # 4 labels x 4 audiences other than self: the 16 cells that can say no
    assert len([c for c in CELLS if c[1] is not Audience.SELF]) == 16


def test_audience_names_match_the_spec_columns() -> None:
    assert [a.value for a in Audience] == [
        "self",
        "same project",
        "same machine",
        "trusted remote",
        "remote",
    ]
    assert [lbl.value for lbl in Label] == ["secret", "private", "trusted", "public"]


@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_allows(cell: tuple[Label, Audience, bool]) -> None:
    label, audience, allowed = cell
    assert policy.allows(label, audience) is allowed


@pytest.mark.parametrize("cell", CELLS, ids=_cell_id)
def test_check(cell: tuple[Label, Audience, bool]) -> None:
    label, audience, allowed = cell
    if allowed:
        policy.check(label, audience, "this message", "@bob:example.org")  # no error
        return
    with pytest.raises(PolicyRefused) as caught:
        policy.check(label, audience, "this message", "@bob:example.org")
    error = caught.value
    assert isinstance(error, ClaudeMatrixError) and error.exit_code != 0
    text = str(error)
    assert "\n" not in text, "a refusal is one line"
    assert text.startswith("refused:")
    assert f"labelled {label.value}" in text, "names the label"
    assert f"is {audience.value};" in text, "names the audience"
    assert "@bob:example.org" in text, "names whom it was for"
    # never silently downgraded: the suggestion is a label that does reach them
    suggested = NARROWEST_REACHING[audience]
    assert f"label it {suggested} if" in text
    assert policy.allows(Label(suggested), audience)
    # the other way to reach a stranger, and only a stranger
    assert ("have the person trust them" in text) is (audience is Audience.ANYONE)


@pytest.mark.parametrize("cell", [c for c in CELLS if not c[2]], ids=_cell_id)
def test_refusal_names_what_was_refused(cell: tuple[Label, Audience, bool]) -> None:
    label, audience, _ = cell
    with pytest.raises(PolicyRefused, match=r"^refused: my status is labelled "):
        policy.check(label, audience, "my status", "someone in #room:example.org")


def test_labels_widen_monotonically() -> None:
    order = list(Label)
    assert order == [Label.SECRET, Label.PRIVATE, Label.TRUSTED, Label.PUBLIC]
    for narrower, wider in zip(order, order[1:], strict=False):
        assert policy.AUDIENCES_FOR[narrower] < policy.AUDIENCES_FOR[wider]


OPENNESS = [Label.SECRET, Label.PRIVATE, Label.TRUSTED, Label.PUBLIC]


@pytest.mark.parametrize("old", OPENNESS)
@pytest.mark.parametrize("new", OPENNESS)
def test_opening_up_is_moving_to_a_label_that_reaches_more(old: Label, new: Label) -> None:
    """What needs the person's confirmation: a mode change that lets more people see."""
    assert policy.opens_up(old, new) is (OPENNESS.index(new) > OPENNESS.index(old))


# --- which of a contact's devices a room key may go to ---------------------------------------

ALICE = UserID("@alice:example.org")


def _states(decided: list[Device]) -> dict[str, str]:
    return {d.device_id: d.state for d in decided}


def test_devices_are_pinned_the_first_time_a_contact_is_met() -> None:
    decided = admit_devices(ALICE, [], [("PHONE", "k1"), ("LAPTOP", "k2")])
    assert _states(decided) == {"PHONE": "pinned", "LAPTOP": "pinned"}


def test_a_new_device_or_a_changed_key_is_held_until_confirmed() -> None:
    known = [Device(ALICE, "PHONE", "k1", "pinned"), Device(ALICE, "LAPTOP", "k2", "pinned")]
    decided = admit_devices(ALICE, known, [("PHONE", "k1"), ("LAPTOP", "evil"), ("NEW", "k3")])
    assert _states(decided) == {"PHONE": "pinned", "LAPTOP": "held", "NEW": "held"}
    # still held next time: nothing but the person's confirmation lets it in
    again = admit_devices(ALICE, decided, [("PHONE", "k1"), ("NEW", "k3")])
    assert _states(again) == {"PHONE": "pinned", "NEW": "held"}


def test_a_session_of_this_machine_is_pinned_as_it_is() -> None:
    known = [Device(ALICE, "OLD", "k1", "pinned")]
    decided = admit_devices(ALICE, known, [("RECOVERED", "k9")], same_machine=True)
    assert _states(decided) == {"RECOVERED": "pinned"}
