"""claudematrix.cli.people: what only the person may change, refused on bad input before
anything is opened (the consent itself: test_consent.py; the changes: the integration and
adversarial tiers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unit.cli.conftest import Claudematrix


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("mode", "invisible"), "unknown label 'invisible': use one of secret, private"),
        (("trust", "bob"), "'bob' is not a valid Matrix user ID: use the form @name:server"),
        (("trust", "@bob"), "'@bob' is not a valid Matrix user ID: use the form @name:server"),
        (("accept", "not an id"), "is not a valid Matrix user ID: use the form @name:server"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_anything_opens(
    claudematrix: Claudematrix, isolated_home: Path, args: tuple[str, ...], says: str
) -> None:
    ran = claudematrix(*args, "--yes")
    assert ran.code == 2 and says in ran.error
    assert not (isolated_home / "identities").exists()


def test_requests_as_text_and_json(claudematrix: Claudematrix) -> None:
    assert claudematrix("requests").out == "no message requests\n"
    assert json.loads(claudematrix("requests", "--json").out) == []
