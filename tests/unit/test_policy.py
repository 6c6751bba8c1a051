"""The privacy table (README, "Privacy modes"), cell by cell: refuse, never downgrade."""

from __future__ import annotations

import pytest

from claudematrix import policy
from claudematrix.errors import BadLabel, PolicyRefused
from claudematrix.types import Audience, Label

S, P, T, U = Label.SECRET, Label.PRIVATE, Label.TRUSTED, Label.PUBLIC
SELF, PROJECT, MACHINE, TRUSTED, ANYONE = (
    Audience.SELF,
    Audience.PROJECT,
    Audience.MACHINE,
    Audience.TRUSTED,
    Audience.ANYONE,
)

# README, "Privacy modes": label -> (self/owner, same project,
# same machine, trusted remote, anyone)
SPEC_TABLE: dict[Label, tuple[bool, bool, bool, bool, bool]] = {
    S: (True, False, False, False, False),
    P: (True, True, True, False, False),
    T: (True, True, True, True, False),
    U: (True, True, True, True, True),
}
AUDIENCES = (SELF, PROJECT, MACHINE, TRUSTED, ANYONE)
CELLS = [
    (label, audience, row[i])
    for label, row in SPEC_TABLE.items()
    for i, audience in enumerate(AUDIENCES)
]


def test_table_covers_every_label_and_audience() -> None:
    assert set(SPEC_TABLE) == set(Label)
    assert set(AUDIENCES) == set(Audience)
    assert list(Audience) == list(AUDIENCES)  # nearest first


@pytest.mark.parametrize(("label", "audience", "allowed"), CELLS)
def test_allows_matches_the_spec(label: Label, audience: Audience, allowed: bool) -> None:
    assert policy.allows(label, audience) is allowed


@pytest.mark.parametrize(("label", "audience", "allowed"), CELLS)
def test_check_refuses_exactly_the_forbidden_cells(
    label: Label, audience: Audience, allowed: bool
) -> None:
    if allowed:
        policy.check(label, audience, "this message", "Bob")
        return
    with pytest.raises(PolicyRefused) as caught:
        policy.check(label, audience, "this message", "Bob")
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("refused:")
    assert f"labelled {label.value}" in text
    assert "Bob" in text and audience.value in text


@pytest.mark.parametrize(
    ("label", "audience", "suggested"),
    [
        (S, PROJECT, "private"),
        (S, MACHINE, "private"),
        (S, TRUSTED, "trusted"),
        (P, TRUSTED, "trusted"),
        (S, ANYONE, "public"),
        (P, ANYONE, "public"),
        (T, ANYONE, "public"),
    ],
)
def test_refusal_names_the_narrowest_label_that_would_reach(
    label: Label, audience: Audience, suggested: str
) -> None:
    with pytest.raises(PolicyRefused, match=f"label it {suggested} if"):
        policy.check(label, audience, "this", "them")


def test_labels_widen_monotonically() -> None:
    order = list(Label)
    assert order == [S, P, T, U]
    for narrower, wider in zip(order, order[1:], strict=False):
        assert policy.AUDIENCES_FOR[narrower] < policy.AUDIENCES_FOR[wider]


@pytest.mark.parametrize("text", ["secret", "PRIVATE", " Trusted ", "public"])
def test_label_parse_accepts_names(text: str) -> None:
    assert Label.parse(text).value == text.strip().lower()


@pytest.mark.parametrize("text", ["", "top-secret", "internal", "pub"])
def test_label_parse_refuses_unknown_names(text: str) -> None:
    with pytest.raises(BadLabel, match="use one of secret, private, trusted, public"):
        Label.parse(text)
