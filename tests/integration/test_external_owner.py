"""A person's existing account on an external homeserver becomes the owner identity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from claudematrix.homeserver import register_account

from .conftest import SharedHomeserver

pytestmark = pytest.mark.integration


def _cli(
    home: Path, hs: SharedHomeserver, user: str, password: str, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE")}
    env.update(
        CLAUDEMATRIX_HOME=str(home),
        CLAUDEMATRIX_HOMESERVER=hs.url,
        CLAUDEMATRIX_USER=user,
        CLAUDEMATRIX_PASSWORD=password,
        CLAUDEMATRIX_REGISTRATION_SHARED_SECRET=(
            hs.home / "homeserver" / "registration_shared_secret"
        )
        .read_text()
        .strip(),
    )
    return subprocess.run(
        [sys.executable, "-m", "claudematrix", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_owner_logs_in_with_the_persons_password(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    hs = shared_homeserver
    secret = (hs.home / "homeserver" / "registration_shared_secret").read_text().strip()
    localpart = f"person-{uuid.uuid4().hex[:6]}"
    account = register_account(hs.url, secret, localpart, "correct horse battery")

    wrong = _cli(tmp_path / "a", hs, account.user_id, "not the password", "whoami", "--json")
    assert wrong.returncode != 0
    assert wrong.stderr.startswith("claudematrix: ") and wrong.stderr.count("\n") == 1
    assert "password" in wrong.stderr and "Traceback" not in wrong.stderr

    right = _cli(tmp_path / "b", hs, account.user_id, "correct horse battery", "whoami", "--json")
    assert right.returncode == 0, right.stderr
    assert json.loads(right.stdout)["user_id"] == account.user_id
    stored = json.loads((tmp_path / "b" / "identities" / "owner" / "account.json").read_text())
    assert stored["password"] is None  # the person's password is never stored
