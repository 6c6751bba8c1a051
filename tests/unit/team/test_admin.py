"""Registration tokens as `server token|tokens` shows them."""

from __future__ import annotations

import time

import pytest

from claudematrix.errors import ConfigError
from claudematrix.team.admin import RegistrationToken, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("12h", 43200), ("7d", 604800), ("2W", 1209600)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "7", "0d", "1y", "-1d", "d7"])
def test_a_duration_that_is_not_one_says_what_to_give(bad: str) -> None:
    with pytest.raises(ConfigError, match="e.g. 7d"):
        parse_duration(bad)


def test_a_token_is_valid_used_up_or_expired() -> None:
    now_ms = int(time.time() * 1000)
    assert RegistrationToken("t", None, 0, 40, None).state == "valid"
    assert RegistrationToken("t", 2, 1, 0, now_ms + 60_000).state == "valid"
    assert RegistrationToken("t", 2, 1, 1, None).state == "used up"  # a pending use counts
    assert RegistrationToken("t", None, 0, 0, now_ms - 1).state == "expired"
    assert RegistrationToken("t", 1, 0, 1, None).as_json()["state"] == "used up"
