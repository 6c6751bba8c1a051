"""No message lost or duplicated: killed consumers, offline recipients, bursts, retries,
and a homeserver that goes away and comes back. Real Synapse, real processes."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from claudematrix.config import Config, load_config
from claudematrix.homeserver import start, stop
from claudematrix.identity import resolve_identity
from claudematrix.matrix import build_content
from claudematrix.matrix.client import OWN_EVENTS_PER_MARK, SYNC_MARK
from claudematrix.service import Service
from claudematrix.types import Label
from support import wait_until

from .conftest import SharedHomeserver

pytestmark = pytest.mark.integration

# A recipient's sync consumer: connect, then long-poll until killed.
CONSUMER = """
import asyncio, sys
from claudematrix.config import load_config
from claudematrix.identity import resolve_identity
from claudematrix.service import Service

async def main():
    service = Service(load_config(), resolve_identity(sys.argv[1]))
    try:
        await service.connect(start_homeserver=False)
        print("connected", file=sys.stderr, flush=True)
        await service.sync_forever(asyncio.Event())
    finally:
        await service.close()

asyncio.run(main())
"""

# A sender: one connection, `count` messages with subjects "<prefix> 0" .. "<prefix> count-1",
# optionally paced (seconds between messages) so that they keep coming while things fail.
SENDER = """
import asyncio, sys
from claudematrix.config import load_config
from claudematrix.identity import resolve_identity
from claudematrix.service import Service

async def main():
    name, to, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pace = float(sys.argv[5])
    service = Service(load_config(), resolve_identity(name))
    try:
        await service.connect(start_homeserver=False)
        for i in range(count):
            await service.send(to, f"{prefix} body {i}", subject=f"{prefix} {i}")
            if pace:
                await asyncio.sleep(pace)
    finally:
        await service.close()

