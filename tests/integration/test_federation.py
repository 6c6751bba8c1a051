"""Machines paired over Matrix federation: each its own state dir and its own embedded Synapse
with a TLS federation listener, on distinct loopback addresses (127.0.0.1, .2, .3).

Driven through the real `claudematrix` CLI, as a person would: `machine card` on each, `machine
add` of the other's card, then mail between their sessions.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Protocol

import pytest

from support import free_port, wait_until
from support.daemon import stop_daemons
from support.synapse import kill_synapses, synapse_venv

from .harness import Machine, Raw, Who, _base_env, new_tag, one_line_refusal, project_dir

pytestmark = pytest.mark.integration


class MakeMachine(Protocol):
    def __call__(self, name: str, address: str, *, federate: bool = True) -> Machine: ...


@pytest.fixture
def make_machine(tmp_path: Path) -> Iterator[MakeMachine]:
    """Machines with their own homeserver, federating from `address`; all stopped after."""
    made: list[Machine] = []

    def make(name: str, address: str, *, federate: bool = True) -> Machine:
        """`federate` False: a loopback-only machine, as installs were before federation."""
        home = tmp_path / name / "cmhome"
        port = free_port()
        env = _base_env()
        env.update(
            {
                "CLAUDEMATRIX_HOME": str(home),
                "CLAUDEMATRIX_PORT": str(port),
                "CLAUDEMATRIX_SYNAPSE_VENV": str(synapse_venv()),
                "CLAUDEMATRIX_MACHINE_NAME": name,
            }
        )
        if federate:
            env["CLAUDEMATRIX_FEDERATION"] = f"{address}:{free_port()}"
        machine = Machine(name, home, env, f"http://127.0.0.1:{port}")
        made.append(machine)
        machine.run("up")
        return machine

    try:
        yield make
    finally:
        for machine in made:
            try:
                stop_daemons(machine.home)
                with contextlib.suppress(Exception):
                    machine.run("down", ok=False, timeout=60)
            finally:
                kill_synapses(machine.home)


def _card(machine: Machine) -> str:
    line = machine.run("machine", "card").stdout.strip()
    assert line.startswith("claudematrix-machine ") and "\n" not in line, line
    return line


def _pair(a: Machine, b: Machine) -> tuple[str, str]:
    """Each adds the other's card; returns what `machine add` said on each."""
    card_a, card_b = _card(a), _card(b)
    first = a.run("machine", "add", card_b, "--yes").stdout
    second = b.run("machine", "add", card_a, "--yes").stdout
    assert "paired with" in first and "paired with" in second, (first, second)
    return first, second


def _got(who: Who, tag: str) -> list[dict[str, object]]:
    return [m for m in who.inbox() if tag in str(m.get("subject", ""))]


def _server_db_text(machine: Machine) -> str:
    uri = f"file:{machine.home / 'homeserver' / 'homeserver.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        return "\n".join(str(r[0]) for r in conn.execute("SELECT json FROM event_json"))


