"""claudematrix.types: labels are parsed by name or refused with the list of names;
audiences are ordered nearest first."""

from __future__ import annotations

import pytest

from claudematrix.errors import BadLabel
from claudematrix.types import Audience, Label


@pytest.mark.parametrize("text", ["secret", "PRIVATE", " Trusted ", "public"])
def test_label_parse_accepts_names(text: str) -> None:
    assert Label.parse(text).value == text.strip().lower()


@pytest.mark.parametrize("text", ["", "top-secret", "internal", "pub"])
def test_label_parse_refuses_unknown_names(text: str) -> None:
    with pytest.raises(BadLabel, match="use one of secret, private, trusted, public"):
        Label.parse(text)


def test_audiences_are_ordered_nearest_first() -> None:
    assert list(Audience) == [
        Audience.SELF,
        Audience.PROJECT,
        Audience.MACHINE,
        Audience.TRUSTED,
        Audience.ANYONE,
    ]
