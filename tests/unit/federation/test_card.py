"""A machine's card: one line that reads back, and malformed ones refused."""

from __future__ import annotations

import pytest

from claudematrix.errors import InvalidInput
from claudematrix.federation.address import parse_federation_address
from claudematrix.federation.card import MachineCard, machine_label, parse_card


def _card(name: str = "laptop", server: str = "127.0.0.2:8448", mark: str = "a") -> MachineCard:
    address = parse_federation_address(server)
    return MachineCard(name, address, address, "sha256:" + mark * 64)


def test_a_card_is_one_line_that_reads_back() -> None:
    card = _card()
    line = str(card)
    assert "\n" not in line and line.startswith("claudematrix-machine laptop ")
    assert parse_card(line) == card
    assert parse_card("  " + line.replace(" ", "   ") + "\n") == card  # pasted loosely


@pytest.mark.parametrize(
    "text",
    [
        "",
        "claudematrix-machine laptop 127.0.0.2:8448 127.0.0.2:8448",
        "claudematrix-machine laptop 127.0.0.2:8448 127.0.0.2:8448 sha256:xyz",
        "claudematrix-machine lap/top 127.0.0.2:8448 127.0.0.2:8448 sha256:" + "a" * 64,
        "claudematrix-machine laptop 127.0.0.2 127.0.0.2:8448 sha256:" + "a" * 64,
        "other-tool laptop 127.0.0.2:8448 127.0.0.2:8448 sha256:" + "a" * 64,
    ],
)
def test_malformed_cards_are_refused_with_what_to_copy(text: str) -> None:
    with pytest.raises(InvalidInput, match="claudematrix machine card"):
        parse_card(text)


def test_machine_labels_are_one_word() -> None:
    assert machine_label("Jo's MacBook Pro") == "Jo-s-MacBook-Pro"
    assert machine_label("...") == "machine"