def test_two_paired_machines_exchange_encrypted_mail_both_ways(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    a, b = make_machine("alpha", "127.0.0.1"), make_machine("beta", "127.0.0.2")
    alice = Who(a, "alice", project_dir(tmp_path, "pa")).start()
    bob = Who(b, "bob", project_dir(tmp_path, "pb")).start()
    assert alice.user_id.endswith(":" + a.env["CLAUDEMATRIX_FEDERATION"])
    assert bob.user_id.endswith(":" + b.env["CLAUDEMATRIX_FEDERATION"])
    alice.run("trust", bob.user_id, "--yes")
    bob.run("trust", alice.user_id, "--yes")

    # Not paired yet: nothing can flow, and the send says so in one line.
    refused = alice.run("send", bob.user_id, "too early", "--label", "trusted", ok=False)
    assert one_line_refusal(refused)

    first, second = _pair(a, b)
    assert "both ways" not in first  # beta had not added alpha yet
    assert "it has added this machine too: mail flows both ways" in second
    listed = a.run("machine", "list", "--json")
    assert [m["name"] for m in json.loads(listed.stdout)] == ["beta"]

    tag = new_tag()
    text = f"secret-{tag}: the parser fix is on branch p-{tag}"
    alice.run("send", bob.user_id, text, "--subject", f"hello {tag}", "--label", "trusted")
    wait_until(lambda: _got(bob, tag), 60, "alice's mail in bob's inbox on the other machine")
    got = _got(bob, tag)[0]
    assert got["from"] == alice.user_id
    assert (got["where"], got["machine"]) == ("trusted remote (alpha)", "alpha")
    assert text in bob.run("read", str(got["id"])).stdout

    bob.run("send", alice.user_id, f"reply-{tag}", "--subject", f"re {tag}", "--label", "trusted")
    wait_until(lambda: _got(alice, tag), 60, "bob's reply in alice's inbox")

    # Encrypted end to end across the machines: neither homeserver holds the text.
    for machine in (a, b):
        stored = _server_db_text(machine)
        assert f"secret-{tag}" not in stored and f"reply-{tag}" not in stored


def test_an_impostor_and_an_unpaired_machine_are_refused(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    a, b = make_machine("alpha", "127.0.0.1"), make_machine("beta", "127.0.0.2")
    c = make_machine("gamma", "127.0.0.3")
    _pair(a, b)
    bob = Who(b, "bob", project_dir(tmp_path, "pb")).start()
    mallory = Who(c, "mallory", project_dir(tmp_path, "pc")).start()

    # An impostor: gamma's card, claiming to be beta (beta's name and address, gamma's key).
    name, server, address, _print = _card(b).split()[1:]
    gamma_print = _card(c).split()[4]
    forged = f"claudematrix-machine {name} {server} {address} {gamma_print}"
    other = make_machine("delta", "127.0.0.4")
    refusal = one_line_refusal(other.run("machine", "add", forged, "--yes", ok=False))
    assert "not the one on the card" in refusal

    # An unpaired machine reaches nobody on beta: its send fails, and bob sees nothing.
    mallory.run("mode", "public", "--yes")
    tag = new_tag()
    sent = mallory.run("send", bob.user_id, f"hi {tag}", "--label", "public", ok=False)
    assert sent.returncode != 0
    assert not [r for r in bob.requests() if r.get("user_id") == mallory.user_id]
    assert not _got(bob, tag)


def test_removing_a_machine_cuts_it_off_at_once(make_machine: MakeMachine, tmp_path: Path) -> None:
    a, _b, alice, bob = _paired_pair(make_machine, tmp_path)
    assert _alias_lookup(bob, alice) == 404  # alpha answers beta: "no such alias"

    assert "unpaired beta" in a.run("machine", "remove", "beta").stdout
    assert json.loads(a.run("machine", "list", "--json").stdout) == []
    # Their DM still exists, but nothing is sent into it any more: refused before sending.
    later = alice.run("send", bob.user_id, "second", "--subject", "two", ok=False)
    assert "not paired with this one" in one_line_refusal(later)
    assert later.returncode == 11
    # Alpha's homeserver no longer answers beta's, nor asks it anything.
    assert _alias_lookup(bob, alice) == 502
    assert _alias_lookup(alice, bob) == 502


def test_mail_for_an_unpaired_machine_is_refused_before_sending(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    a = make_machine("alpha", "127.0.0.1")
    alice = Who(a, "alice", project_dir(tmp_path, "pa")).start()
    refusal = one_line_refusal(alice.run("send", "@cc-bob:127.0.0.9:8448", "hi", ok=False))
    assert "not paired with this one" in refusal


def _alias_lookup(who: Who, on: Who) -> int:
    """The status of `who`'s homeserver looking up an alias on `on`'s machine, which it asks
    over federation: 404 when that machine answers, 502 when federation between them fails."""
    server = on.user_id.split(":", 1)[1]
    alias = who.raw().q(f"#nothing-{new_tag()}:{server}")
    status, _ = who.raw().attempt("GET", f"/_matrix/client/v3/directory/room/{alias}")
    return status


def test_a_burst_survives_kill_9_of_the_receiving_homeserver(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    """50 messages from alpha to beta, beta's Synapse killed -9 after the 10th: once it is
    back, every message is in bob's inbox exactly once."""
    a, b, alice, bob = _paired_pair(make_machine, tmp_path)
    tag = new_tag()

    total = 50
    for i in range(total):
        if i == 10:
            _kill_homeserver(b)
        alice.run(
            "send", bob.user_id, f"n{i}", "--subject", f"b{tag} {i:02d}", "--label", "trusted"
        )
    b.run("up")

    def all_there() -> bool:
        return len(_got(bob, f"b{tag}")) >= total

    wait_until(all_there, 120, "every message of the burst in bob's inbox")
    subjects = [str(m["subject"]) for m in _got(bob, f"b{tag}")]
    assert sorted(subjects) == [f"b{tag} {i:02d}" for i in range(total)]  # each exactly once


def _paired_pair(make_machine: MakeMachine, tmp_path: Path) -> tuple[Machine, Machine, Who, Who]:
    """alpha and beta paired, alice on alpha and bob on beta trusting each other, and one
    message across (the DM made, its keys shared)."""
    a, b = make_machine("alpha", "127.0.0.1"), make_machine("beta", "127.0.0.2")
    _pair(a, b)
    alice = Who(a, "alice", project_dir(tmp_path, "pa")).start()
    bob = Who(b, "bob", project_dir(tmp_path, "pb")).start()
    alice.run("trust", bob.user_id, "--yes")
    bob.run("trust", alice.user_id, "--yes")
    warm = f"warm-up {new_tag()}"
    alice.run("send", bob.user_id, "first", "--subject", warm, "--label", "trusted")
    wait_until(lambda: _got(bob, warm), 60, "the first mail across")
    return a, b, alice, bob


def _kill_homeserver(machine: Machine) -> None:
    pid = int((machine.home / "homeserver" / "homeserver.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_until(functools.partial(_gone, pid), 15, f"{machine.label}'s homeserver to die")


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return False


def test_a_machine_back_from_an_outage_is_sent_what_waited_at_once(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    """Alpha backs off from beta while beta is down; beta's homeserver, on its start, tells
    alpha it is back (nothing else on beta runs), and alpha sends what waited at once
    instead of after its backoff (30 s at least)."""
    a, b, alice, bob = _paired_pair(make_machine, tmp_path)

    b.run("daemon", "stop")  # nobody on beta asks alpha anything when beta comes back
    _kill_homeserver(b)
    sent = alice.json("send", bob.user_id, "while away", "--label", "trusted")
    room, event = str(sent["room_id"]), str(sent["event_id"])
    path = f"/_matrix/client/v3/rooms/{Raw.q(room)}/event/{Raw.q(event)}"
    wait_until(lambda: _backing_off(a, b), 30, "alpha to fail to reach beta and back off")
    # The person sees that mail to beta waits, and why.
    (beta_state,) = alice.json("status")["machines"]
    assert beta_state["name"] == "beta" and beta_state["down_since"], beta_state
    assert "mail to beta (" in alice.run("inbox").stdout
    assert "unreachable since" in alice.run("status").stdout

    b.run("up")
    raw = bob.raw()
    wait_until(lambda: raw.attempt("GET", path)[0] == 200, 15, "the waiting event on beta")
    wait_until(
        lambda: alice.json("status")["machines"][0]["down_since"] is None,
        30,
        "alpha to see beta reachable again",
    )
    assert "paired machine beta (" in alice.run("status").stdout


def _backing_off(a: Machine, b: Machine) -> bool:
    """Alpha's homeserver has marked beta as down (its federation retry timings)."""
    uri = f"file:{a.home / 'homeserver' / 'homeserver.db'}?mode=ro"
    server = b.env["CLAUDEMATRIX_FEDERATION"]
    with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
        row = conn.execute(
            "SELECT retry_last_ts FROM destinations WHERE destination = ?", (server,)
        ).fetchone()
    return bool(row and row[0])


# audience column -> labels that reach it (README, "Privacy modes"), for the remote columns
REMOTE_REACHES = {"trusted remote": {"trusted", "public"}, "remote": {"public"}}
LABELS = ("secret", "private", "trusted", "public")


def test_the_send_table_holds_across_machines_cell_by_cell(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    """Every label to a trusted session and to an untrusted one on the paired machine:
    allowed ones arrive (the stranger's held as a request), refused ones are refused in one
    line and reach neither beta's homeserver nor any store."""
    a, b = make_machine("alpha", "127.0.0.1"), make_machine("beta", "127.0.0.2")
    _pair(a, b)
    me = Who(a, "me", project_dir(tmp_path, "pa")).start()
    friend = Who(b, "friend", project_dir(tmp_path, "pf")).start()
    stranger = Who(b, "stranger", project_dir(tmp_path, "ps")).start()
    me.run("trust", friend.user_id, "--yes")
    friend.run("trust", me.user_id, "--yes")
    tag = new_tag()
    refused: list[str] = []
    for recipient, audience in ((friend, "trusted remote"), (stranger, "remote")):
        for label in LABELS:
            subject = f"{tag} {label} to {audience}"
            token = f"body-{tag}-{label}-{audience.replace(' ', '_')}"
            proc = me.run(
                "send", recipient.user_id, token, "--subject", subject, "--tier", label,
                "--json", ok=False,
            )  # fmt: skip
            if label in REMOTE_REACHES[audience]:
                assert proc.returncode == 0, (subject, proc.stderr)
                sent = json.loads(proc.stdout)
                assert (sent["where"], sent["label"]) == (f"{audience} (beta)", label), sent
            else:
                line = one_line_refusal(proc)
                assert proc.returncode == 7 and f"labelled {label}" in line, (subject, line)
                assert f"is {audience};" in line, line
                refused.append(token)

    def expected(audience: str) -> set[str]:
        return {f"{tag} {label} to {audience}" for label in REMOTE_REACHES[audience]}

    def subjects(who: Who) -> set[str]:
        return {str(m["subject"]) for m in who.inbox() if str(m["subject"]).startswith(tag)}

    wait_until(lambda: subjects(friend) == expected("trusted remote"), 60, "friend's mail")
    wait_until(lambda: bool(stranger.requests()), 60, "the stranger's request")
    assert subjects(stranger) == set()  # held, unopened, until the person accepts
    stranger.run("accept", me.user_id, "--yes")
    wait_until(lambda: subjects(stranger) == expected("remote"), 60, "the accepted mail")

    everything = _server_db_text(b) + _server_db_text(a)
    for who in (me, friend, stranger):
        everything += json.dumps(who.rows("SELECT body, subject FROM messages"))
    assert not [t for t in refused if t in everything]


def test_remote_sessions_whose_mode_reaches_me_are_in_contacts_with_their_machine(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    """Public sessions of paired machines meet in each other's public rooms; a remote
    session in trusted mode that trusts me shows through its circle; a private one never."""
    a, b = make_machine("alpha", "127.0.0.1"), make_machine("beta", "127.0.0.2")
    _pair(a, b)
    shown = Who(b, "shown", project_dir(tmp_path, "pshown")).start()
    shown.run("mode", "public", "--yes")
    hidden = Who(b, "hidden", project_dir(tmp_path, "phidden")).start()  # private
    me = Who(a, "me", project_dir(tmp_path, "pme")).start()
    me.run("mode", "public", "--yes")

    def listed(who: Who, other: Who) -> dict[str, object]:
        return who.contacts().get(other.user_id) or {}

    wait_until(lambda: listed(me, shown).get("project") == "pshown", 60, "beta's public session")
    seen = listed(me, shown)
    assert (seen["where"], seen["machine"], seen["mode"]) == ("remote (beta)", "beta", "public")
    assert "remote (beta)" in me.run("contacts").stdout
    wait_until(lambda: listed(shown, me).get("where") == "remote (alpha)", 60, "and back")
    assert listed(shown, me)["project"] == "pme"
    # A remote contact is addressed by its name, like a neighbour.
    tag = new_tag()
    name = str(seen["short_name"])
    sent = me.json("send", name, "hello by name", "--subject", tag, "--label", "public")
    assert (sent["to"], sent["where"]) == (shown.user_id, "remote (beta)"), sent

    friend = Who(b, "friend", project_dir(tmp_path, "pfriend")).start()
    me.run("trust", friend.user_id, "--yes")
    friend.run("mode", "trusted", "--yes")
    friend.run("trust", me.user_id, "--yes")  # invites me into its trusted circle
    wait_until(lambda: listed(me, friend).get("mode") == "trusted", 60, "the trusted profile")
    assert listed(me, friend)["where"] == "trusted remote (beta)"

    assert hidden.user_id not in me.contacts()
    # Neither of beta's sessions that do not reach alpha's published anything alpha can read.
    visible = json.dumps([me.raw().history(room) for room in me.raw().joined_rooms()])
    assert "phidden" not in visible


def test_a_machine_trusted_as_a_whole_makes_its_sessions_trusted_remote(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    a, b = make_machine("alpha", "127.0.0.1"), make_machine("beta", "127.0.0.2")
    _pair(a, b)
    me = Who(a, "me", project_dir(tmp_path, "pa")).start()
    them = Who(b, "them", project_dir(tmp_path, "pb")).start()
    tag = new_tag()

    def send_trusted(n: int) -> subprocess.CompletedProcess[str]:
        return me.run(
            "send", them.user_id, f"t{n}", "--subject", f"{tag} {n}", "--label", "trusted",
            ok=False,
        )  # fmt: skip

    assert send_trusted(1).returncode == 7  # a stranger's session: trusted data stays here
    inside = a.run("machine", "trust", "beta", "--yes", env={"CLAUDECODE": "1"}, ok=False)
    assert inside.returncode != 0 and "terminal" in one_line_refusal(inside)
    assert "trusted beta" in a.run("machine", "trust", "beta", "--yes").stdout
    assert "trusted as a whole" in a.run("machine", "list").stdout

    assert send_trusted(2).returncode == 0
    wait_until(lambda: bool(them.requests()), 60, "alpha's mail held on beta (not trusted back)")
    # Their mail comes to my inbox, not to requests, placed as a trusted remote contact.
    them.run("send", me.user_id, "hello", "--subject", f"{tag} back", "--label", "public")
    wait_until(lambda: _got(me, f"{tag} back"), 60, "beta's mail in my inbox")
    got = _got(me, f"{tag} back")[0]
    assert (got["where"], got["machine"]) == ("trusted remote (beta)", "beta")
    assert not me.requests()

    assert "no longer trusted" in a.run("machine", "untrust", "beta").stdout
    assert send_trusted(3).returncode == 7


def test_a_loopback_install_becomes_federation_ready_keeping_every_history(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    a = make_machine("alpha", "127.0.0.1", federate=False)
    alice = Who(a, "alice", project_dir(tmp_path, "pa")).start()
    bob = Who(a, "bob", project_dir(tmp_path, "pb")).start()
    assert alice.user_id.endswith(":localhost")
    tag = new_tag()
    bob.run("send", alice.user_id, "from before", "--subject", f"{tag} old")
    wait_until(lambda: _got(alice, f"{tag} old"), 30, "the old mail")
    # Sent just before the move, and not fetched by bob: it must not stay behind.
    alice.run("send", bob.user_id, "unfetched", "--subject", f"{tag} unfetched")
    assert "machine federate" in one_line_refusal(a.run("machine", "card", ok=False))

    address = f"127.0.0.1:{free_port()}"
    inside = a.run("machine", "federate", address, "--yes", env={"CLAUDECODE": "1"}, ok=False)
    assert "terminal" in one_line_refusal(inside)
    said = a.run("machine", "federate", address, "--yes").stdout
    old_alice, old_bob = alice.user_id, bob.user_id
    alice.start(), bob.start()
    assert alice.user_id == old_alice.replace(":localhost", f":{address}")
    assert f"{old_bob} is now {bob.user_id}" in said
    kept = next(a.home.glob("before-federation-*"))
    assert (kept / "homeserver" / "homeserver.db").exists()

    # History is kept and follows the new IDs: the old mail is bob's, on this machine.
    (old,) = _got(alice, f"{tag} old")
    assert (old["from"], old["where"]) == (bob.user_id, "same machine")
    assert _got(bob, f"{tag} unfetched")
    bob.run("send", "cc-alice", "after the move", "--subject", f"{tag} new")
    wait_until(lambda: _got(alice, f"{tag} new"), 30, "mail under the new IDs")
    assert not _got(alice, f"{tag} new")[0].get("unverified_device")

    # And the machine pairs like any other.
    b = make_machine("beta", "127.0.0.2")
    _pair(a, b)
    carol = Who(b, "carol", project_dir(tmp_path, "pc")).start()
    alice.run("trust", carol.user_id, "--yes")
    carol.run("trust", alice.user_id, "--yes")
    alice.run("send", carol.user_id, "across", "--subject", f"{tag} across", "--label", "trusted")
    wait_until(lambda: _got(carol, f"{tag} across"), 60, "mail to the paired machine")
    assert _got(carol, f"{tag} across")[0]["where"] == "trusted remote (alpha)"


def test_machines_that_trust_each_other_see_each_others_trusted_sessions(
    make_machine: MakeMachine, tmp_path: Path
) -> None:
    """With alpha and beta each trusting the other as a whole, their sessions in trusted mode
    show in each other's contacts; a third machine paired with alpha cannot get into the room
    that carries them (an attacker with its own token, over plain HTTP); untrusting ends it."""
    a, b = make_machine("alpha", "127.0.0.1"), make_machine("beta", "127.0.0.2")
    c = make_machine("gamma", "127.0.0.3")
    _pair(a, b)
    _pair(a, c)
    a.run("machine", "trust", "beta", "--yes")
    b.run("machine", "trust", "alpha", "--yes")
    mine = Who(a, "mine", project_dir(tmp_path, "pmine")).start()
    mine.run("mode", "trusted", "--yes")
    theirs = Who(b, "theirs", project_dir(tmp_path, "ptheirs")).start()
    theirs.run("mode", "trusted", "--yes")
    quiet = Who(b, "quiet", project_dir(tmp_path, "pquiet")).start()  # private

    def listed(who: Who, other: Who) -> dict[str, object]:
        return who.contacts().get(other.user_id) or {}

    wait_until(lambda: listed(mine, theirs).get("project") == "ptheirs", 90, "beta's session")
    seen = listed(mine, theirs)
    assert (seen["where"], seen["mode"]) == ("trusted remote (beta)", "trusted")
    wait_until(lambda: listed(theirs, mine).get("project") == "pmine", 90, "and alpha's")
    assert quiet.user_id not in mine.contacts()

    # Gamma is paired with alpha, not trusted: alpha's room for beta refuses its sessions.
    eve = Who(c, "eve", project_dir(tmp_path, "peve")).start()
    alias = f"#{_trusted_room_localpart(b)}:{a.env['CLAUDEMATRIX_FEDERATION']}"
    status, _ = eve.raw().attempt("POST", f"/_matrix/client/v3/join/{Raw.q(alias)}", {})
    assert status == 403, status  # refused by the room's server ACL
    assert "pmine" not in json.dumps([eve.raw().state(r) for r in eve.raw().joined_rooms()])

    # Beta stops trusting alpha: its room for alpha is shut at once (alpha's sessions cannot
    # get back in), and its session withdraws from alpha's room when it next runs.
    theirs_room = f"#{_trusted_room_localpart(a)}:{b.env['CLAUDEMATRIX_FEDERATION']}"
    assert mine.raw().resolve(theirs_room) is not None
    b.run("machine", "untrust", "alpha")
    back, _ = mine.raw().attempt("POST", f"/_matrix/client/v3/join/{Raw.q(theirs_room)}", {})
    assert back == 404, back
    theirs.run("status")  # its next run follows the change
    wait_until(lambda: listed(mine, theirs).get("mode") != "trusted", 60, "beta's withdrawal")


def _trusted_room_localpart(trusted: Machine) -> str:
    import hashlib

    server = trusted.env["CLAUDEMATRIX_FEDERATION"]
    return f"cm-trusted-{hashlib.sha256(server.encode()).hexdigest()[:12]}"
