"""Logins moved aside and put back: nothing of an identity's login is ever deleted."""

from __future__ import annotations

from pathlib import Path

from claudematrix.local import layout
from claudematrix.service.relocation import move_logins, restore_logins


def _identity(root: Path, slug: str, *, store: bool = True) -> Path:
    folder = root / slug
    (folder / layout.CRYPTO_DIR).mkdir(parents=True)
    (folder / layout.ACCOUNT).write_text(f'{{"user_id": "@{slug}:old"}}')
    if store:
        (folder / layout.STORE_DB).write_text("db")
    return folder


def test_logins_go_aside_and_come_back_where_none_was_made_since(tmp_path: Path) -> None:
    identities, aside = tmp_path / "identities", tmp_path / "aside"
    _identity(identities, "alpha")
    _identity(identities, "_machine", store=False)
    moved = move_logins(identities, aside)
    assert moved == [("alpha", identities / "alpha" / layout.STORE_DB)]
    assert not (identities / "alpha" / layout.ACCOUNT).exists()
    assert (identities / "alpha" / layout.STORE_DB).exists()  # the mail stays
    assert (aside / "_machine" / layout.ACCOUNT).exists()

    (identities / "_machine" / layout.ACCOUNT).write_text('{"user_id": "@m:new"}')  # made since
    restore_logins(aside, identities)
    assert "@alpha:old" in (identities / "alpha" / layout.ACCOUNT).read_text()
    assert "@m:new" in (identities / "_machine" / layout.ACCOUNT).read_text()
    assert "@_machine:old" in (aside / "_machine" / layout.ACCOUNT).read_text()  # kept aside
    assert not (aside / "alpha").exists()


def test_nothing_to_move_or_restore(tmp_path: Path) -> None:
    assert move_logins(tmp_path / "none", tmp_path / "aside") == []
    restore_logins(tmp_path / "missing", tmp_path / "identities")
    assert not (tmp_path / "identities").exists()
