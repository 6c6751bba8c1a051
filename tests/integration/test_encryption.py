"""A person writes to a session from a Matrix client with end-to-end encryption on.

The person's client is matrix-nio used directly (tests/support/person.py), as an ordinary
client would behave: its own device, an encrypted DM from the start. The session is driven
through the real `claudematrix` CLI, which goes through the machine's daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import stat
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import pytest
from mcp.client.session import ClientSession

from claudematrix.homeserver import register_account
from integration.harness import Who, call, machine_one, mcp_session, new_tag, project_dir
from support import wait_until
from support.daemon import daemon_pids
from support.person import Person

from .conftest import SharedHomeserver

pytestmark = pytest.mark.integration

T = TypeVar("T")


def _person(shared: SharedHomeserver, store: Path) -> Person:
    secret = (shared.home / "homeserver" / "registration_shared_secret").read_text().strip()
    password = secrets.token_urlsafe(16)
    account = register_account(shared.url, secret, f"person{new_tag()}", password)
    person = Person(shared.url, account.user_id, account.access_token, account.device_id, store)
    person.password = password
    return person


def _session(shared: SharedHomeserver, root: Path, trusting: str) -> Who:
    session = Who(machine_one(shared), f"enc{new_tag()}", project_dir(root, "p")).start()
    session.run("trust", trusting, "--yes")
    return session


async def _until(what: str, check: Callable[[], T | None], deadline_s: float = 60.0) -> T:
    deadline = time.monotonic() + deadline_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def _in_a_dm(
    session: Who, person: Person, tmp_path: Path
) -> AsyncIterator[tuple[ClientSession, str]]:
    """The session held by its daemon (an MCP connection open) and a fresh encrypted DM the
    person opened with it and the session joined; the person's client closed after."""
    async with mcp_session(session, tmp_path / "mcp.log") as mcp:
        assert not (await call(mcp, "whoami"))[0]  # held: the daemon syncs it now
        try:
            room = await person.open_encrypted_dm(session.user_id)
            await person.wait_joined(room, session.user_id)
            yield mcp, room
        finally:
            await person.close()


def _rows_with(session: Who, words: str) -> list[tuple[object, ...]]:
    return session.rows(
        "SELECT id, event_id, subject FROM messages WHERE body LIKE ?", f"%{words}%"
    )


