"""ADDRESS:PORT of a federation listener (CLAUDEMATRIX_FEDERATION), and of a server name."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from claudematrix.errors import ConfigError

__all__ = ["FederationAddress", "parse_federation_address", "IPAddress"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


@dataclass(frozen=True)
class FederationAddress:
    """A host (IP literal or DNS name, IPv6 without brackets) and a port."""

    host: str
    port: int

    @property
    def ip(self) -> IPAddress | None:
        """The host as an IP address, if it is one."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    @property
    def unspecified(self) -> bool:
        """0.0.0.0 or ::, every interface: a place to bind, never a name to reach."""
        return self.ip is not None and self.ip.is_unspecified

    @property
    def named_host(self) -> str:
        """The host as a Matrix server name writes it (IPv6 in brackets): what server ACLs
        match, which ignore the port."""
        ip = self.ip
        return f"[{self.host}]" if ip is not None and ip.version == 6 else self.host

    def __str__(self) -> str:
        return f"{self.named_host}:{self.port}"


def parse_federation_address(text: str, what: str = "CLAUDEMATRIX_FEDERATION") -> FederationAddress:
    """`ADDRESS:PORT` (IPv6 as `[ADDR]:PORT`); a one-line ConfigError says how to write it."""
    raw = text.strip()
    how = (
        f"{what} {text!r} must be ADDRESS:PORT, the address other machines reach this one at "
        "and a port, e.g. 100.64.0.7:8448 (IPv6: [fd7a::7]:8448)"
    )
    if raw.startswith("["):
        host, sep, rest = raw[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(how)
        port_text = rest[1:]
    else:
        host, sep, port_text = raw.rpartition(":")
        if not sep or ":" in host:
            raise ConfigError(how)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(how) from None
    if not 0 < port < 65536:
        raise ConfigError(f"{what}: port {port} is out of range: use 1-65535")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not _HOSTNAME.match(host):
            raise ConfigError(how) from None
        return FederationAddress(host.lower(), port)
    return FederationAddress(str(ip), port)
