"""ADDRESS:PORT of a federation listener: parsed, shown, refused in one line."""

from __future__ import annotations

import pytest

from claudematrix.errors import ConfigError
from claudematrix.federation.address import parse_federation_address


@pytest.mark.parametrize(
    ("text", "host", "port", "shown"),
    [
        ("127.0.0.2:8448", "127.0.0.2", 8448, "127.0.0.2:8448"),
        (" 100.64.0.7:18448 ", "100.64.0.7", 18448, "100.64.0.7:18448"),
        ("[fd7a::7]:8448", "fd7a::7", 8448, "[fd7a::7]:8448"),
        ("Laptop.tail1.ts.net:8448", "laptop.tail1.ts.net", 8448, "laptop.tail1.ts.net:8448"),
    ],
)
def test_federation_addresses_parse(text: str, host: str, port: int, shown: str) -> None:
    address = parse_federation_address(text)
    assert (address.host, address.port, str(address)) == (host, port, shown)


@pytest.mark.parametrize(
    "text",
    ["127.0.0.2", "127.0.0.2:0", "127.0.0.2:99999", "fd7a::7:8448", "a b:1", ":8448", "[::1]"],
)
def test_bad_federation_addresses_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ConfigError, match="ADDRESS:PORT|out of range"):
        parse_federation_address(text)


def test_unspecified_address_is_a_place_to_bind_not_a_name() -> None:
    assert parse_federation_address("0.0.0.0:8448").unspecified
    assert not parse_federation_address("127.0.0.1:8448").unspecified
