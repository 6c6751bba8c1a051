"""Modes against a watching member: a session born secret is never seen, and mode changes
that go through empty or squatted public rooms leave every identity working."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from claudematrix.config import Config
from claudematrix.homeserver import register_account, start
from integration.harness import (
    PROFILE_EVENT,
    Machine,
    Raw,
    Who,
    call,
    mcp_session,
    new_tag,
    project_dir,
)
from support import wait_until

PUBLIC_ALIAS = "#claudematrix-public:localhost"


def _everything_since(raw: Raw, since: str) -> str:
    """Every event of every room `raw` is in (or invited to) after `since`, as JSON text."""
    return json.dumps(raw.sync(since).get("rooms", {}))


def test_a_session_born_secret_is_never_seen(m1: Machine, tmp_path: Path) -> None:
    tag = new_tag()
    proj = project_dir(tmp_path, f"projB{tag}")
    watcher = Who(m1, f"watch{tag}", proj).start()
    raw = watcher.raw()
    since = str(raw.sync()["next_batch"])

    by_setting = Who(m1, f"cfg{tag}", proj, env={"CLAUDEMATRIX_MODE": "secret"}).start()
    by_command = Who(m1, f"cmd{tag}", proj)
    assert by_command.run("mode", "secret").stdout.strip() == "mode secret"
    by_command.start()
    by_plugin = Who(m1, f"mcp{tag}", proj)  # the plugin option reaches the MCP server's env

    async def plugin_session() -> str:
        env = {"CLAUDEMATRIX_MODE": "secret"}
        async with mcp_session(by_plugin, tmp_path / "mcp.log", env=env) as session:
            failed, text = await call(session, "whoami")
            assert not failed, text
            return text

    assert "Mode: secret" in asyncio.run(plugin_session())
    by_plugin.start()
    born_secret = [by_setting, by_command, by_plugin]
    assert [w.mode() for w in born_secret] == ["secret"] * 3
    # Their own status, task and name never leave them either.
    by_setting.run("set-status", f"hidden work {tag}")

    seen = _everything_since(raw, since)
    for who in born_secret:
        assert who.user_id not in seen, f"{who.name} showed up in the watcher's rooms"
        status, _ = raw.attempt("GET", f"/_matrix/client/v3/profile/{raw.q(who.user_id)}")
        assert status == 403  # no shared room: not even a display name
    assert f"hidden work {tag}" not in seen and proj.name not in seen
    contacts = watcher.contacts("--all")
    assert not {w.user_id for w in born_secret} & set(contacts)


def test_public_then_private_then_another_public_keeps_every_identity_working(
    m1: Machine, stranger: Raw, tmp_path: Path
) -> None:
    tag = new_tag()
    a = Who(m1, f"a{tag}", project_dir(tmp_path, f"projA{tag}")).start()
    b = Who(m1, f"b{tag}", project_dir(tmp_path, f"projB{tag}")).start()
    for who, mode in ((a, "public"), (a, "private"), (b, "public"), (a, "public")):
        assert who.run("mode", mode, "--yes").stdout.strip() == f"mode {mode}"
        for each in (a, b):
            each.json("whoami")
            each.contacts()
            each.run("set-status", f"{each.name} after {who.name} went {mode}")
    room = stranger.join(PUBLIC_ALIAS)

    def public_statuses() -> dict[str, str]:
        return {
            e["state_key"]: e["content"].get("status", "")
            for e in stranger.state(room)
            if e["type"] == PROFILE_EVENT and e["content"]
        }

    wait_until(
        lambda: {a.user_id, b.user_id} <= set(public_statuses()), 30, "both in the public room"
    )
    a.run("send", b.user_id, f"still talking {tag}", "-s", f"{tag} ok")


@pytest.mark.parametrize("how", ["squatted", "emptied"])
def test_a_squatted_or_emptied_public_room_is_routed_around(
    how: str, own_homeserver: Callable[[], Config], isolated_home: Path, tmp_path: Path
) -> None:
    config = own_homeserver()
    state = start(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_", "CLAUDECODE"))}
    machine = Machine(
        "own",
        isolated_home,
        {**env, "CLAUDEMATRIX_HOME": str(isolated_home), "CLAUDEMATRIX_PORT": str(config.port)},
        state.url,
    )
    secret = (isolated_home / "homeserver" / "registration_shared_secret").read_text().strip()
    account = register_account(state.url, secret, "squatter", secrets.token_urlsafe(16))
    squatter = Raw(state.url, account.access_token, account.user_id)
    preset: dict[str, Any] = (
        {"preset": "private_chat"} if how == "squatted" else {"preset": "public_chat"}
    )
    room = squatter.create_room(room_alias_name="claudematrix-public", **preset)
    if how == "emptied":  # as the public room of old, once its creator went private
        squatter.call("POST", f"/_matrix/client/v3/rooms/{squatter.q(room)}/leave", {})

    tag = new_tag()
    poster = Who(machine, f"poster{tag}", project_dir(tmp_path, f"projP{tag}")).start()
    assert poster.run("mode", "public", "--yes").stdout.strip() == "mode public"
    assert poster.mode() == "public"
    other = Who(machine, f"other{tag}", project_dir(tmp_path, f"projQ{tag}")).start()
    other.run("mode", "public", "--yes")
    public_rooms = {
        r
        for who in (poster, other)
        for (r,) in who.rows("SELECT room_id FROM rooms WHERE kind = 'public' AND joined = 1")
    }
    assert len(public_rooms) == 1 and room not in public_rooms
    assert poster.contacts()[other.user_id]["mode"] == "public"
    poster.run("mode", "private")
    assert other.run("mode", "secret").stdout.strip() == "mode secret"
    poster.run("send", other.user_id, "works", "--tier", "secret", ok=False)
    poster.json("whoami")
