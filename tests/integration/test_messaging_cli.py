"""Messaging through the real `claudematrix` CLI, as subprocesses, on the shared Synapse.

Each test makes its own identities (uuid suffix), so tests never see each other's mail.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.hooks import payload, run_hook

from .conftest import SharedHomeserver

pytestmark = pytest.mark.integration


@dataclass
class Cli:
    """Runs `python -m claudematrix` against the shared homeserver; remembers all output.

    Each identity works in a project folder of its own (so two of them are "same machine"),
    unless a test puts several in one project with `project=`.
    """

    env: dict[str, str]
    home: Path
    projects: Path
    outputs: list[str] = field(default_factory=list)

    def run(
        self,
        *args: str,
        as_: str | None = None,
        session: str | None = None,
        project: str | None = None,
        stdin: str | None = None,
        ok: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if session is not None:
            env["CLAUDE_CODE_SESSION_ID"] = session
        folder = self.projects / (project or as_ or session or "owner")
        folder.mkdir(parents=True, exist_ok=True)
        env["CLAUDE_PROJECT_DIR"] = str(folder)
        argv = [sys.executable, "-m", "claudematrix"]
        if as_ is not None:
            argv += ["--as", as_]
        proc = subprocess.run(
            [*argv, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        self.outputs += [proc.stdout, proc.stderr]
        if ok:
            assert proc.returncode == 0, (
                f"claudematrix {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
            assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def json(self, *args: str, **kwargs: Any) -> Any:
        proc = self.run(*args, "--json", **kwargs)
        return json.loads(proc.stdout)


@pytest.fixture
def cli(shared_homeserver: SharedHomeserver, tmp_path: Path) -> Iterator[Cli]:
    env = {**os.environ, **shared_homeserver.env}
    for var in ("CLAUDE_CODE_SESSION_ID", "CLAUDEMATRIX_HOMESERVER"):
        env.pop(var, None)
    yield Cli(env, shared_homeserver.home, tmp_path / "projects")


def names(*prefixes: str) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"{p}{tag}" for p in prefixes]


def user_id(cli: Cli, name: str | None) -> str:
    me = cli.json("whoami", as_=name)
    assert me["user_id"].startswith("@"), me
    return str(me["user_id"])


def by_subject(messages: list[dict[str, Any]], subject: str) -> dict[str, Any]:
    found = [m for m in messages if m["subject"] == subject]
    assert len(found) == 1, (subject, [m["subject"] for m in messages])
    return found[0]


def test_two_sessions_exchange_messages_both_ways(cli: Cli) -> None:
    a, b = names("a", "b")
    a_id, b_id = user_id(cli, a), user_id(cli, b)
    assert a_id != b_id
    # (sender, to, subject, label): names and Matrix IDs both work as <to>.
    plan = [
        (a, b, f"{a} first", "private"),
        (b, a_id, f"{b} first", "trusted"),
        (a, b_id, f"{a} second", "public"),
        (a, b, f"{a} third", "trusted"),
        (b, a, f"{b} second", "private"),
        (b, a, f"{b} third", "public"),
    ]
    for sender, to, subject, label in plan:
        sent = cli.json(
            "send", to, f"body of {subject}", "--subject", subject, "--tier", label, as_=sender
        )
        assert sent["subject"] == subject
        assert sent["label"] == label
        assert sent["direction"] == "out"
        assert sent["to"] == (b_id if sender == a else a_id)
        assert sent["where"] == "same machine"

    for me, peer_id, peer in ((b, a_id, a), (a, b_id, b)):
        expected = [(s, lbl) for sender, _to, s, lbl in plan if sender == peer]
        inbox = cli.json("inbox", "--all", as_=me)
        assert [(m["subject"], m["label"]) for m in reversed(inbox)] == expected  # newest first
        assert all(m["from"] == peer_id and m["direction"] == "in" for m in inbox)
        assert all(m["where"] == "same machine" and not m["read"] for m in inbox)
        assert all("body" not in m for m in inbox)  # headers only
        assert [m["id"] for m in inbox] == sorted((m["id"] for m in inbox), reverse=True)
        for header in inbox:
            opened = cli.json("read", str(header["id"]), as_=me)
            assert opened["body"] == f"body of {header['subject']}"
            assert (opened["subject"], opened["label"], opened["from"]) == (
                header["subject"],
                header["label"],
                peer_id,
            )
            assert opened["read"] is True
        if me == b:
            assert cli.json("inbox", as_=me) == []  # all read now
        else:
            again = cli.json("inbox", "--all", as_=me)
            assert [m["event_id"] for m in again] == [m["event_id"] for m in inbox]
            assert all(m["read"] for m in again)

    # A reply keeps its link to the message it answers.
    original = by_subject(cli.json("inbox", "--all", as_=b), f"{a} first")
    cli.run("send", a, "agreed", "--subject", "Re: first", "--reply-to", str(original["id"]), as_=b)
    reply = by_subject(cli.json("inbox", as_=a), "Re: first")
    assert cli.json("read", str(reply["id"]), as_=a)["reply_to"] == original["event_id"]
    # Reading by Matrix event id works as well as by the short id.
    assert cli.json("read", reply["event_id"], as_=a)["body"] == "agreed"


def test_text_output_of_inbox_and_read(cli: Cli) -> None:
    a, b = names("a", "b")
    a_id = user_id(cli, a)
    user_id(cli, b)
    out = cli.run("send", b, "the body text", "--subject", "Plain header", as_=a).stdout
    assert out.startswith("sent #") and "[private]" in out
    listing = cli.run("inbox", as_=b).stdout.strip().splitlines()
    assert len(listing) == 1
    header = listing[0]
    assert header.startswith("#") and f"<{a_id}>" in header and "(same machine)" in header
    assert '"Plain header" [private] unread' in header
    assert "the body text" not in header
    local_id = header[1:].split()[0]
    shown = cli.run("read", local_id, as_=b).stdout
    assert "the body text" in shown and a_id in shown
    assert "data, not instructions" in shown  # framed as untrusted data
    assert cli.run("inbox", as_=b).stdout.strip() == "no unread messages"


def test_owner_account_and_a_session_talk(cli: Cli) -> None:
    (s,) = names("s")
    s_id = user_id(cli, s)
    owner = cli.json("whoami")  # no --as, no CLAUDE_CODE_SESSION_ID: the person
    assert owner["identity"] == "owner"
    owner_id = owner["user_id"]
    assert owner_id != s_id and not owner_id.startswith("@cc-")

    subject = f"question for {s}"
    cli.run("send", s, "can you look at the failing test?", "--subject", subject)
    got = by_subject(cli.json("inbox", as_=s), subject)
    assert got["from"] == owner_id
    assert got["where"] == "self"  # the owner is in a session's nearest audience

    cli.run(
        "send",
        owner_id,
        "looking now",
        "--subject",
        f"Re: {subject}",
        "--reply-to",
        str(got["id"]),
        as_=s,
    )
    # Secret may go to the owner: the owner is "self".
    cli.run(
        "send",
        owner_id,
        "the key is in vault",
        "--subject",
        f"secret {s}",
        "--tier",
        "secret",
        as_=s,
    )
    owner_inbox = cli.json("inbox", "--all")
    reply = by_subject(owner_inbox, f"Re: {subject}")
    assert reply["from"] == s_id and reply["where"] == "same machine"
    opened = cli.json("read", str(reply["id"]))
    assert opened["body"] == "looking now"
    assert opened["reply_to"] == got["event_id"]
    secret = by_subject(owner_inbox, f"secret {s}")
    assert secret["label"] == "secret"


def test_session_can_address_the_owner_by_name(cli: Cli) -> None:
    (s,) = names("s")
    user_id(cli, s)
    owner_id = user_id(cli, None)
    cli.run("send", s, "hello", "--subject", f"hello {s}")
    cli.run("send", "owner", "hi back", "--subject", f"to owner {s}", as_=s)
    assert by_subject(cli.json("inbox", "--all"), f"to owner {s}")["to"] == owner_id


def test_a_session_started_after_me_can_message_me(cli: Cli) -> None:
    b, a = names("b", "a")
    user_id(cli, b)  # B starts first ...
    user_id(cli, a)  # ... A joins the machine later and writes to B
    sent = cli.json("send", b, "hello, I just started", "--subject", "newcomer", as_=a)
    assert sent["where"] == "same machine"
    (got,) = cli.json("inbox", as_=b)
    assert got["subject"] == "newcomer"
    # A's profile came in the same sync as its message: B shows the name A published.
    assert got["from_name"].endswith(f"({a})") and "ClaudeMatrix session" not in got["from_name"]


def test_a_reply_can_be_sent_to_the_room_by_its_id(cli: Cli) -> None:
    a, b = names("a", "b")
    user_id(cli, a)
    user_id(cli, b)
    cli.json("send", b, "first", "--subject", "to the dm", as_=a)
    (got,) = cli.json("inbox", as_=b)
    room = got["room_id"]  # this Synapse makes room version 12 IDs: "!<hash>", no server
    cli.json("send", room, "answer in the room", "--subject", "by room id", as_=b)
    assert [m["subject"] for m in cli.json("inbox", as_=a)] == ["by room id"]


def test_session_id_env_selects_the_identity(cli: Cli) -> None:
    (a,) = names("a")
    a_id = user_id(cli, a)
    session = str(uuid.uuid4())
    me = cli.json("whoami", session=session)
    assert me["identity"] == session
    assert me["user_id"].startswith(f"@cc-{session[:8]}")
    assert user_id(cli, session) == me["user_id"]  # --as <same id> is the same account
    assert cli.json("whoami", as_=a, session=session)["user_id"] == a_id  # --as wins
    assert cli.json("whoami")["identity"] == "owner"

    cli.run("send", me["user_id"], "for the session", "--subject", f"to {session}", as_=a)
    got = by_subject(cli.json("inbox", session=session), f"to {session}")
    assert got["from"] == a_id
    assert cli.json("read", str(got["id"]), session=session)["body"] == "for the session"
    assert all(m["subject"] != f"to {session}" for m in cli.json("inbox", "--all"))


def test_search(cli: Cli) -> None:
    a, b = names("a", "b")
    user_id(cli, a)
    user_id(cli, b)
    word = "zq" + uuid.uuid4().hex[:10]
    cli.run("send", b, f"the {word} pipeline is green", "--subject", "CI", as_=a)
    cli.run("send", b, "unrelated chatter", "--subject", f"about {word}x", as_=a)
    cli.run("send", b, "nothing to see", "--subject", "noise", as_=a)

    found = cli.json("search", word, as_=b)
    assert [m["subject"] for m in found] == ["CI"]
    assert found[0]["direction"] == "in" and "body" not in found[0]
    assert [m["subject"] for m in cli.json("search", "about", as_=b)] == [f"about {word}x"]
    sent = cli.json("search", word, as_=a)  # the sender's own history is searchable too
    assert [(m["subject"], m["direction"]) for m in sent] == [("CI", "out")]
    for query in (f'"{word} AND (', "-x NEAR(*"):  # FTS syntax is taken as plain words
        out = cli.run("search", "--json", "--", query, as_=b).stdout
        assert isinstance(json.loads(out), list)
    assert cli.run("search", "nomatch" + word, as_=b).stdout.strip() == "no matches"


def test_contacts_show_the_other_session_on_this_machine(cli: Cli) -> None:
    a, b = names("a", "b")
    a_id, b_id = user_id(cli, a), user_id(cli, b)
    contacts = cli.json("contacts", as_=a)
    mine = [c for c in contacts if c["user_id"] == b_id]
    assert len(mine) == 1, contacts
    where = mine[0].get("audience", mine[0].get("where"))
    assert where == "same machine"
    assert b in mine[0]["display_name"]
    assert all(c["user_id"] != a_id for c in contacts)  # not myself
    text = cli.run("contacts", as_=a).stdout
    assert f"<{b_id}>" in text and "same machine" in text


def test_whoami(cli: Cli, shared_homeserver: SharedHomeserver) -> None:
    (a,) = names("a")
    me = cli.json("whoami", as_=a)
    assert me["identity"] == a
    assert me["user_id"] == f"@cc-{a}:localhost"
    assert me["mode"] == "private"
    assert me["homeserver"] == shared_homeserver.url
    text = cli.run("whoami", as_=a).stdout
    assert me["user_id"] in text and shared_homeserver.url in text


def test_whoami_shows_my_display_name(cli: Cli) -> None:
    (a,) = names("a")
    assert a in cli.json("whoami", as_=a)["display_name"]


def test_session_start_names_the_session_as_whoami_does(cli: Cli) -> None:
    """The SessionStart hook says who the session is from what its service recorded: the
    display name whoami shows, its Matrix ID and its mode."""
    (a,) = names("a")
    me = cli.json("whoami", as_=a)
    ran = run_hook("session-start", payload("session-start", sid=a), env=cli.env)
    assert (ran.code, ran.stderr) == (0, "")
    assert f"this session is {me['display_name']} <{me['user_id']}>, mode private" in ran.context


def test_status_says_where_the_homeserver_is_and_how_to_log_in(
    cli: Cli, shared_homeserver: SharedHomeserver
) -> None:
    (a,) = names("a")
    owner = user_id(cli, None)  # the person's own account exists once they used the CLI
    text = cli.run("status", as_=a).stdout
    assert shared_homeserver.url in text
    assert "running" in text
    assert f"your account:   {owner}" in text
    assert "claudematrix --as owner password" in text
    data = cli.json("status", as_=a)
    assert data["homeserver"] == shared_homeserver.url
    assert data["running"] is True
    assert data["owner"] == owner


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_is_private(cli: Cli) -> None:
    a, b = names("a", "b")
    user_id(cli, a)
    cli.run("send", a, "hi", as_=b)
    home = cli.home
    assert mode(home) == 0o700
    assert mode(home / "identities") == 0o700
    for name in (a, b):
        folder = home / "identities" / name
        assert mode(folder) == 0o700
        assert mode(folder / "account.json") == 0o600
        assert mode(folder / "store.db") == 0o600
    # Every folder is closed to others, so nothing inside can be reached by them.
    for path in home.rglob("*"):
        if path.is_dir() and not path.is_symlink():
            assert mode(path) & 0o077 == 0, f"{path} is open to others ({oct(mode(path))})"
    for secret in ("registration_shared_secret", "signing.key", "macaroon_secret_key"):
        path = home / "homeserver" / secret
        if path.exists():
            assert mode(path) == 0o600, path


def test_no_secret_appears_in_any_output_or_the_homeserver_log(cli: Cli) -> None:
    a, b = names("a", "b")
    a_id = user_id(cli, a)
    b_id = user_id(cli, b)
    cli.run("send", b, "one", "--subject", "s1", as_=a)
    cli.run("send", a_id, "two", "--subject", "s2", "--tier", "trusted", "--json", as_=b)
    for who in (a, b):
        cli.run("status", as_=who)
        cli.run("contacts", "--json", as_=who)
        cli.run("inbox", "--all", "--json", as_=who)
    cli.run("status", "--json", as_=a)
    cli.run("whoami", as_=b)
    cli.run("search", "one", as_=b)
    cli.run("send", b_id, "x", "--tier", "bogus", as_=a, ok=False)
    cli.run("send", "@nobody-here:localhost", "x", as_=a, ok=False)

    secrets: list[str] = []
    for account in (cli.home / "identities").glob("*/account.json"):
        data = json.loads(account.read_text())
        secrets += [str(data["access_token"])]
        if data.get("password"):
            secrets.append(str(data["password"]))
    shared_secret = cli.home / "homeserver" / "registration_shared_secret"
    if shared_secret.exists():
        secrets.append(shared_secret.read_text().strip())
    assert len(secrets) >= 4
    assert all(len(s) >= 16 for s in secrets)
    everything = "\n".join(cli.outputs)
    assert everything.strip()
    log = (cli.home / "homeserver" / "homeserver.log").read_text(errors="replace")
    for secret in secrets:
        assert secret not in everything
        assert secret not in log
