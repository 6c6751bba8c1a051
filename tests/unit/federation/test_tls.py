"""This machine's federation certificate: made once, for its server name, key 0600."""

from __future__ import annotations

import stat
from pathlib import Path

from claudematrix.federation.tls import certificate_names, ensure_certificate, fingerprint


def test_the_certificate_is_made_once_for_the_server_name_with_a_private_key(
    tmp_path: Path,
) -> None:
    cert, key = tmp_path / "federation.crt", tmp_path / "federation.key"
    pem = ensure_certificate(cert, key, "127.0.0.2")
    assert certificate_names(pem) == {"127.0.0.2"}
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PRIVATE KEY" in key.read_text() and "PRIVATE KEY" not in pem
    assert ensure_certificate(cert, key, "127.0.0.2") == pem  # kept
    assert fingerprint(pem).startswith("sha256:") and len(fingerprint(pem)) == 71
    other = ensure_certificate(cert, key, "laptop.tail1.ts.net")  # another name: a new one
    assert certificate_names(other) == {"laptop.tail1.ts.net"}
    assert fingerprint(other) != fingerprint(pem)
