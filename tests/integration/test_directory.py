"""The directory: who lists whom, with what status and presence, in what order.

Same harness as test_privacy.py: real CLI subprocesses on the shared Synapse; machine 2 is a
second state dir using that Synapse as an external homeserver.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from support import wait_until
from support.daemon import daemon_pids
from support.hooks import RUN as HOOKS_RUN

from .conftest import SharedHomeserver
from .harness import (
    PRESENCE_EVENT,
    PROFILE_EVENT,
    Machine,
    Raw,
    Who,
    machine_rooms,
    new_tag,
    project_dir,
    start_all,
    stranger_on,
    subjects_from,
)

pytestmark = pytest.mark.integration

HEARTBEAT_S = 1.0
TTL_S = 2.5 * HEARTBEAT_S  # Timing.from_env: ttl = 2.5 x heartbeat
PUBLIC_ALIAS = "#claudematrix-public:localhost"


@contextlib.contextmanager
def mcp_server(
    who_machine: Machine, project: Path, log: Path, heartbeat_s: float = HEARTBEAT_S
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A session's MCP server (`claudematrix mcp`), started as Claude Code would start it:
    stdin kept open, CLAUDE_CODE_SESSION_ID set. Yields (process, session id); always
    killed and reaped."""
    session = str(uuid.uuid4())
    env = {
        **who_machine.env,
        "CLAUDE_PROJECT_DIR": str(project),
        "CLAUDE_CODE_SESSION_ID": session,
        "CLAUDEMATRIX_HEARTBEAT_S": str(heartbeat_s),
    }
    with log.open("ab") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claudematrix", "mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            env=env,
        )
    try:
        yield proc, session
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def session_user(m: Machine, session: str, proc: subprocess.Popen[bytes]) -> str:
    """The Matrix ID the MCP server registered for `session` (read from its account file)."""
    account = m.home / "identities" / session / "account.json"

    def ready() -> str | None:
        assert proc.poll() is None, "the MCP server exited"
        if not account.exists():
            return None
        try:
            return str(json.loads(account.read_text())["user_id"])
        except (ValueError, KeyError):
            return None

    return str(wait_until(ready, 60, "the MCP server to create its account"))


# --- 1. status publish and directory listing, per mode of the publisher --------------------

# publisher's mode -> audiences that list it and see its status (the README's table, by row)
SEES = {
    "private": {"same project", "same machine"},
    "trusted": {"same project", "same machine", "trusted remote"},
    "public": {"same project", "same machine", "trusted remote", "remote"},
    "secret": set(),
}


