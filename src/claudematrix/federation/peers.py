"""The machines this one is paired with: <state dir>/machines.json and their pinned
certificates in <state dir>/machines/ (all 0600 in 0700 dirs)."""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from claudematrix.errors import PairingRefused, StateCorrupt
from claudematrix.local import layout
from claudematrix.paths import ensure_dir, read_json, write_json_private, write_private

from .address import FederationAddress, IPAddress, parse_federation_address
from .card import MachineCard

__all__ = [
    "PairedMachine",
    "load_peers",
    "add_peer",
    "remove_peer",
    "set_peer_trusted",
    "peer_addresses",
]


@dataclass(frozen=True)
class PairedMachine:
    name: str
    server_name: str  # what its Matrix IDs end in, and where its homeserver is reached
    address: str  # where its federation listener is bound (from its card)
    fingerprint: str  # sha256 of the certificate pinned for it
    cert_file: str  # that certificate, PEM, under <state dir>/machines/
    ips: tuple[str, ...]  # what its server name resolved to when it was added
    paired_at: int  # ms since the epoch
    # The person trusts every session there as a trusted remote contact (machine trust).
    trusted: bool = False

    @property
    def server(self) -> FederationAddress:
        return parse_federation_address(self.server_name, "a paired machine's server name")


def _file(home: Path) -> Path:
    return home / layout.PAIRED_MACHINES


def load_peers(home: Path) -> list[PairedMachine]:
    data = read_json(_file(home))
    if data is None:
        return []
    try:
        return [
            PairedMachine(**{**entry, "ips": tuple(entry.get("ips", ()))})
            for entry in data["machines"]
        ]
    except (KeyError, TypeError) as exc:
        raise StateCorrupt(
            f"{_file(home)} is malformed ({exc}): move it aside and pair the machines again"
        ) from None


def _save(home: Path, peers: list[PairedMachine]) -> None:
    write_json_private(_file(home), {"machines": [asdict(p) for p in peers]})


def resolve(server: FederationAddress) -> tuple[str, ...]:
    """The addresses a server name leads to (what the homeserver will connect to)."""
    if server.ip is not None:
        return (str(server.ip),)
    try:
        found = socket.getaddrinfo(server.host, server.port, proto=socket.IPPROTO_TCP)
    except OSError:
        return ()
    return tuple(sorted({str(info[4][0]) for info in found}))


def add_peer(home: Path, card: MachineCard, pem: str) -> tuple[PairedMachine, bool]:
    """Pin `card`'s machine with its certificate `pem` (already checked against the card).
    Returns (the paired machine, whether it is new)."""
    peers = load_peers(home)
    server = str(card.server_name)
    for peer in peers:
        if peer.server_name == server:
            if peer.fingerprint == card.fingerprint:
                return peer, False
            raise PairingRefused(
                f"{server} is already paired as {peer.name}, with another certificate: if "
                "that machine really has a new one, remove it first (`claudematrix machine "
                f"remove {peer.name}`) and add its new card"
            )
        if peer.name == card.name:
            raise PairingRefused(
                f"a machine named {card.name} is already paired ({peer.server_name}): remove "
                "it first, or give the new one another CLAUDEMATRIX_MACHINE_NAME"
            )
    certs = ensure_dir(home / layout.PAIRED_CERTS)
    cert_file = certs / (re.sub(r"[^A-Za-z0-9._-]", "_", server) + ".pem")
    write_private(cert_file, pem)
    paired = PairedMachine(
        name=card.name,
        server_name=server,
        address=str(card.address),
        fingerprint=card.fingerprint,
        cert_file=str(cert_file),
        ips=resolve(card.server_name),
        paired_at=int(time.time() * 1000),
    )
    _save(home, [*peers, paired])
    return paired, True


def remove_peer(home: Path, which: str) -> PairedMachine | None:
    """Unpair the machine named `which` (or with that server name); None if none is."""
    peers = load_peers(home)
    gone = next((p for p in peers if which in (p.name, p.server_name)), None)
    if gone is None:
        return None
    _save(home, [p for p in peers if p is not gone])
    Path(gone.cert_file).unlink(missing_ok=True)
    return gone


def set_peer_trusted(home: Path, which: str, trusted: bool) -> PairedMachine | None:
    """Trust (or stop trusting) the machine named `which` (or with that server name) as a
    whole; None if no such machine is paired."""
    peers = load_peers(home)
    found = next((p for p in peers if which in (p.name, p.server_name)), None)
    if found is None:
        return None
    changed = replace(found, trusted=trusted)
    _save(home, [changed if p is found else p for p in peers])
    return changed


def peer_addresses(peers: list[PairedMachine]) -> list[IPAddress]:
    return [ipaddress.ip_address(ip) for p in peers for ip in p.ips]
