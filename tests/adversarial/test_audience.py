"""Audience from real membership, both ways: a stranger let into a room reads nothing I send
there, and what the stranger writes lands in requests, unopened."""

from __future__ import annotations

import json
from pathlib import Path

from integration.harness import (
    Machine,
    Raw,
    Who,
    everything_visible_to,
    new_tag,
    one_line_refusal,
    project_dir,
    start_all,
    subjects_from,
)
from support import wait_until


def _content(subject: str, text: str, label: str = "private") -> dict[str, object]:
    return {
        "msgtype": "m.text",
        "body": f"[{subject}] {text}",
        "com.claudematrix": {"v": 1, "subject": subject, "label": label},
    }


def test_a_stranger_let_into_a_dm_reads_no_reply_and_lands_in_requests(
    m1: Machine, stranger: Raw, tmp_path: Path
) -> None:
    """The other member of a DM holds the power there (they made it with a plain client) and
    lets a stranger in. I cannot remove the stranger, so my reply moves to a new room."""
    tag = new_tag()
    proj = project_dir(tmp_path, f"projD{tag}")
    hostile, victim = Who(m1, f"evil{tag}", proj), Who(m1, f"victim{tag}", proj)
    start_all(hostile, victim)
    evil = hostile.raw()
    dm = evil.create_room(preset="private_chat", is_direct=True, invite=[victim.user_id])
    evil.send_message(dm, _content(f"{tag} hi", "a question for you"))
    wait_until(lambda: subjects_from(victim.inbox(), hostile.user_id, tag), 30, "the DM")
    assert evil.invite(dm, stranger.user_id) == 200
    stranger.join(dm)
    stranger.send_message(dm, _content(f"{tag} from the stranger", "STRANGER-BODY", "public"))
    evil.send_message(dm, _content(f"{tag} again", "and one more"))

    # The stranger's mail is a request, never in the inbox; the hostile member's is mail.
    wait_until(
        lambda: (
            subjects_from(victim.inbox(), hostile.user_id, tag) == {f"{tag} hi", f"{tag} again"}
        ),
        30,
        "the second message of the DM's own member",
    )
    assert [r["from"] for r in victim.requests()] == [stranger.user_id]
    assert subjects_from(victim.inbox(), stranger.user_id, tag) == set()
    assert victim.rows("SELECT id FROM messages WHERE body LIKE '%STRANGER-BODY%'") == []

    # My reply goes to the DM's member only, in a room the stranger is not in.
    reply = f"REPLY-{tag} private details"
    victim.run("send", hostile.user_id, reply, "-s", f"{tag} reply")
    wait_until(
        lambda: subjects_from(hostile.inbox(), victim.user_id, tag) == {f"{tag} reply"},
        30,
        "the reply to reach the DM's member",
    )
    assert reply not in everything_visible_to(stranger)
    new_dm = victim.rows(
        "SELECT room_id FROM rooms WHERE kind = 'dm' AND peer = ? ORDER BY rowid DESC",
        hostile.user_id,
    )[0][0]
    assert new_dm != dm
    assert (
        stranger.attempt("GET", f"/_matrix/client/v3/rooms/{stranger.q(new_dm)}/members")[0] == 403
    )

    # Accepting releases the held mail; blocking instead would have dropped it.
    victim.run("accept", stranger.user_id, "--yes")
    bodies = [m for m in victim.inbox() if m["from"] == stranger.user_id]
    assert [m["subject"] for m in bodies] == [f"{tag} from the stranger"]
    assert victim.json("read", str(bodies[0]["id"]))["body"] == "STRANGER-BODY"


def test_a_stranger_in_an_old_dm_is_removed_before_a_reply(
    m1: Machine, stranger: Raw, tmp_path: Path
) -> None:
    """A DM made the old way gives both members all power: the other member lets a stranger
    in; before I reply, the stranger is removed, and reads nothing of it."""
    tag = new_tag()
    proj = project_dir(tmp_path, f"projO{tag}")
    hostile, victim = Who(m1, f"evil{tag}", proj), Who(m1, f"victim{tag}", proj)
    start_all(hostile, victim)
    evil = hostile.raw()
    dm = evil.create_room(preset="trusted_private_chat", is_direct=True, invite=[victim.user_id])
    evil.send_message(dm, _content(f"{tag} hi", "hello"))
    wait_until(lambda: subjects_from(victim.inbox(), hostile.user_id, tag), 30, "the DM")
    assert evil.invite(dm, stranger.user_id) == 200  # invited, not even joined: reads anyway
    reply = f"REPLY-{tag}"
    victim.run("send", hostile.user_id, reply, "-s", f"{tag} reply")
    wait_until(lambda: subjects_from(hostile.inbox(), victim.user_id, tag), 30, "the reply")
    assert evil.membership(dm, stranger.user_id) == "leave"
    assert reply not in everything_visible_to(stranger)
    assert stranger.attempt("POST", f"/_matrix/client/v3/join/{stranger.q(dm)}", {})[0] == 403


def test_an_invited_stranger_widens_a_room_i_post_in(
    m1: Machine, stranger: Raw, tmp_path: Path
) -> None:
    """A room I joined: its audience is its least-near member, joined or merely invited."""
    tag = new_tag()
    proj = project_dir(tmp_path, f"projR{tag}")
    hostile, victim = Who(m1, f"evil{tag}", proj), Who(m1, f"victim{tag}", proj)
    start_all(hostile, victim)
    evil = hostile.raw()
    room = evil.create_room(preset="public_chat", room_alias_name=f"talk{tag}")
    alias = f"#talk{tag}:localhost"
    victim.run("send", alias, f"hello all {tag}", "--tier", "public")  # joins it
    assert evil.invite(room, stranger.user_id) == 200  # the stranger never joins
    line = one_line_refusal(
        victim.run("send", alias, f"SECRET-{tag}", "--tier", "private", ok=False)
    )
    assert "refused" in line and "remote" in line
    history = json.dumps(evil.history(room))
    assert f"hello all {tag}" in history and f"SECRET-{tag}" not in history