def test_an_encrypted_message_from_a_persons_client_is_read_by_the_session(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    person = _person(shared_homeserver, tmp_path / "person-store")
    session = _session(shared_homeserver, tmp_path, person.user_id)
    words = f"encrypted hello {new_tag()}"

    answer = f"encrypted answer {new_tag()}"
    markdown = f"{answer}\n\n- **one**\n- two"

    async def scenario() -> None:
        async with _in_a_dm(session, person, tmp_path) as (mcp, room):
            await person.send_text(room, words)
            rows = await _until("the decrypted message", lambda: _rows_with(session, words))
            # Nobody verified the person's device by emoji: its mail says so.
            failed, listing = await call(mcp, "inbox")
            line = next(x for x in listing.splitlines() if x.startswith(f"#{rows[0][0]} "))
            assert "(unverified device)" in line, listing
            failed, text = await call(mcp, "read", id=str(rows[0][0]))
            assert not failed and words in text, text
            assert "from a device nobody verified" in text, text

            failed, text = await call(
                mcp, "send", to=person.user_id, text=markdown, label="trusted"
            )
            assert not failed, text
            got_room, sender, body, decrypted = await person.wait_text(answer)
            assert (got_room, sender, decrypted) == (room, session.user_id, True)
            assert markdown in body  # the exact text, and beside it HTML for the client
            assert "<li><strong>one</strong></li>" in person.html[body]

            # As newer clients send it: no deprecated sender key or device id.
            modern = f"without the deprecated fields {new_tag()}"
            await person.send_text_without_deprecated_fields(room, modern)
            await _until("the message without them", lambda: _rows_with(session, modern))

            # kill -9 of the daemon: the shim starts a new one, which opens the same
            # device from its store and reads what comes next.
            for pid in daemon_pids(session.machine.home):
                os.kill(pid, signal.SIGKILL)
            after = f"after the restart {new_tag()}"
            await person.send_text(room, after)
            rows = await _until("mail after the restart", lambda: _rows_with(session, after))
            failed, text = await call(mcp, "read", id=str(rows[0][0]))
            assert not failed and after in text, text

    asyncio.run(scenario())

    # The homeserver's database never held either text.
    db = shared_homeserver.home / "homeserver" / "homeserver.db"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        rows = conn.execute("SELECT json FROM event_json").fetchall()
    assert rows and not any(words in r[0] or answer in r[0] for r in rows)

    # The device's keys are the session's alone.
    crypto = session.dir / "crypto"
    assert stat.S_IMODE(crypto.stat().st_mode) == 0o700
    files = [p for p in crypto.iterdir() if p.is_file()]
    assert any(p.name == "pickle.key" for p in files) and any(p.suffix == ".db" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_encrypted_message_whose_key_comes_late_is_kept_then_shown(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    person = _person(shared_homeserver, tmp_path / "person-store")
    session = _session(shared_homeserver, tmp_path, person.user_id)
    words = f"late key {new_tag()}"

    async def scenario() -> None:
        async with _in_a_dm(session, person, tmp_path) as (mcp, room):
            event_id = await person.send_text_withholding_key(room, words)
            kept = await _until(
                "the unreadable message to be kept",
                lambda: session.rows(
                    "SELECT id, subject FROM messages WHERE event_id = ?", event_id
                ),
            )
            assert "not readable yet" in str(kept[0][1])
            failed, text = await call(mcp, "inbox")
            assert not failed and "not readable yet" in text and words not in text

            await person.share_key(room)
            rows = await _until("the late key to open it", lambda: _rows_with(session, words))
            assert [(r[0], r[1]) for r in rows] == [(kept[0][0], event_id)]  # same message
            assert session.rows("SELECT count(*) FROM undecrypted") == [(0,)]
            failed, text = await call(mcp, "read", id=str(rows[0][0]))
            assert not failed and words in text, text

    asyncio.run(scenario())


def test_a_message_whose_key_never_came_is_opened_by_asking_the_senders_devices(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    person = _person(shared_homeserver, tmp_path / "person-store")
    session = _session(shared_homeserver, tmp_path, person.user_id)
    words = f"key asked for {new_tag()}"

    async def scenario() -> None:
        async with _in_a_dm(session, person, tmp_path) as (mcp, room):
            event_id = await person.send_text_withholding_key(room, words)
            await person.sync_until(lambda: bool(person.key_requests), "a key request")
            request = person.key_requests[0]
            assert (request.sender, request.room_id) == (session.user_id, room)
            kept = session.rows("SELECT id FROM messages WHERE event_id = ?", event_id)
            assert kept and not _rows_with(session, words)

            await person.forward_requested_keys()  # the sender's device answers
            rows = await _until("the key asked for", lambda: _rows_with(session, words))
            assert [(r[0], r[1]) for r in rows] == [(kept[0][0], event_id)]
            failed, text = await call(mcp, "read", id=str(rows[0][0]))
            assert not failed and words in text, text

    asyncio.run(scenario())


def test_a_persons_device_is_verified_by_comparing_emoji_and_its_mail_is_no_longer_marked(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    person = _person(shared_homeserver, tmp_path / "person-store")
    session = _session(shared_homeserver, tmp_path, person.user_id)
    before, after = (f"{n} verifying {new_tag()}" for n in ("before", "after"))

    async def header_of(mcp: ClientSession, words: str) -> str:
        rows = await _until(words, lambda: _rows_with(session, words))
        failed, listing = await call(mcp, "inbox")
        assert not failed, listing
        return next(x for x in listing.splitlines() if x.startswith(f"#{rows[0][0]} "))

    def verify(answer: str) -> subprocess.CompletedProcess[str]:
        return session.run("verify", person.user_id, stdin=answer, ok=False)

    async def scenario() -> None:
        async with _in_a_dm(session, person, tmp_path) as (mcp, room):
            await person.send_text(room, before)
            assert "(unverified device)" in await header_of(mcp, before)

            # The person at the terminal says the emoji differ: nothing is verified.
            command = asyncio.create_task(asyncio.to_thread(verify, "n\n"))
            _shown, theirs = await person.answer_verification(match=True)
            refused = await command
            assert refused.returncode == 0, refused.stderr
            assert "not verified: the emoji did not match" in refused.stdout
            assert theirs.canceled and not theirs.verified

            # Now they match, on both sides: the device is verified.
            command = asyncio.create_task(asyncio.to_thread(verify, "y\n"))
            shown, theirs = await person.answer_verification(match=True)
            done = await command
            assert done.returncode == 0, done.stderr
            assert "  ".join(f"{e} {name}" for e, name in shown) in done.stdout
            assert f"verified {person.user_id}'s device {person.device_id}" in done.stdout
            assert theirs.verified  # the person's client verified the session's device too

            await person.send_text(room, after)
            assert "(unverified device)" not in await header_of(mcp, after)
            listing = session.run("devices", person.user_id).stdout
            assert person.device_id in listing and "verified" in listing, listing

    asyncio.run(scenario())
    # Asked from inside Claude Code, it is refused: an agent must not say the emoji match.
    inside = session.run("verify", person.user_id, env={"CLAUDECODE": "1"}, ok=False)
    assert inside.returncode == 7 and "own terminal" in inside.stderr


def test_without_the_daemon_the_command_itself_verifies_with_the_device(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    person = _person(shared_homeserver, tmp_path / "person-store")
    session = _session(shared_homeserver, tmp_path, person.user_id)
    off = {"CLAUDEMATRIX_DAEMON": "off"}
    for pid in daemon_pids(session.machine.home):  # nobody else holds the device now
        os.kill(pid, signal.SIGKILL)

    async def scenario() -> None:
        try:
            await person.sync()
            await person.learn_devices(session.user_id)
            command = asyncio.create_task(
                asyncio.to_thread(
                    session.run, "verify", person.user_id, stdin="y\n", env=off, ok=False
                )
            )
            # An older client, which ignores the request and waits for a start, gets one.
            shown, theirs = await person.answer_verification(match=True, answer_requests=False)
            done = await command
            assert done.returncode == 0, done.stderr
            assert "  ".join(f"{e} {name}" for e, name in shown) in done.stdout
            assert "verified" in done.stdout and theirs.verified
        finally:
            await person.close()

    asyncio.run(scenario())
    listing = session.run("devices", person.user_id, env=off).stdout
    assert "verified by emoji" in listing, listing


def test_a_lost_device_store_gives_a_new_device_with_the_same_matrix_id(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    person = _person(shared_homeserver, tmp_path / "person-store")
    session = _session(shared_homeserver, tmp_path, person.user_id)
    session.run("inbox")
    before = session.json("whoami")
    old_device = json.loads((session.dir / "account.json").read_text())["device_id"]
    assert before["device"] and list((session.dir / "crypto").glob("*.db"))
    shutil.rmtree(session.dir / "crypto")

    session.run("inbox")  # the server refuses the new store's keys: a new device is made
    after = session.json("whoami")
    account = json.loads((session.dir / "account.json").read_text())
    assert after["user_id"] == before["user_id"] and account["device_id"] != old_device
    assert after["device"] and after["device"] != before["device"]
    assert not after["device_problem"]
    assert "new encryption device" in after["device_notice"]
    assert "cannot be read" in after["device_notice"]
    assert "note: new encryption device" in session.run("status").stdout
    assert [p.name for p in (session.dir / "crypto").glob("*.db")] == [
        f"{after['user_id']}_{account['device_id']}.db"
    ]

    # The old device is gone from the homeserver: nobody encrypts for lost keys.
    devices = _get(shared_homeserver.url, "/devices", account["access_token"])["devices"]
    assert [d["device_id"] for d in devices] == [account["device_id"]]

    # Told once, not again after every sync.
    session.run("inbox")
    log = (session.machine.home / "daemon.log").read_text()
    assert log.count(f"{session.name}: new encryption device") == 1, log

    words = f"to the new device {new_tag()}"

    async def scenario() -> None:
        async with _in_a_dm(session, person, tmp_path) as (mcp, room):
            await person.send_text(room, words)
            rows = await _until("the message to the new device", lambda: _rows_with(session, words))
            failed, text = await call(mcp, "read", id=str(rows[0][0]))
            assert not failed and words in text, text

    asyncio.run(scenario())


def _get(url: str, path: str, token: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url}/_matrix/client/v3{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.load(resp))


def test_a_new_device_of_a_known_contact_is_held_until_the_person_confirms_it(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    person = _person(shared_homeserver, tmp_path / "first-device")
    session = _session(shared_homeserver, tmp_path, person.user_id)
    first, third = (f"{n} {new_tag()}" for n in ("first", "third"))

    async def send(mcp: ClientSession, text: str) -> str:
        failed, said = await call(mcp, "send", to=person.user_id, text=text, label="trusted")
        assert not failed, said
        return said

    async def scenario() -> None:
        phone: Person | None = None
        async with _in_a_dm(session, person, tmp_path) as (mcp, room):
            try:
                assert "Not sent" not in await send(mcp, first)
                await person.wait_text(first)  # the first device, pinned on first use

                phone = await Person.another_device(
                    shared_homeserver.url, person.user_id, person.password, tmp_path / "phone"
                )
                await phone.sync()  # its keys are on the homeserver now
                # Until the session's sync has heard of the new device, a send goes to the
                # pinned one only, as before; then the send says what it held back.
                deadline, probe = time.monotonic() + 30, 0
                while f"Not sent to {person.user_id}'s device {phone.device_id}" not in (
                    said := await send(mcp, f"probe {probe} {first}")
                ):
                    assert time.monotonic() < deadline, said
                    probe += 1
                    await asyncio.sleep(0.3)
                await person.wait_text(f"probe {probe} {first}")  # the pinned device reads it
                await phone.sync_until(lambda: bool(phone.unreadable), "the held message")
                assert not any(f"probe {probe}" in r[2] for r in phone.received)

                by_cli = session.run("send", person.user_id, f"cli {first}", "--tier", "trusted")
                held_line = f"Not sent to {person.user_id}'s device {phone.device_id}"
                assert held_line in by_cli.stderr, by_cli.stderr  # the command says so too
                listing = session.run("devices", person.user_id).stdout
                assert phone.device_id in listing and "HELD" in listing, listing
                refused = session.run(
                    "devices", person.user_id, "--confirm", phone.device_id, stdin="n\n"
                )
                assert "not confirmed" in refused.stdout
                assert "HELD" in session.run("devices", person.user_id).stdout
                session.run("devices", person.user_id, "--confirm", phone.device_id, "--yes")
                assert "HELD" not in session.run("devices", person.user_id).stdout

                assert "Not sent" not in await send(mcp, third)
                await phone.wait_text(third)  # confirmed: the new device reads from now on
            finally:
                if phone is not None:
                    await phone.close()

    asyncio.run(scenario())


def test_the_first_encrypted_mail_between_this_machines_sessions_is_not_marked(
    shared_homeserver: SharedHomeserver, tmp_path: Path
) -> None:
    project = project_dir(tmp_path, "p")
    alice, bob = (Who(machine_one(shared_homeserver), f"{n}{new_tag()}", project) for n in "ab")
    # Alice's device keys are out before Bob's first sync, so no sync of Bob's ever says
    # they changed: Bob has never looked them up when her first mail comes.
    alice.start()
    alice.run("inbox")
    bob.start()
    bob.run("inbox")  # its device keys are published, so the DM is encrypted
    words = f"first words {new_tag()}"
    alice.run("send", bob.user_id, words)
    [mail] = wait_until(
        lambda: [m for m in bob.inbox() if m["from"] == alice.user_id], 30, "the mail to arrive"
    )
    [(room,)] = bob.rows("SELECT room_id FROM messages WHERE body LIKE ?", f"%{words}%")
    token = json.loads((bob.dir / "account.json").read_text())["access_token"]
    room_path = f"/rooms/{urllib.parse.quote(str(room))}/state/m.room.encryption"
    assert _get(shared_homeserver.url, room_path, token)["algorithm"]  # an encrypted DM
    # Bob had never looked up Alice's devices: it does before deciding who encrypted it.
    assert mail["unverified_device"] is False, mail
    # Nobody is there to compare emoji, and nothing needs it.
    assert "nothing to verify" in bob.run("verify", alice.user_id).stdout
