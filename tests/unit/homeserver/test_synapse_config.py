"""homeserver.yaml for a federation-ready machine: TLS listener, whitelist, pinned peers."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from claudematrix.config import load_config
from claudematrix.errors import ConfigError
from claudematrix.federation.address import parse_federation_address
from claudematrix.federation.card import MachineCard
from claudematrix.federation.peers import add_peer
from claudematrix.federation.tls import ensure_certificate, fingerprint
from claudematrix.homeserver import homeserver_paths
from claudematrix.homeserver.synapse_config import synapse_settings


def _settings() -> dict[str, Any]:
    config = load_config()
    return synapse_settings(config, homeserver_paths(config))


def test_a_loopback_machine_has_no_federation_listener_and_federates_with_nobody(
    isolated_home: Path,
) -> None:
    settings = _settings()
    listeners = settings["listeners"]
    assert isinstance(listeners, list) and len(listeners) == 1
    assert listeners[0]["bind_addresses"] == ["127.0.0.1"]
    assert settings["federation_domain_whitelist"] == []
    assert "tls_certificate_path" not in settings


def test_a_federation_ready_machine_listens_with_tls_on_the_address_given(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_FEDERATION", "127.0.0.2:18448")
    settings = _settings()
    client, federation = settings["listeners"]
    assert client["bind_addresses"] == ["127.0.0.1"] and client["tls"] is False
    assert federation == {
        "port": 18448,
        "bind_addresses": ["127.0.0.2"],
        "type": "http",
        "tls": True,
        "x_forwarded": False,
        "resources": [{"names": ["federation"], "compress": False}],
    }
    assert Path(str(settings["tls_certificate_path"])).exists()
    assert settings["federation_domain_whitelist"] == []  # nobody until paired
    assert "federation_custom_ca_list" not in settings


def test_paired_machines_are_whitelisted_pinned_and_carved_out(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLAUDEMATRIX_FEDERATION", "127.0.0.2:18448")
    config = load_config()
    pem = ensure_certificate(tmp_path / "p.crt", tmp_path / "p.key", "127.0.0.3")
    peer = parse_federation_address("127.0.0.3:18448")
    paired, _ = add_peer(config.home, MachineCard("desk", peer, peer, fingerprint(pem)), pem)
    settings = _settings()
    assert settings["federation_domain_whitelist"] == ["127.0.0.3:18448"]
    assert settings["federation_custom_ca_list"] == [paired.cert_file]
    assert settings["federation_verify_certificates"] is True
    blocked = [ipaddress.ip_network(n) for n in settings["ip_range_blacklist"]]
    assert not any(ipaddress.ip_address("127.0.0.3") in n for n in blocked)
    assert any(ipaddress.ip_address("127.0.0.4") in n for n in blocked)


def test_a_machine_named_localhost_cannot_federate(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_config()  # first initialisation without federation: named localhost
    monkeypatch.setenv("CLAUDEMATRIX_FEDERATION", "127.0.0.2:18448")
    with pytest.raises(ConfigError, match="no other machine can reach"):
        _settings()
