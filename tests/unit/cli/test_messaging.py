"""claudematrix.cli.messaging: the mail commands' arguments and output, without a homeserver
(sending and reading real mail: tests/integration/test_messaging_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

from unit.cli.conftest import Claudematrix


def test_send_needs_the_text(claudematrix: Claudematrix, isolated_home: Path) -> None:
    ran = claudematrix("send", "@bob:localhost", "--subject", "hi")
    assert (ran.code, ran.out) == (2, "")
    assert ran.err == (
        "claudematrix: give the message text, or --stdin to read it; "
        "see `claudematrix send --help`\n"
    )
    assert not (isolated_home / "identities").exists()  # refused before anything was opened


def test_a_send_that_cannot_reach_the_homeserver_keeps_nothing(
    claudematrix: Claudematrix, isolated_home: Path
) -> None:
    ran = claudematrix("send", "@bob:localhost", "--stdin", stdin="the plan")
    assert ran.code == 4 and "is not answering" in ran.error
    ran = claudematrix("search", "plan", "--json")
    assert json.loads(ran.out) == []


def test_listings_as_json_are_lists(claudematrix: Claudematrix) -> None:
    for command in ("inbox", "search", "contacts"):
        args = (command, "parser") if command == "search" else (command,)
        ran = claudematrix(*args, "--json")
        assert ran.code == 0 and json.loads(ran.out) == [], (command, ran)


def test_contacts_say_who_will_appear(claudematrix: Claudematrix) -> None:
    ran = claudematrix("contacts")
    assert ran.out == "no contacts yet: other sessions on this machine appear once they start\n"


def test_whoami_before_the_account_exists(claudematrix: Claudematrix) -> None:
    ran = claudematrix("--as", "reviewer", "whoami")
    first, second = ran.out.splitlines()
    assert first.startswith("(no account yet)  ") and "(reviewer)" in first
    assert second.startswith("identity reviewer, mode private, homeserver http://127.0.0.1:")


def test_status_says_which_homeserver_and_how_to_join(claudematrix: Claudematrix) -> None:
    ran = claudematrix("status", "--json")
    status = json.loads(ran.out)
    assert status["homeserver"].startswith("http://127.0.0.1:")
    assert (status["embedded"], status["running"], status["owner"]) == (False, None, None)
    assert (status["unread"], status["contacts"], status["me"]["identity"]) == (0, 0, "owner")
    text = claudematrix("status").out
    assert f"homeserver: {status['homeserver']} (external)\n" in text
    assert f"  homeserver URL: {status['homeserver']}\n" in text
    assert "claudematrix --as owner password" in text
