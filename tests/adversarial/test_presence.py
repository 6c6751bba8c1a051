"""Presence held by delayed events cannot be turned against its session.

A hostile member of the lobby, with its own token and plain HTTP: it never sees the ids of a
running session's delayed "offline" events (they are in no event and no state, only in the
session's store), it cannot write the session's presence, now or delayed (Synapse accepts
scheduling such a write, and refuses it when it fires). Synapse lets
anyone who knows a delay id fire, cancel or restart it (MSC4140: the id is the capability),
so a leaked id is tested too: the session heals within a heartbeat either way.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

from integration.harness import (
    PRESENCE_EVENT,
    Machine,
    Raw,
    Who,
    machine_rooms,
    new_tag,
    project_dir,
)
from support import wait_until

DELAYED = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"


def _delay_ids(m: Machine, session: str) -> dict[str, str]:
    store = m.home / "identities" / session / "store.db"
    if not store.exists():
        return {}
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        try:
            row = db.execute(
                "SELECT value FROM meta WHERE key = 'setting:presence_delays'"
            ).fetchone()
        except sqlite3.OperationalError:  # the daemon is still creating the store
            return {}
    stored = json.loads(row[0]) if row and row[0] else {}
    # Each room's entry: [delay id, when its "online" was said].
    return {room: entry[0] for room, entry in stored.items()}


def test_a_member_cannot_fire_cancel_or_forge_a_sessions_presence(
    m1: Machine, tmp_path: Path
) -> None:
    tag = new_tag()
    proj = project_dir(tmp_path, f"projP{tag}")
    hostile, observer = Who(m1, f"evil{tag}", proj).start(), Who(m1, f"obs{tag}", proj).start()
    session = str(uuid.uuid4())
    env = {
        **m1.env,
        "CLAUDE_PROJECT_DIR": str(proj),
        "CLAUDE_CODE_SESSION_ID": session,
        "CLAUDEMATRIX_HEARTBEAT_S": "1",
    }
    shim = subprocess.Popen(
        [sys.executable, "-m", "claudematrix", "mcp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        delays = wait_until(lambda: _delay_ids(m1, session), 90, "the session's delayed events")
        account = json.loads((m1.home / "identities" / session / "account.json").read_text())
        victim = Raw(m1.url, account["access_token"], account["user_id"])
        wait_until(
            lambda: (c := observer.contacts().get(victim.user_id)) and c["online"],
            60,
            "the session to show online",
        )
        evil = hostile.raw()
        lobby, _room = machine_rooms(m1, evil, proj)
        assert lobby in delays
        seen = json.dumps([evil.history(lobby), evil.state(lobby), evil.call("GET", DELAYED)])
        assert not any(delay_id in seen for delay_id in delays.values())
        assert evil.put_state(lobby, PRESENCE_EVENT, victim.user_id, {"online": False}) == 403
        path = (
            f"/_matrix/client/v3/rooms/{evil.q(lobby)}/state/{PRESENCE_EVENT}/"
            f"{evil.q(victim.user_id)}?org.matrix.msc4140.delay=100"
        )
        # Synapse may accept scheduling it, but checks who may write it when it fires: the
        # forgery never lands.
        if evil.attempt("PUT", path, {"online": False})[0] == 200:
            wait_until(
                lambda: not evil.call("GET", DELAYED)["delayed_events"],
                30,
                "the forged delayed write to fire (and fail)",
            )
        (current,) = [
            e
            for e in evil.state(lobby)
            if e["type"] == PRESENCE_EVENT and e["state_key"] == victim.user_id
        ]
        assert current["sender"] == victim.user_id and current["content"]["online"] is True

        # Were an id to leak: fired early, the session shows offline until its next
        # heartbeat says online again; cancelled, the next heartbeat schedules a new one.
        leaked = delays[lobby]
        assert evil.attempt("POST", f"{DELAYED}/{leaked}", {"action": "send"})[0] == 200
        wait_until(
            lambda: (
                observer.contacts()[victim.user_id]["online"]
                and _delay_ids(m1, session).get(lobby) not in (None, leaked)
            ),
            30,
            "the session to say online again, with a new delayed event",
        )
        renewed = _delay_ids(m1, session)[lobby]
        assert evil.attempt("POST", f"{DELAYED}/{renewed}", {"action": "cancel"})[0] == 200
        wait_until(
            lambda: _delay_ids(m1, session).get(lobby) not in (None, renewed),
            30,
            "a new delayed event after the cancelled one",
        )
        held = {d["delay_id"] for d in victim.call("GET", DELAYED)["delayed_events"]}
        assert _delay_ids(m1, session)[lobby] in held
        assert observer.contacts()[victim.user_id]["online"]
    finally:
        shim.kill()
        shim.wait(timeout=30)
        for stream in (shim.stdin, shim.stdout):
            if stream is not None:
                stream.close()