def test_status_and_listing_follow_the_publishers_mode(
    m1: Machine, m2: Machine, shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    tag = new_tag()
    proj_p = project_dir(tmp_path, f"projP{tag}")
    pub = Who(m1, f"pub{tag}", proj_p).start()
    observers = {
        "same project": Who(m1, f"peer{tag}", proj_p),
        "same machine": Who(m1, f"other{tag}", project_dir(tmp_path, f"projQ{tag}")),
        "trusted remote": Who(m2, f"friend{tag}", project_dir(tmp_path, f"projR{tag}")),
        "remote": Who(m2, f"anyone{tag}", project_dir(tmp_path, f"projS{tag}")),
    }
    friend, anyone = observers["trusted remote"], observers["remote"]
    friend.start()  # the first on machine 2 makes its machine account and lobby
    start_all(*(o for o in observers.values() if o is not friend))
    # Trust both ways, person-confirmed: the circle is shared once pub's mode reaches it.
    pub.run("trust", friend.user_id, "--yes")
    friend.run("trust", pub.user_id, "--yes")
    # A stranger reads the public directory only from inside the public room.
    anyone.run("mode", "public", "--yes")
    plain = stranger_on(shared_homeserver, f"plain{tag}")
    public_room = plain.join(PUBLIC_ALIAS)

    def public_profile() -> dict[str, Any]:
        for event in plain.state(public_room):
            if event["type"] == PROFILE_EVENT and event.get("state_key") == pub.user_id:
                return dict(event["content"])
        return {}

    for round_, mode in enumerate(("private", "trusted", "public", "secret", "private")):
        assert pub.run("mode", mode, "--yes").stdout.strip() == f"mode {mode}"
        status = f"{tag} round {round_}: {mode}"
        assert pub.run("set-status", status).stdout.strip() == f"status: {status}"

        def check(
            audience: str,
            observer: Who,
            mode: str = mode,
            status: str = status,
            round_: int = round_,
        ) -> None:
            what = f"{audience} observer, publisher {mode}"
            if audience in SEES[mode]:
                seen = wait_until(
                    lambda: (
                        (c := observer.contacts().get(pub.user_id)) and c["status"] == status and c
                    ),
                    30,
                    f"{what}: the status to show",
                )
                assert seen  # (for the type checker: wait_until returns what held)
                assert (seen["audience"], seen["mode"], seen["project"]) == (
                    audience,
                    mode,
                    proj_p.name,
                ), (what, seen)
                return
            listed = observer.contacts("--all").get(pub.user_id)
            if listed is None:
                return
            # The one exception: the friend trusts pub and once shared its circle (round 1),
            # so pub stays in the friend's own address book, bare: nothing pub published.
            assert audience == "trusted remote" and round_ > 1, (what, listed)
            published = ("status", "project", "branch", "host", "task", "mode", "short_name")
            assert {k: listed[k] for k in published} == dict.fromkeys(published, ""), (
                what,
                listed,
            )
            assert listed["online"] is False

        with ThreadPoolExecutor(max_workers=len(observers)) as pool:
            for done in [pool.submit(check, a, o) for a, o in observers.items()]:
                done.result()
        profile = public_profile()
        if mode == "public":
            assert profile.get("status") == status and profile.get("project") == proj_p.name
        else:
            assert profile == {}, (mode, profile)


# --- 3. presence ---------------------------------------------------------------------------


def _presence_events(raw: Raw, room: str, user: str) -> list[str]:
    return [
        e["event_id"]
        for e in raw.history(room)
        if e["type"] == PRESENCE_EVENT and e.get("state_key") == user
    ]


@pytest.mark.parametrize("killed", ["shim", "shim and daemon"])
def test_presence_online_while_the_session_runs_offline_within_ttl_after_kill9(
    m1: Machine, tmp_path: Path, killed: str
) -> None:
    """Online while the session runs, with no room event while it idles (the homeserver
    holds "online": delayed events); offline within the TTL once it is killed: by the daemon
    when only the shim dies, by the homeserver itself when the daemon dies with it."""
    tag = new_tag()
    proj = project_dir(tmp_path, f"projL{tag}")
    observer = Who(m1, f"obs{tag}", proj).start()
    with mcp_server(m1, proj, tmp_path / "mcp.log") as (proc, session):
        user = session_user(m1, session, proc)
        first = wait_until(
            lambda: (c := observer.contacts().get(user)) and c["online"] and c,
            60,
            "the running session to show online",
        )
        assert first  # (for the type checker: wait_until returns what held)
        assert first["audience"] == "same project"
        lobby, _project_room = machine_rooms(m1, observer.raw(), proj)
        said = _presence_events(observer.raw(), lobby, user)
        # Several TTLs later: still online, and not one more presence event in the room.
        idle_until = time.monotonic() + 3 * TTL_S
        wait_until(
            lambda: time.monotonic() >= idle_until and observer.contacts()[user]["online"],
            60,
            "the idle session to stay online past three TTLs",
        )
        assert proc.poll() is None
        assert _presence_events(observer.raw(), lobby, user) == said

        victims = [proc.pid] + (daemon_pids(m1.home) if killed == "shim and daemon" else [])
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = time.monotonic()
        polls: list[tuple[float, bool]] = []  # (poll started, s after the kill; online?)

        def offline() -> bool:
            started = time.monotonic() - killed_at
            online = bool(observer.contacts()[user]["online"])
            polls.append((started, online))
            return not online

        wait_until(offline, TTL_S + 60, "the killed session to show offline")
        # Nothing refreshed it after the kill, so any look started more than one TTL (plus a
        # second of slack) after the kill must say offline, however slow the look.
        assert [p for p in polls if p[1] and p[0] > TTL_S + 1.0] == [], polls
        assert user in observer.contacts()  # offline, still listed


def test_a_task_the_hooks_record_shows_in_contacts_within_seconds_while_the_session_idles(
    m1: Machine, tmp_path: Path
) -> None:
    """With the default two-minute heartbeat the session's presence loop sleeps while it
    idles; the task the hooks record (a TodoWrite) still reaches other sessions' contacts
    within seconds: one clock in the daemon looks at every identity's task file."""
    tag = new_tag()
    proj = project_dir(tmp_path, f"projT{tag}")
    observer = Who(m1, f"obs{tag}", proj).start()
    with mcp_server(m1, proj, tmp_path / "mcp.log", heartbeat_s=120) as (proc, session):
        user = session_user(m1, session, proc)
        wait_until(lambda: (c := observer.contacts().get(user)) and c["online"], 60, "the session")
        todos = [{"content": f"Refactor parser {tag}", "status": "in_progress"}]
        hook = {
            "session_id": session,
            "hook_event_name": "PostToolUse",
            "tool_name": "TodoWrite",
            "tool_input": {"todos": todos},
            "tool_response": {},
        }
        env = {k: v for k, v in m1.env.items() if not k.startswith("CLAUDE_")}
        done = subprocess.run(
            [sys.executable, "-I", "-S", str(HOOKS_RUN), "post-tool-use"],
            input=json.dumps(hook).encode(),
            env=env,
            capture_output=True,
            timeout=30,
            check=True,
        )
        assert done.stdout == b""
        wait_until(
            lambda: observer.contacts()[user].get("task") == f"Refactor parser {tag}",
            25,  # the loop's own next wake is 30 s away: only the clock can make this
            "the new task in the observer's contacts",
        )


# --- 6. ordering, hiding, short names ---------------------------------------------------------


def test_contacts_online_first_long_gone_hidden_but_still_addressable(
    m1: Machine, tmp_path: Path
) -> None:
    tag = new_tag()
    proj_p = project_dir(tmp_path, f"projP{tag}")
    proj_q = project_dir(tmp_path, f"projQ{tag}")
    near = Who(m1, f"near{tag}", proj_p).start()  # same project, offline
    far = Who(m1, f"far{tag}", proj_q).start()  # same machine, offline
    with mcp_server(m1, proj_q, tmp_path / "mcp.log") as (proc, session):
        live = session_user(m1, session, proc)  # same machine, online
        me = Who(m1, f"me{tag}", proj_p).start()
        ours = {near.user_id, far.user_id, live}
        # Let them see me arrive before my first message does (see
        # test_privacy.py::test_a_new_session_on_this_machine_is_not_a_stranger).
        for who in (near, far):
            who.inbox()

        def ordered(*args: str, **kwargs: Any) -> list[dict[str, Any]]:
            return [c for c in me.json("contacts", *args, **kwargs) if c["user_id"] in ours]

        listed = wait_until(
            lambda: (found := ordered()) and len(found) == 3 and found[0]["online"] and found,
            60,
            "all three contacts, the live one online",
        )
        assert listed  # (for the type checker: wait_until returns what held)
        # online first (before a nearer offline one), then nearest first
        assert [c["user_id"] for c in listed] == [live, near.user_id, far.user_id]
        assert [c["audience"] for c in listed] == ["same machine", "same project", "same machine"]
        assert [c["online"] for c in listed] == [True, False, False]
        short = {c["user_id"]: c["short_name"] for c in listed}
        assert short == {
            live: f"{proj_q.name}-{session[:8]}",
            near.user_id: f"{proj_p.name}-near{tag}",
            far.user_id: f"{proj_q.name}-far{tag}",
        }

        # Last seen longer ago than CLAUDEMATRIX_HIDE_AFTER_DAYS (here ~0.9 s): hidden.
        hide = {"CLAUDEMATRIX_HIDE_AFTER_DAYS": "0.00001"}
        wait_until(
            lambda: [c["user_id"] for c in ordered(env=hide)] == [live],
            30,
            "offline contacts to be hidden, the online one kept",
        )
        assert {c["user_id"] for c in ordered("--all", env=hide)} == ours
        human = me.run("contacts", "--all", env=hide).stdout
        assert near.user_id in human and far.user_id in human

        # Hidden is not gone: short names still resolve in `send`.
        for user_id in (near.user_id, far.user_id, live):
            name = short[user_id]
            sent = me.json("send", name, f"to {name}", "-s", f"{tag} to {name}", env=hide)
            assert sent["to"] == user_id
        wait_until(
            lambda: (
                subjects_from(near.inbox(), me.user_id, tag) == {f"{tag} to {short[near.user_id]}"}
            ),
            30,
            "near to get its message",
        )
        assert subjects_from(far.inbox(), me.user_id, tag) == {f"{tag} to {short[far.user_id]}"}
        live_store = Who(m1, session, proj_q)
        wait_until(
            lambda: (
                live_store.rows(
                    "SELECT subject FROM messages WHERE sender = ? AND direction = 'in'", me.user_id
                )
                == [(f"{tag} to {short[live]}",)]
            ),
            30,
            "the live session's own sync to store its message",
        )


def test_a_long_gone_session_is_hidden_for_a_newcomer_too(m1: Machine, tmp_path: Path) -> None:
    tag = new_tag()
    proj = project_dir(tmp_path, f"projG{tag}")
    gone = Who(m1, f"gone{tag}", proj).start()
    last_active = time.time()  # an upper bound: gone does nothing after this
    hide_s = 5.0
    hide = {"CLAUDEMATRIX_HIDE_AFTER_DAYS": str(hide_s / 86400)}
    wait_until(lambda: time.time() - last_active > hide_s + 1, 30, "gone to be long gone")
    newcomer = Who(m1, f"new{tag}", proj)
    started = time.monotonic()
    listed = newcomer.contacts(env=hide)  # its first command: joins, syncs, lists
    assert time.monotonic() - started < hide_s  # (or the check below would prove nothing)
    assert gone.user_id in newcomer.contacts("--all", env=hide)
    assert gone.user_id not in listed


def test_short_names_resolve_in_a_new_sessions_first_send(m1: Machine, tmp_path: Path) -> None:
    tag = new_tag()
    proj = project_dir(tmp_path, f"projF{tag}")
    target = Who(m1, f"tgt{tag}", proj).start()
    me = Who(m1, f"me{tag}", proj).start()  # has not synced since target published
    proc = me.run("send", f"{proj.name}-tgt{tag}", "hello", "--json", ok=False)
    assert proc.returncode == 0, proc.stderr
    assert target.user_id in proc.stdout
