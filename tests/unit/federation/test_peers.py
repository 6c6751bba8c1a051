"""The paired machines: pinned once, a changed certificate refused, removed cleanly."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from claudematrix.errors import PairingRefused
from claudematrix.federation.address import parse_federation_address
from claudematrix.federation.card import MachineCard
from claudematrix.federation.peers import add_peer, load_peers, remove_peer, set_peer_trusted
from claudematrix.federation.tls import ensure_certificate, fingerprint


def _card(name: str = "laptop", server: str = "127.0.0.2:8448", mark: str = "a") -> MachineCard:
    address = parse_federation_address(server)
    return MachineCard(name, address, address, "sha256:" + mark * 64)


def test_pairing_pins_a_machine_once_and_refuses_a_changed_certificate(tmp_path: Path) -> None:
    home = tmp_path / "state"
    pem = ensure_certificate(tmp_path / "c.crt", tmp_path / "c.key", "127.0.0.2")
    address = parse_federation_address("127.0.0.2:8448")
    card = MachineCard("laptop", address, address, fingerprint(pem))
    paired, new = add_peer(home, card, pem)
    assert new and paired.ips == ("127.0.0.2",)
    assert Path(paired.cert_file).read_text() == pem
    assert stat.S_IMODE(Path(paired.cert_file).stat().st_mode) == 0o600
    assert add_peer(home, card, pem) == (paired, False)
    impostor = MachineCard(card.name, card.server_name, card.address, "sha256:" + "b" * 64)
    with pytest.raises(PairingRefused, match="another certificate"):
        add_peer(home, impostor, pem)
    same_name = _card("laptop", "127.0.0.3:8448")
    with pytest.raises(PairingRefused, match="already paired"):
        add_peer(home, same_name, pem)
    assert load_peers(home) == [paired]
    assert remove_peer(home, "127.0.0.2:8448") == paired
    assert load_peers(home) == [] and not Path(paired.cert_file).exists()
    assert remove_peer(home, "laptop") is None


def test_a_paired_machine_can_be_trusted_as_a_whole_and_untrusted(tmp_path: Path) -> None:
    home = tmp_path / "state"
    pem = ensure_certificate(tmp_path / "c.crt", tmp_path / "c.key", "127.0.0.2")
    address = parse_federation_address("127.0.0.2:8448")
    paired, _new = add_peer(home, MachineCard("laptop", address, address, fingerprint(pem)), pem)
    assert not paired.trusted
    assert set_peer_trusted(home, "nobody", True) is None
    trusted = set_peer_trusted(home, "laptop", True)
    assert trusted is not None and trusted.trusted and load_peers(home) == [trusted]
    assert set_peer_trusted(home, "127.0.0.2:8448", False) == paired
    assert load_peers(home) == [paired]
