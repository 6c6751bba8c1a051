"""Bad input through the real CLI: one line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import free_port

from .conftest import SharedHomeserver

pytestmark = pytest.mark.integration


@dataclass
class Cli:
    env: dict[str, str]
    home: Path

    def run(
        self, *args: str, as_: str | None = None, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "claudematrix"]
        if as_ is not None:
            argv += ["--as", as_]
        return subprocess.run(
            [*argv, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **env},
            timeout=120,
        )

    def ok(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        proc = self.run(*args, **kwargs)
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
        return proc

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.ok(*args, "--json", **kwargs).stdout)

    def fails(self, *args: str, **kwargs: Any) -> str:
        """Run a command that must fail cleanly; return its one error line."""
        proc = self.run(*args, **kwargs)
        return one_line_error(proc)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    shown = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode != 0, shown
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, shown
    assert lines[0].startswith("claudematrix: "), shown
    return lines[0]


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("CLAUDE_CODE_SESSION_ID", "CLAUDEMATRIX_HOMESERVER"):
        env.pop(var, None)
    return env


Pair = tuple[str, str, str, str]


@pytest.fixture
def cli(shared_homeserver: SharedHomeserver) -> Iterator[Cli]:
    yield Cli({**base_env(), **shared_homeserver.env}, shared_homeserver.home)


def make_pair(cli: Cli) -> Pair:
    """Two fresh identities on the shared homeserver: (a, a_id, b, b_id)."""
    tag = uuid.uuid4().hex[:8]
    a, b = f"a{tag}", f"b{tag}"
    return a, cli.json("whoami", as_=a)["user_id"], b, cli.json("whoami", as_=b)["user_id"]


@pytest.fixture
def pair(cli: Cli) -> Pair:
    """A fresh pair: for tests that check what the recipient did (not) receive."""
    return make_pair(cli)


@pytest.fixture(scope="module")
def sender(shared_homeserver: SharedHomeserver) -> Pair:
    """One pair for the whole module: for input checks that never reach the recipient."""
    return make_pair(Cli({**base_env(), **shared_homeserver.env}, shared_homeserver.home))


def received(cli: Cli, who: str) -> list[dict[str, Any]]:
    return list(cli.json("inbox", "--all", as_=who))


def test_unknown_recipient_name(cli: Cli, sender: Pair) -> None:
    a, *_ = sender
    line = cli.fails("send", "nobody-" + uuid.uuid4().hex[:6], "hi", as_=a)
    assert "no contact matches" in line and "claudematrix contacts" in line


def test_unknown_matrix_user(cli: Cli, sender: Pair) -> None:
    a, *_ = sender
    line = cli.fails("send", f"@ghost-{uuid.uuid4().hex[:6]}:localhost", "hi", as_=a)
    assert "no Matrix user" in line


@pytest.mark.parametrize("target", ["@Bad", "@UPPER:localhost", "!no room", "#bad"])
def test_invalid_matrix_id(cli: Cli, sender: Pair, target: str) -> None:
    a, *_ = sender
    line = cli.fails("send", target, "hi", as_=a)
    assert "not a valid Matrix" in line


@pytest.mark.parametrize("text", ["", " \n\t\n"])
def test_empty_message(cli: Cli, sender: Pair, text: str) -> None:
    a, _a_id, b, _b_id = sender
    assert "empty" in cli.fails("send", b, text, as_=a)
    assert "empty" in cli.fails("send", b, "--stdin", as_=a, stdin=text)


def test_oversize_message_is_refused_and_nothing_is_sent(cli: Cli, pair: Pair) -> None:
    a, _a_id, b, _b_id = pair
    line = cli.fails("send", b, "--stdin", "--subject", "huge", as_=a, stdin="x" * (65 * 1024))
    assert "60 KiB" in line and "split" in line
    assert received(cli, b) == []
    # The refusal left nothing behind: the next send goes through.
    cli.ok("send", b, "small", "--subject", "after", as_=a)
    assert [m["subject"] for m in received(cli, b)] == ["after"]


def test_a_message_under_the_limit_is_delivered(cli: Cli, pair: Pair) -> None:
    a, _a_id, b, _b_id = pair
    cli.ok("inbox", as_=b)  # b's first sync publishes its device: a's DM to it is encrypted
    # Just under the advertised limit of an encrypted room, which a DM between two sessions
    # is: it must really fit once encrypted.
    text = "y" * (44 * 1024)
    cli.ok("send", b, "--stdin", "--subject", "big", as_=a, stdin=text)
    (got,) = received(cli, b)
    assert cli.json("read", str(got["id"]), as_=b)["body"] == text


def test_over_the_encrypted_limit_is_refused_in_one_line(cli: Cli, pair: Pair) -> None:
    a, _a_id, b, _b_id = pair
    cli.ok("inbox", as_=b)  # b's first sync publishes its device: a's DM to it is encrypted
    line = cli.fails("send", b, "--stdin", "--subject", "big", as_=a, stdin="y" * (50 * 1024))
    assert "45 KiB in an end-to-end encrypted room" in line and "split" in line
    assert received(cli, b) == []


def test_a_refused_send_does_not_break_later_commands(cli: Cli, pair: Pair) -> None:
    a, _a_id, b, _b_id = pair
    proc = cli.run("send", b, "--stdin", as_=a, stdin="z" * 30_000)
    if proc.returncode != 0:
        one_line_error(proc)
    cli.ok("inbox", as_=a)
    cli.ok("send", b, "still works", "--subject", "later", as_=a)
    assert "later" in [m["subject"] for m in received(cli, b)]


def test_subject_must_be_one_short_line(cli: Cli, sender: Pair) -> None:
    a, _a_id, b, _b_id = sender
    assert "subject" in cli.fails("send", b, "hi", "--subject", "two\nlines", as_=a)
    assert "subject" in cli.fails("send", b, "hi", "--subject", "s" * 201, as_=a)


@pytest.mark.parametrize("flag", ["--tier", "--label"])
def test_bad_label(cli: Cli, sender: Pair, flag: str) -> None:
    a, _a_id, b, _b_id = sender
    line = cli.fails("send", b, "hi", flag, "top-secret", as_=a)
    assert "unknown label 'top-secret'" in line and "secret, private, trusted, public" in line


@pytest.mark.parametrize("ref", ["99999", "$notanevent:localhost"])
def test_bad_reply_to(cli: Cli, pair: Pair, ref: str) -> None:
    a, _a_id, b, _b_id = pair
    line = cli.fails("send", b, "hi", "--reply-to", ref, as_=a)
    assert "no message" in line and "inbox --all" in line
    assert received(cli, b) == []


@pytest.mark.parametrize("ref", ["#99999", "$nope"])
def test_read_unknown_id(cli: Cli, sender: Pair, ref: str) -> None:
    a, *_ = sender
    assert "no message" in cli.fails("read", ref, as_=a)


def test_empty_search(cli: Cli, sender: Pair) -> None:
    a, *_ = sender
    assert "empty" in cli.fails("search", "  ", as_=a)


def test_secret_to_another_session_is_refused_and_never_sent(cli: Cli, pair: Pair) -> None:
    a, _a_id, b, b_id = pair
    for to in (b, b_id):
        line = cli.fails("send", to, "the password is hunter2", "--tier", "secret", as_=a)
        assert line.startswith("claudematrix: refused:") and "secret" in line
    assert received(cli, b) == []
    assert cli.json("search", "hunter2", as_=a) == []  # not even kept as sent


def test_invalid_session_name(cli: Cli) -> None:
    assert "session name" in cli.fails("whoami", as_="../escape")
    proc = cli.run("whoami", CLAUDE_CODE_SESSION_ID="bad/session")
    assert "session name" in one_line_error(proc)


def dead_homeserver_env() -> dict[str, str]:
    return {
        **base_env(),
        "CLAUDEMATRIX_HOMESERVER": f"http://127.0.0.1:{free_port()}",
        "CLAUDEMATRIX_REGISTRATION_TOKEN": "any-token",
    }


def test_unreachable_external_homeserver(isolated_home: Path) -> None:
    cli = Cli(dead_homeserver_env(), isolated_home)
    url = cli.env["CLAUDEMATRIX_HOMESERVER"]
    line = cli.fails("send", "@bob:localhost", "hi", as_="a1")
    assert url in line
    assert "reach" in line or "not answering" in line
    # Reading commands still show what is stored locally, with one warning line.
    proc = cli.run("whoami", as_="a1")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    (warning,) = proc.stderr.strip().splitlines()
    assert warning.startswith("claudematrix: ") and url in warning
    # No registration token: still one line that says what to set.
    env = {k: v for k, v in cli.env.items() if k != "CLAUDEMATRIX_REGISTRATION_TOKEN"}
    line = Cli(env, isolated_home).fails("send", "@bob:localhost", "hi", as_="a2")
    assert "CLAUDEMATRIX_REGISTRATION_TOKEN" in line or url in line


def test_bad_homeserver_setting(isolated_home: Path) -> None:
    cli = Cli(base_env(), isolated_home)
    line = cli.fails("whoami", CLAUDEMATRIX_HOMESERVER="matrix.example.org")
    assert "http" in line
    assert "port" in cli.fails("whoami", CLAUDEMATRIX_PORT="eighty")


def test_corrupt_account_file_is_moved_aside(cli: Cli) -> None:
    name = "c" + uuid.uuid4().hex[:8]
    cli.json("whoami", as_=name)
    account = cli.home / "identities" / name / "account.json"
    account.write_text("{ this is not json")
    line = cli.fails("inbox", as_=name)
    assert "account.json" in line and "moved" in line and "account.json.corrupt" in line
    aside = account.with_name("account.json.corrupt")
    assert aside.read_text() == "{ this is not json"  # kept, never deleted
    assert not account.exists()


def test_corrupt_config_file_is_moved_aside(isolated_home: Path) -> None:
    isolated_home.mkdir(mode=0o700, parents=True)
    (isolated_home / "config.json").write_text("[[[")
    line = Cli(base_env(), isolated_home).fails("whoami")
    assert "config.json" in line and "moved" in line
    assert (isolated_home / "config.json.corrupt").read_text() == "[[["


def test_corrupt_store_is_reported_and_kept(cli: Cli) -> None:
    name = "d" + uuid.uuid4().hex[:8]
    cli.json("inbox", as_=name)
    folder = cli.home / "identities" / name
    for extra in ("store.db-wal", "store.db-shm"):
        (folder / extra).unlink(missing_ok=True)
    garbage = b"this is not an SQLite database, just some bytes " * 200
    (folder / "store.db").write_bytes(garbage)
    for args in (("inbox",), ("send", "@x:localhost", "hi"), ("whoami",)):
        line = cli.fails(*args, as_=name)
        assert "store.db" in line and "move it aside" in line
    assert (folder / "store.db").read_bytes() == garbage
