"""This machine's federation certificate (made once, key 0600) and a peer's, as seen on the wire.

Each machine's certificate is self-signed and is its own authority: a peer pins exactly this
certificate (Synapse's `federation_custom_ca_list`), so no public CA and no DNS name is needed,
and a machine with another certificate is refused even under the same name.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from claudematrix.errors import ConfigError, HomeserverUnavailable
from claudematrix.paths import write_private

from .address import FederationAddress

__all__ = ["ensure_certificate", "fingerprint", "fetch_certificate", "certificate_names"]

_VALID_DAYS = 3650
_FETCH_TIMEOUT_S = 5.0


def fingerprint(pem: str) -> str:
    """`sha256:<hex>` of the certificate's DER bytes, as cards carry it."""
    der = ssl.PEM_cert_to_DER_cert(pem)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def certificate_names(pem: str) -> set[str]:
    """The DNS names and IP addresses the certificate is for."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {str(n) for n in san.get_values_for_type(x509.DNSName)}
    return names | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def ensure_certificate(cert_path: Path, key_path: Path, host: str) -> str:
    """The certificate (PEM) for this machine's server name `host`, made on first use and
    kept; made anew only if it is missing, unreadable or for another name."""
    try:
        pem = cert_path.read_text()
        if key_path.exists() and host in certificate_names(pem):
            return pem
    except (OSError, ValueError):
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
        # Its own authority: the peer trusts exactly this certificate, nothing it could sign.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(key_path, key_pem)
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    write_private(cert_path, pem)
    return pem


def fetch_certificate(address: FederationAddress) -> str:
    """The certificate a federation listener presents (PEM), unchecked: the caller compares
    its fingerprint with the one the person copied."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # pinning by fingerprint follows; no CA is involved
    try:
        with (
            socket.create_connection((address.host, address.port), _FETCH_TIMEOUT_S) as raw,
            context.wrap_socket(raw, server_hostname=address.host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise HomeserverUnavailable(
            f"cannot reach {address} to check its certificate ({exc}): is that machine's "
            "homeserver up (`claudematrix up` there), and can this machine reach it?"
        ) from None
    if not der:
        raise ConfigError(f"{address} presented no certificate: is it a ClaudeMatrix machine?")
    return ssl.DER_cert_to_PEM_cert(der)