asyncio.run(main())
"""


class Procs:
    """Every process a test starts; all are SIGKILLed and reaped at the end, whatever happened."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, label: str, *argv: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{label}-{len(self.started)}.log", "wb")  # noqa: SIM115
        with log:
            proc = subprocess.Popen(
                [sys.executable, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        self.started.append(proc)
        return proc

    def consumer(self, name: str) -> subprocess.Popen[bytes]:
        return self.spawn(f"consumer-{name}", "-c", CONSUMER, name)

    def sender(
        self, name: str, to: str, prefix: str, count: int, pace: float = 0.0
    ) -> subprocess.Popen[bytes]:
        return self.spawn(f"sender-{name}", "-c", SENDER, name, to, prefix, str(count), str(pace))

    def finish(self, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
        """Wait for a process that should end by itself, and require success."""
        code = proc.wait(timeout=timeout)
        assert code == 0, f"{proc.args!r} exited {code}:\n{self.output()}"

    def output(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.logs.glob("*.log"))
        )

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)

    def cli(self, *args: str) -> Any:
        proc = subprocess.run(
            [sys.executable, "-m", "claudematrix", *args, "--json"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        assert proc.returncode == 0, f"claudematrix {args}: {proc.stdout}\n{proc.stderr}"
        return json.loads(proc.stdout)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Procs]]:
    made: list[Procs] = []

    def make(env: dict[str, str]) -> Procs:
        logs = tmp_path / f"logs{len(made)}"
        logs.mkdir()
        made.append(Procs(env, logs))
        return made[-1]

    try:
        yield make
    finally:
        for p in made:
            p.kill_all()


def env_for(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    for var in ("CLAUDE_CODE_SESSION_ID", "CLAUDEMATRIX_HOMESERVER"):
        env.pop(var, None)
    return env


@pytest.fixture
def shared(
    shared_homeserver: SharedHomeserver,
    procs: Callable[[dict[str, str]], Procs],
    monkeypatch: pytest.MonkeyPatch,
) -> Procs:
    for key, value in shared_homeserver.env.items():
        monkeypatch.setenv(key, value)  # for the in-process parts (load_config)
    return procs(env_for(shared_homeserver.env))


def names(*prefixes: str) -> list[str]:
    tag = uuid.uuid4().hex[:8]
    return [f"{p}{tag}" for p in prefixes]


def store_path(env: dict[str, str], name: str) -> Path:
    return Path(env["CLAUDEMATRIX_HOME"]) / "identities" / name / "store.db"


def incoming(db: Path, sender: str) -> list[str]:
    """Subjects of the messages from `sender` in a store, in local id order (read-only peek)."""
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            rows = c.execute(
                "SELECT subject FROM messages WHERE direction = 'in' AND sender = ? ORDER BY id",
                (sender,),
            ).fetchall()
    except sqlite3.OperationalError:  # not created or migrated yet
        return []
    return [str(r[0]) for r in rows]


def _holds_at_least(db: Path, sender: str, count: int) -> bool:
    return len(incoming(db, sender)) >= count


def assert_exactly_once(got: list[str], prefix: str, count: int, *, ordered: bool) -> None:
    want = [f"{prefix} {i}" for i in range(count)]
    dupes = {s: n for s, n in collections.Counter(got).items() if n > 1}
    assert not dupes, f"duplicated: {dupes}"
    missing = sorted(set(want) - set(got), key=want.index)
    assert not missing, f"missing {len(missing)}: {missing[:10]}"
    assert len(got) == count, f"unexpected extra messages: {sorted(set(got) - set(want))}"
    if ordered:
        assert got == want


def whoami(p: Procs, name: str) -> str:
    return str(p.cli("--as", name, "whoami")["user_id"])


def sync_once_subjects(p: Procs, name: str, sender: str) -> list[str]:
    """One CLI command as `name` (it syncs once first); its inbox subjects from `sender`."""
    inbox = p.cli("--as", name, "inbox", "--all", "--limit", "1000")
    return [m["subject"] for m in reversed(inbox) if m["from"] == sender]


# --- (a) ------------------------------------------------------------------------------------


def test_consumer_killed_at_random_moments_loses_and_duplicates_nothing(shared: Procs) -> None:
    a, b = names("a", "b")
    a_id, b_id = whoami(shared, a), whoami(shared, b)
    db = store_path(shared.env, b)
    count, prefix = 60, f"kill-{b}"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    context = f"(random seed {seed})"

    sender = shared.sender(a, b_id, prefix, count, pace=0.04)  # ~3 s of sending
    consumer = shared.consumer(b)
    kills: list[str] = []
    for _ in range(6):
        kind = rng.choice(["mid-stream", "mid-stream", "start-up"])
        if kind == "mid-stream" and len(incoming(db, a_id)) < count:
            # Kill as soon as a few more messages have landed: the loop is busy syncing.
            target = min(count, len(incoming(db, a_id)) + rng.randint(1, 8))
            wait_until(
                functools.partial(_holds_at_least, db, a_id, target),
                90,
                f"{target} messages {context}:\n{shared.output()}",
            )
        else:
            # A random moment after start: imports, connect, the first /sync or a commit.
            time.sleep(rng.uniform(0.05, 1.2))  # the random moment itself, not a sync point
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(timeout=30)
        kills.append(f"{kind}@{len(incoming(db, a_id))}")
        consumer = shared.consumer(b)
    shared.finish(sender)
    context += f", kills at {kills}"
    wait_until(
        lambda: len(incoming(db, a_id)) >= count,
        90,
        f"all {count} messages {context}:\n{shared.output()}",
    )
    consumer.send_signal(signal.SIGKILL)
    consumer.wait(timeout=30)
    assert_exactly_once(incoming(db, a_id), prefix, count, ordered=False)
    # One more sync from the saved token brings nothing twice.
    assert_exactly_once(sync_once_subjects(shared, b, a_id), prefix, count, ordered=False)


def outgoing(db: Path, prefix: str) -> list[str]:
    """Subjects a sender's store recorded as sent, and the outbox's pending txn count."""
    if not db.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
            rows = c.execute(
                "SELECT subject FROM messages WHERE direction = 'out' AND subject LIKE ? "
                "ORDER BY id",
                (prefix + " %",),
            ).fetchall()
    except sqlite3.OperationalError:
        return []
    return [str(r[0]) for r in rows]


def pending_outbox(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        return int(c.execute("SELECT count(*) FROM outbox").fetchone()[0])


def test_sender_killed_mid_stream_delivers_what_it_recorded_exactly_once(shared: Procs) -> None:
    a, b = names("a", "b")
    whoami(shared, a)
    b_id = whoami(shared, b)
    a_db = store_path(shared.env, a)
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    count = 40
    first, second = f"skill1-{b}", f"skill2-{b}"

    # Killed once a random number of messages went out ...
    sender = shared.sender(a, b_id, first, count, pace=0.02)
    target = rng.randint(3, 30)
    wait_until(
        lambda: len(outgoing(a_db, first)) >= target,
        90,
        f"{target} sends (seed {seed}):\n{shared.output()}",
    )
    sender.send_signal(signal.SIGKILL)
    sender.wait(timeout=30)
    # ... and once at a random moment after start (start-up, connect or mid-send).
    sender = shared.sender(a, b_id, second, count, pace=0.02)
    time.sleep(rng.uniform(0.3, 2.0))  # the random moment itself, not a synchronisation
    sender.send_signal(signal.SIGKILL)
    sender.wait(timeout=30)

    shared.cli("--as", a, "inbox")  # the next command of A flushes its outbox
    assert pending_outbox(a_db) == 0
    inbox = shared.cli("--as", b, "inbox", "--all", "--limit", "1000")
    got = [m["subject"] for m in reversed(inbox)]
    for prefix in (first, second):
        recorded = outgoing(a_db, prefix)
        received = [s for s in got if s.startswith(prefix + " ")]
        context = f"(seed {seed}) recorded {len(recorded)}, received {len(received)}"
        assert received == recorded, context  # nothing recorded as sent is lost or doubled
        assert received == [f"{prefix} {i}" for i in range(len(received))], context


# --- (b) ------------------------------------------------------------------------------------


def test_offline_recipient_gets_everything_in_order_on_return(shared: Procs) -> None:
    a, b = names("a", "b")
    a_id, b_id = whoami(shared, a), whoami(shared, b)  # B has an account, never synced
    first = f"offline1-{b}"
    shared.finish(shared.sender(a, b_id, first, 30))
    assert incoming(store_path(shared.env, b), a_id) == []
    assert sync_once_subjects(shared, b, a_id) == [f"{first} {i}" for i in range(30)]

    # Offline again, now with a sync token: the next sync is incremental.
    second = f"offline2-{b}"
    shared.finish(shared.sender(a, b_id, second, 30))
    got = sync_once_subjects(shared, b, a_id)
    assert got == [f"{first} {i}" for i in range(30)] + [f"{second} {i}" for i in range(30)]


# --- (c) ------------------------------------------------------------------------------------


def test_burst_larger_than_the_sync_window_is_fully_received(shared: Procs) -> None:
    a, b, c = names("a", "b", "c")
    a_id, b_id, c_id = whoami(shared, a), whoami(shared, b), whoami(shared, c)
    # B already knows the room (incremental sync, limited timeline); C only gets invited.
    shared.finish(shared.sender(a, b_id, f"hello-{b}", 1))
    assert sync_once_subjects(shared, b, a_id) == [f"hello-{b} 0"]

    # Both more than the 100-event timeline window of one /sync.
    count_b, count_c = 150, 120
    burst_b, burst_c = f"burst-{b}", f"burst-{c}"
    # One after the other: an identity's encryption device has one owner process at a time.
    shared.finish(shared.sender(a, b_id, burst_b, count_b))
    shared.finish(shared.sender(a, c_id, burst_c, count_c))

    got_b = sync_once_subjects(shared, b, a_id)
    assert got_b[0] == f"hello-{b} 0"
    assert_exactly_once(got_b[1:], burst_b, count_b, ordered=True)
    assert_exactly_once(sync_once_subjects(shared, c, a_id), burst_c, count_c, ordered=True)


# --- (d) ------------------------------------------------------------------------------------


def test_retry_with_the_same_transaction_id_yields_one_event(shared: Procs) -> None:
    a, b = names("a", "b")
    whoami(shared, a)
    b_id = whoami(shared, b)
    subject = f"once-{b}"

    async def crash_after_send() -> tuple[str, str]:
        service = Service(load_config(), resolve_identity(a))
        try:
            await service.connect(start_homeserver=False)
            opened = await service.send(b_id, "opening", subject=f"open-{b}")
            assert service.client is not None
            content = build_content(subject, "exactly once", Label.PRIVATE)
            txn = uuid.uuid4().hex
            service.store.outbox_add(txn, opened.room_id, b_id, json.dumps(content))
            first = await service.client.send(opened.room_id, content, txn)
            again = await service.client.send(opened.room_id, content, txn)
            assert again == first  # a plain retry is a no-op
            return first, txn
        finally:
            await service.close()  # "crash": the outbox still holds the sent message

    event_id, txn = asyncio.run(crash_after_send())

    async def restart() -> None:
        service = Service(load_config(), resolve_identity(a))
        try:
            await service.connect(start_homeserver=False)  # flushes the outbox: same txn
            assert service.store.outbox_pending() == []
            mine = service.store.message(event_id)
            assert (mine.subject, mine.body) == (subject, "exactly once")
            assert await service.flush_outbox() == 0
        finally:
            await service.close()

    asyncio.run(restart())
    inbox = shared.cli("--as", b, "inbox", "--all")
    once = [m for m in inbox if m["subject"] == subject]
    assert [m["event_id"] for m in once] == [event_id]
    sent = [m for m in shared.cli("--as", a, "search", "exactly once") if m["subject"] == subject]
    assert len(sent) == 1


# --- (e) ------------------------------------------------------------------------------------


def test_sync_loop_survives_a_homeserver_restart(
    own_homeserver: Callable[[], Config], procs: Callable[[dict[str, str]], Procs]
) -> None:
    config = own_homeserver()
    start(config)
    p = procs(env_for({}))
    a, b = names("a", "b")
    a_id, b_id = whoami(p, a), whoami(p, b)
    db = store_path(p.env, b)
    consumer = p.consumer(b)

    p.finish(p.sender(a, b_id, "before", 1))
    wait_until(lambda: incoming(db, a_id) == ["before 0"], 60, f"first message:\n{p.output()}")

    assert stop(config)  # the consumer's long-poll is cut off mid-request
    start(config)
    assert consumer.poll() is None, f"the sync loop died with the homeserver:\n{p.output()}"

    p.finish(p.sender(a, b_id, "after", 3))
    wait_until(
        lambda: incoming(db, a_id) == ["before 0", "after 0", "after 1", "after 2"],
        60,
        f"mail after the restart:\n{p.output()}",
    )
    assert consumer.poll() is None
    assert "Traceback" not in p.output()


# --- (f) ------------------------------------------------------------------------------------


def test_a_senders_own_long_poll_comes_back_with_a_current_position(shared: Procs) -> None:
    """My own messages never come back in my sync, and Synapse works out every wake of it
    from the position it was asked with: after a run of them, the mark in my account data
    brings the long-poll back, with a later position, and with none of my messages in it."""
    a, b = names("a", "b")
    a_id, b_id = whoami(shared, a), whoami(shared, b)
    runs = 2

    async def run() -> list[dict[str, Any]]:
        service = Service(load_config(), resolve_identity(a))
        answers: list[dict[str, Any]] = []
        try:
            await service.connect(start_homeserver=False)
            await service.send(b_id, "opening", subject="open")  # the DM exists from here
            client = service.client
            assert client is not None
            since = (await client.sync(None, 0))["next_batch"]

            async def long_poll() -> None:
                nonlocal since
                while True:
                    answer = await client.sync(since, 30_000)
                    answers.append(answer)
                    since = answer["next_batch"]

            poller = asyncio.create_task(long_poll())
            marked = 0
            for i in range(runs * OWN_EVENTS_PER_MARK):
                await service.send(b_id, f"body {i}", subject=f"run {i}")
                if (i + 1) % OWN_EVENTS_PER_MARK == 0:
                    marked += 1
                    deadline = time.monotonic() + 30
                    while sum(map(_holds_mark, answers)) < marked:
                        assert time.monotonic() < deadline, f"no mark came back: {answers}"
                        await asyncio.sleep(0.02)
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        finally:
            await service.close()
        return answers

    answers = asyncio.run(run())
    with_mark = [x for x in answers if _holds_mark(x)]
    assert len(with_mark) >= runs
    positions = [x["next_batch"] for x in with_mark]
    assert len(set(positions)) == len(positions), "the position did not move on"
    for answer in answers:  # my own messages never come back to me
        for room in (answer.get("rooms") or {}).get("join", {}).values():
            senders = {e.get("sender") for e in (room.get("timeline") or {}).get("events", [])}
            assert a_id not in senders


def _holds_mark(answer: dict[str, Any]) -> bool:
    events = (answer.get("account_data") or {}).get("events") or []
    return any(e.get("type") == SYNC_MARK for e in events)
