"""claudematrix.service.machine: which accounts, and which of their devices, are this
machine's."""

from __future__ import annotations

import json
from pathlib import Path

from claudematrix.config import load_config
from claudematrix.ids import UserID
from claudematrix.service.machine import is_local, is_local_device, local_users

A, B = UserID("@cc-a:localhost"), UserID("@cc-b:localhost")


def _account(home: Path, slug: str, user: UserID, device: str) -> None:
    folder = home / "identities" / slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "account.json").write_text(json.dumps({"user_id": user, "device_id": device}))


def test_a_session_that_just_started_is_local_at_once(isolated_home: Path) -> None:
    config = load_config()
    _account(isolated_home, "a", A, "DA")
    assert is_local(config, A) and not is_local(config, B)
    _account(isolated_home, "b", B, "DB")  # right after B was asked about: no waiting
    assert is_local(config, B)
    assert local_users(config) == {A, B}


def test_only_the_device_in_the_account_file_is_this_machines(isolated_home: Path) -> None:
    config = load_config()
    _account(isolated_home, "a", A, "DA")
    assert is_local_device(config, A, "DA")
    assert not is_local_device(config, A, "ADDED-ELSEWHERE")
    assert not is_local_device(config, A, "")
    assert not is_local_device(config, B, "DA")
    _account(isolated_home, "a", A, "NEW")  # a new device after a lost store
    assert is_local_device(config, A, "NEW")
