"""Synapse's private-range blocklist with exactly the paired addresses carved out."""

from __future__ import annotations

import ipaddress

from claudematrix.federation.blocklist import SYNAPSE_DEFAULT_BLOCKLIST, blocklist_without


def _blocked(blocklist: list[str], ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in ipaddress.ip_network(n) for n in blocklist)


def test_no_peers_leaves_synapses_blocklist_whole() -> None:
    assert blocklist_without([]) == list(SYNAPSE_DEFAULT_BLOCKLIST)


def test_exactly_the_paired_addresses_are_carved_out() -> None:
    peers = [ipaddress.ip_address(ip) for ip in ("127.0.0.2", "100.101.102.103", "fd7a::7")]
    carved = blocklist_without(peers)
    for ip in ("127.0.0.2", "100.101.102.103", "fd7a::7"):
        assert not _blocked(carved, ip)
    # Everything else in those ranges, and every other range, stays blocked.
    for ip in (
        "127.0.0.1",
        "127.0.0.3",
        "127.255.255.255",
        "100.101.102.104",
        "100.64.0.1",
        "fd7a::8",
        "10.0.0.1",
        "192.168.1.1",
        "169.254.1.1",
        "::1",
    ):
        assert _blocked(carved, ip), ip


def test_a_public_peer_address_changes_nothing() -> None:
    assert blocklist_without([ipaddress.ip_address("8.8.8.8")]) == list(SYNAPSE_DEFAULT_BLOCKLIST)
