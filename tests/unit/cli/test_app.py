"""claudematrix.cli._app: running a command as an identity. Reading commands work from the
local store when the homeserver is away, with a one-line warning; commands that must reach
it fail with one line."""

from __future__ import annotations

import json
from pathlib import Path

from unit.cli.conftest import Claudematrix


def test_reading_commands_show_what_is_stored_when_the_homeserver_is_away(
    claudematrix: Claudematrix,
) -> None:
    for args, shown in (
        (("inbox",), "no unread messages\n"),
        (("inbox", "--all"), "no messages\n"),
        (("search", "parser"), "no matches\n"),
        (("requests",), "no message requests\n"),
        (("mode",), "mode private\n"),
    ):
        ran = claudematrix(*args)
        assert (ran.code, ran.out) == (0, shown), (args, ran)
        (warning,) = ran.err.strip().splitlines()
        assert warning.startswith("claudematrix: the homeserver at http://127.0.0.1:")
        assert warning.endswith(
            "is not answering: check that it is up and that "
            "CLAUDEMATRIX_HOMESERVER (or 'homeserver' in config.json) is "
            "right; showing what is stored locally"
        )


def test_the_identity_is_the_one_asked_for(claudematrix: Claudematrix, isolated_home: Path) -> None:
    ran = claudematrix("--as", "reviewer", "whoami", "--json")
    me = json.loads(ran.out)
    assert (me["identity"], me["user_id"], me["mode"]) == ("reviewer", "", "private")
    assert (isolated_home / "identities" / "reviewer" / "store.db").exists()
    assert not (isolated_home / "identities" / "owner").exists()


def test_a_command_that_must_reach_the_homeserver_fails_in_one_line(
    claudematrix: Claudematrix,
) -> None:
    ran = claudematrix("set-status", "reviewing the parser")
    assert ran.code == 4 and "is not answering" in ran.error
    assert "showing what is stored locally" not in ran.error
