"""Credentials and what the homeserver tells outsiders: a lost credentials file never becomes
a silent new account, password guessing is throttled, and nobody outside a room can tell
which sessions exist."""

from __future__ import annotations

import json
import secrets
import urllib.request
from pathlib import Path

import pytest

from integration.harness import (
    Machine,
    Raw,
    Who,
    new_tag,
    one_line_refusal,
    project_dir,
    start_all,
    subjects_from,
)
from support import wait_until


@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
def test_lost_credentials_are_refused_then_recovered_with_history_and_id(
    damage: str, m1: Machine, tmp_path: Path
) -> None:
    tag = new_tag()
    proj = project_dir(tmp_path, f"projL{tag}")
    me, peer = Who(m1, f"me{tag}", proj), Who(m1, f"peer{tag}", proj)
    start_all(me, peer)
    peer.run("send", me.user_id, f"before {tag}", "-s", f"{tag} before")
    wait_until(lambda: subjects_from(me.inbox(), peer.user_id, tag), 30, "the first mail")
    account = me.dir / "account.json"
    identities = sorted(p.name for p in (m1.home / "identities").iterdir())
    if damage == "deleted":
        account.unlink()
    else:
        account.write_text("{ not json")
        line = one_line_refusal(me.run("inbox", ok=False))
        assert "account.json" in line and "moved" in line
    proc = me.run("inbox", ok=False)
    line = one_line_refusal(proc)
    assert proc.returncode == 3
    assert "recover" in line and me.user_id in line, line
    assert not account.exists(), "a new account was made behind the person's back"
    assert sorted(p.name for p in (m1.home / "identities").iterdir()) == identities

    assert me.user_id in me.run("recover").stdout
    assert json.loads(account.read_text())["user_id"] == me.user_id
    assert account.stat().st_mode & 0o777 == 0o600
    assert subjects_from(me.inbox(), peer.user_id, tag) == {f"{tag} before"}
    peer.run("send", me.user_id, f"after {tag}", "-s", f"{tag} after")
    wait_until(
        lambda: subjects_from(me.inbox(), peer.user_id, tag) == {f"{tag} before", f"{tag} after"},
        30,
        "mail to the same Matrix ID after recovery",
    )
    me.run("send", peer.user_id, f"reply {tag}", "-s", f"{tag} reply")


def test_a_lost_machine_account_logs_in_again(m1: Machine, tmp_path: Path) -> None:
    tag = new_tag()
    proj = project_dir(tmp_path, f"projM{tag}")
    first = Who(m1, f"first{tag}", proj).start()
    account = m1.home / "identities" / "_machine" / "account.json"
    machine_id = json.loads(account.read_text())["user_id"]
    account.unlink()
    late = Who(m1, f"late{tag}", proj).start()  # the machine invites it: needs its account
    assert json.loads(account.read_text())["user_id"] == machine_id
    assert late.contacts()[first.user_id]["audience"] == "same project"


def _login(url: str, user: str, password: str) -> tuple[int, dict[str, object]]:
    raw = Raw(url, "", "")
    return raw.attempt(
        "POST",
        "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user},
            "password": password,
        },
    )


def test_password_guessing_is_throttled(m1: Machine, tmp_path: Path) -> None:
    tag = new_tag()
    me = Who(m1, f"me{tag}", project_dir(tmp_path, f"projG{tag}")).start()
    statuses = [_login(m1.url, me.user_id, secrets.token_hex(8))[0] for _ in range(12)]
    assert 429 in statuses, statuses
    assert statuses.index(429) <= 6, statuses
    status, body = _login(m1.url, me.user_id, secrets.token_hex(8))
    assert status == 429 and int(str(body.get("retry_after_ms", 0))) > 1000, body


def test_outsiders_cannot_tell_which_sessions_exist(
    m1: Machine, stranger: Raw, tmp_path: Path
) -> None:
    tag = new_tag()
    me = Who(m1, f"me{tag}", project_dir(tmp_path, f"projX{tag}")).start()
    ghost = f"@cc-ghost{tag}:localhost"
    anonymous = Raw(m1.url, "", "")

    def as_seen(raw: Raw, path: str) -> tuple[int, object]:
        status, body = raw.attempt("GET", path)
        return status, body.get("errcode") if isinstance(body, dict) else None

    for user in (me.user_id, ghost):
        assert as_seen(anonymous, f"/_matrix/client/v3/profile/{anonymous.q(user)}")[0] == 401
    # With an account, but no room in common: the same answer for a session and for no one.
    real = as_seen(stranger, f"/_matrix/client/v3/profile/{stranger.q(me.user_id)}")
    assert real == as_seen(stranger, f"/_matrix/client/v3/profile/{stranger.q(ghost)}")
    assert real[0] == 403
    localpart = me.user_id[1:].split(":")[0]
    assert as_seen(anonymous, f"/_matrix/client/v3/register/available?username={localpart}") == (
        as_seen(anonymous, f"/_matrix/client/v3/register/available?username=cc-ghost{tag}")
    )
    found = stranger.call(
        "POST", "/_matrix/client/v3/user_directory/search", {"search_term": localpart}
    )
    assert found["results"] == []
    # A wrong password says the same for a session as for nobody.
    assert _login(m1.url, me.user_id, "x")[1] == _login(m1.url, ghost, "x")[1]
    with pytest.raises(urllib.request.HTTPError) as listing:
        anonymous.call("GET", "/_matrix/client/v3/publicRooms")
    assert listing.value.code == 401
