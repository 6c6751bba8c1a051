"""Matrix ID syntax: the one place that validates it."""

from __future__ import annotations

import pytest

from claudematrix.errors import InvalidInput
from claudematrix.ids import (
    UserID,
    is_room_ref,
    is_user_id,
    localpart,
    parse_identity_name,
    parse_room_alias,
    parse_room_id,
    parse_user_id,
    sanitize_localpart,
    server_name,
)


@pytest.mark.parametrize(
    "text",
    [
        "@alice:localhost",
        "@cc-1a2b3c4d:localhost",
        "@a.b_c=d-e/f+g:example.org",
        "@bob:matrix.example.org:8448",
        "@x:127.0.0.1:18008",
        "@v6:[::1]:8448",
        "@v6:[2001:db8::1]",
    ],
)
def test_valid_user_ids(text: str) -> None:
    assert parse_user_id(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "@",
        "@alice",
        "alice:localhost",
        "@:localhost",
        "@Alice:localhost",
        "@al ice:localhost",
        "@alice:",
        "@alice:local host",
        "@alice:host:port",
        "@alice:host:123456",
        "@" + "a" * 250 + ":localhost",
        "@alice:localhost\n",
    ],
)
def test_invalid_user_ids(text: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid Matrix user ID: use the form @name"):
        parse_user_id(text)


def test_room_ids_and_aliases() -> None:
    assert parse_room_id("!AbC123:localhost") == "!AbC123:localhost"
    # Room version 12: the ID is a hash with no server part.
    v12 = "!YWZuWxMSxbdz7Jtqmx3uyPP1DGpBjxmmNee9x-_r-Dk"
    assert parse_room_id(v12) == v12
    assert parse_room_alias("#cm-lobby-1234:localhost") == "#cm-lobby-1234:localhost"
    for bad in ("!", "!:x", "room:x", "!a b:x", "!a:bad server"):
        with pytest.raises(InvalidInput, match="room ID"):
            parse_room_id(bad)
    for bad in ("#nope", "#:x", "#a b:x"):
        with pytest.raises(InvalidInput, match="room alias"):
            parse_room_alias(bad)


def test_classifiers() -> None:
    assert is_user_id("@a:b") and not is_user_id("alice")
    assert is_room_ref("!a:b") and is_room_ref("#a:b") and not is_room_ref("@a:b")


def test_localpart_and_server_name() -> None:
    user = UserID("@cc-bob:matrix.example.org:8448")
    assert localpart(user) == "cc-bob"
    assert server_name(user) == "matrix.example.org:8448"


@pytest.mark.parametrize(
    "text",
    ["owner", "alpha", "A1", "1a2b3c4d-aaaa-bbbb-cccc-0123456789ab", "x.y_z-1", "a" * 64],
)
def test_valid_identity_names(text: str) -> None:
    assert parse_identity_name(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "../x",
        "a/b",
        "_machine",
        "-x",
        ".hidden",
        "a b",
        "a" * 65,
        "é",
        "alpha\n",
    ],
)
def test_invalid_identity_names(text: str) -> None:
    with pytest.raises(InvalidInput, match="not a usable session name"):
        parse_identity_name(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Alice", "alice"),
        ("John Smith", "john-smith"),
        ("..weird..", "weird"),
        ("日本", "x"),
        ("a_b.c=d-e", "a_b.c=d-e"),
    ],
)
def test_sanitize_localpart(text: str, expected: str) -> None:
    assert sanitize_localpart(text) == expected
    parse_user_id(f"@{sanitize_localpart(text)}:localhost")  # always a valid localpart
