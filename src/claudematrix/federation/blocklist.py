"""Synapse's blocklist of private and reserved ranges, with exactly the paired peers let through.

Synapse refuses to federate with loopback, private, carrier-grade NAT (Tailscale) and other
reserved addresses. A paired machine on a LAN or a tailnet sits in one of those ranges; for
IP-literal server names Synapse ignores its allowlist, so the peer's own addresses (each a
single /32 or /128) are cut out of the blocklist and every other address in the range stays
blocked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .address import IPAddress

__all__ = ["SYNAPSE_DEFAULT_BLOCKLIST", "blocklist_without"]

# Synapse 1.163's DEFAULT_IP_RANGE_BLOCKLIST (synapse/config/server.py).
SYNAPSE_DEFAULT_BLOCKLIST = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def blocklist_without(peers: Iterable[IPAddress]) -> list[str]:
    """The default blocklist minus exactly the addresses in `peers`."""
    networks: list[Network] = [ipaddress.ip_network(n) for n in SYNAPSE_DEFAULT_BLOCKLIST]
    for ip in set(peers):
        hole = ipaddress.ip_network(ip)
        kept: list[Network] = []
        for net in networks:
            if net.version == hole.version and hole.subnet_of(net):  # type: ignore[arg-type]
                kept.extend(net.address_exclude(hole))  # type: ignore[arg-type]
            else:
                kept.append(net)
        networks = kept
    return [str(n) for n in networks]
