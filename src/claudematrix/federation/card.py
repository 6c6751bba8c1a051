"""A machine's card: the one line the person copies from one machine to the other.

    claudematrix-machine <name> <server name> <federation address> sha256:<certificate hash>

The server name is what Matrix IDs on that machine end in (and what its peers connect to);
the federation address is where its listener is bound; the hash pins its certificate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from claudematrix.errors import ConfigError, InvalidInput

from .address import FederationAddress, parse_federation_address

__all__ = ["MachineCard", "parse_card", "machine_label", "CARD_TAG"]

CARD_TAG = "claudematrix-machine"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,62}$")
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOW = "copy the whole line that `claudematrix machine card` printed on the other machine"


@dataclass(frozen=True)
class MachineCard:
    name: str
    server_name: FederationAddress
    address: FederationAddress
    fingerprint: str

    def __str__(self) -> str:
        return f"{CARD_TAG} {self.name} {self.server_name} {self.address} {self.fingerprint}"


def machine_label(text: str) -> str:
    """A machine name as cards carry it: one word of letters, digits, '.', '_' and '-'."""
    cleaned = re.sub(r"[^A-Za-z0-9._\-]+", "-", text).strip("-._") or "machine"
    return cleaned[:63]


def parse_card(text: str) -> MachineCard:
    parts = text.split()
    if len(parts) != 5 or parts[0] != CARD_TAG:
        raise InvalidInput(f"that is not a machine card: {_HOW}")
    _tag, name, server, address, print_ = parts
    if not _NAME.match(name):
        raise InvalidInput(f"the card's machine name {name!r} is malformed: {_HOW}")
    if not _FINGERPRINT.match(print_):
        raise InvalidInput(f"the card's certificate fingerprint is malformed: {_HOW}")
    try:
        server_name = parse_federation_address(server, "the card's server name")
        bound = parse_federation_address(address, "the card's federation address")
    except ConfigError:  # about a card, which is the person's input: say how to fix it
        raise InvalidInput(f"the card's server name or address is malformed: {_HOW}") from None
    return MachineCard(name, server_name, bound, print_)
