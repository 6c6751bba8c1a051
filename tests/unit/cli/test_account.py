"""claudematrix.cli.account: a password too short is refused before anything is opened
(setting one and recovering an account: the integration and adversarial tiers)."""

from __future__ import annotations

from pathlib import Path

from unit.cli.conftest import Claudematrix


def test_a_short_password_is_refused(claudematrix: Claudematrix, isolated_home: Path) -> None:
    ran = claudematrix("password", "--new-password", "short")
    assert (ran.code, ran.out) == (2, "")
    assert ran.err == (
        "claudematrix: choose a password of at least 8 characters; "
        "see `claudematrix password --help`\n"
    )
    assert not (isolated_home / "identities").exists()
