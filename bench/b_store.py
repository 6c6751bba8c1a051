"""The local store at 100k messages: inbox listing and full-text search.

The store is filled through Store.commit_sync (10k messages per transaction) with realistic
mail: Zipf-distributed words, subjects and paragraphs, a dozen correspondents, 70% incoming,
5% of those unread. Then Store.inbox() and Store.search() are timed against the same SQL run
straight on sqlite3 (what SQLite itself needs; ours adds building Message objects).
"""

from __future__ import annotations

import functools
import random
import sqlite3
import time
from collections.abc import Callable
from itertools import accumulate

from bench._stats import Dist, Row, percentile
from bench._world import Ctx
from bench.budgets import judge

__all__ = ["bench_store", "fill_store", "searches"]

MESSAGES = 100_000
_SYLLABLES = [
    "ka",
    "ro",
    "mi",
    "te",
    "su",
    "na",
    "lo",
    "pe",
    "ri",
    "do",
    "an",
    "el",
    "or",
    "un",
    "is",
    "ta",
    "ve",
    "li",
    "mo",
    "sa",
    "ne",
    "ku",
    "ba",
    "zo",
    "fi",
    "gra",
    "tor",
    "pel",
    "mar",
    "den",
    "vis",
    "lun",
    "ber",
    "cor",
    "tek",
    "sim",
]
_STOP_WORDS = [
    "the",
    "a",
    "to",
    "and",
    "of",
    "in",
    "is",
    "for",
    "on",
    "that",
    "this",
    "with",
    "it",
    "please",
    "can",
    "you",
    "could",
    "we",
    "should",
]
_DEV_WORDS = [
    "review",
    "tokenizer",
    "parser",
    "branch",
    "merge",
    "test",
    "failing",
    "passes",
    "deploy",
    "rollback",
    "config",
    "schema",
    "migration",
    "index",
    "query",
    "latency",
    "cache",
    "flaky",
    "build",
    "release",
    "hotfix",
    "bug",
    "regression",
    "lint",
    "refactor",
    "module",
    "import",
    "function",
    "class",
    "async",
    "sync",
    "thread",
    "lock",
    "retry",
    "timeout",
    "error",
]


def _vocabulary(rng: random.Random) -> list[str]:
    """4000 words by rank: stop words first, then dev words and invented ones, shuffled."""
    words = list(_DEV_WORDS)
    seen = set(words) | set(_STOP_WORDS)
    while len(words) < 4000 - len(_STOP_WORDS):
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    rng.shuffle(words)
    return _STOP_WORDS + words


def searches(vocab: list[str]) -> list[tuple[str, str]]:
    """The query mix whose p95 is the budget's: (query, what it stands for)."""
    return [
        (vocab[0], "most common word (rank 1)"),
        (vocab[40], "common word (rank 40)"),
        (vocab[400], "mid-frequency word (rank 400)"),
        (vocab[3500], "rare word (rank 3500)"),
        (f"{vocab[60]} {vocab[200]}", "two words (ranks 60, 200)"),
        ("sender7", "a sender's name"),
        ("review", "a dev word"),
        ("zzzznothing", "no match"),
    ]


def fill_store(store: object, count: int = MESSAGES, seed: int = 6) -> list[str]:
    """Put `count` realistic messages into a claudematrix Store via commit_sync."""
    from claudematrix.ids import EventID, RoomID, UserID
    from claudematrix.store import SyncBatch
    from claudematrix.types import Direction, Label, Message

    rng = random.Random(seed)
    vocab = _vocabulary(rng)
    weights = list(accumulate(1.0 / (rank + 1) for rank in range(len(vocab))))
    me = UserID("@cc-bench:localhost")
    people = [
        (UserID(f"@cc-peer{k}:localhost"), f"sender{k} project@main on vm") for k in range(12)
    ]
    labels = [Label.PRIVATE] * 6 + [Label.TRUSTED, Label.PUBLIC, Label.SECRET]
    start_ts = 1_700_000_000_000
    batch: list[Message] = []
    for i in range(count):
        peer, name = people[rng.randrange(len(people))]
        incoming = rng.random() < 0.7
        subject = " ".join(rng.choices(vocab, cum_weights=weights, k=rng.randint(3, 8)))
        body = " ".join(rng.choices(vocab, cum_weights=weights, k=rng.randint(15, 80)))
        batch.append(
            Message(
                event_id=EventID(f"$bench{i}:localhost"),
                room_id=RoomID(f"!dm{peer[8:12]}:localhost"),
                sender=peer if incoming else me,
                sender_name=name if incoming else "me",
                direction=Direction.IN if incoming else Direction.OUT,
                subject=subject.capitalize(),
                body=body.capitalize() + ".",
                label=rng.choice(labels),
                origin_ts=start_ts + i * 1000,
                recipient=me if incoming else peer,
                read=not incoming or rng.random() > 0.05,
            )
        )
        if len(batch) == 10_000:
            store.commit_sync(SyncBatch(next_batch=None, messages=batch))  # type: ignore[attr-defined]
            batch = []
    if batch:
        store.commit_sync(SyncBatch(next_batch=None, messages=batch))  # type: ignore[attr-defined]
    return vocab


# The SQL Store.inbox / Store.search run (src/claudematrix/store/_store.py), for the baseline.
_COLS = (
    "id, event_id, room_id, sender, sender_name, recipient, direction, subject, body, label, "
    "origin_ts, reply_to, read, announced"
)
_INBOX_SQL = f"SELECT {_COLS} FROM messages WHERE direction = 'in' {{}} ORDER BY id DESC LIMIT ?"
_SEARCH_SQL = (
    f"SELECT {', '.join('m.' + c.strip() for c in _COLS.split(','))} FROM messages_fts "
    "JOIN messages m ON m.id = messages_fts.rowid WHERE messages_fts MATCH ? "
    "ORDER BY m.id DESC LIMIT ?"
)


def _fts(text: str) -> str:
    return " ".join('"' + w.replace('"', '""') + '"' for w in text.split())


def _raw_search(conn: sqlite3.Connection, query: str) -> list[object]:
    return list(conn.execute(_SEARCH_SQL, (_fts(query), 20)).fetchall())


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def bench_store(ctx: Ctx) -> list[Row]:
    from claudematrix.store import Store

    reps = 100 if ctx.quick else 200
    search_reps = 48 if ctx.quick else 96  # some queries take 100+ ms: fewer, still 6+ each
    path = ctx.env.run_dir / "store-100k.db"
    t0 = time.monotonic()
    store = Store(path)
    mix = searches(fill_store(store))
    fill_s = time.monotonic() - t0
    ctx.log(f"   filled {MESSAGES} messages in {fill_s:.1f} s")
    plain = sqlite3.connect(str(path), isolation_level=None)
    unread = store.unread_count()
    try:
        inbox = (Dist("sqlite3: same SQL", "ms"), Dist("Store.inbox()", "ms"))
        inbox_all = (Dist("sqlite3: same SQL", "ms"), Dist("Store.inbox(include_read)", "ms"))
        search = (Dist("sqlite3: same SQL", "ms"), Dist("Store.search()", "ms"))
        per_query: dict[str, list[float]] = {q: [] for q, _ in mix}
        for i in range(reps):
            inbox[0].samples.append(
                _time(lambda: plain.execute(_INBOX_SQL.format("AND read = 0"), (50,)).fetchall())
            )
            inbox[1].samples.append(_time(lambda: store.inbox()))
            inbox_all[0].samples.append(
                _time(lambda: plain.execute(_INBOX_SQL.format(""), (50,)).fetchall())
            )
            inbox_all[1].samples.append(_time(lambda: store.inbox(include_read=True)))
            if i >= search_reps:
                continue
            query = mix[i % len(mix)][0]
            search[0].samples.append(_time(functools.partial(_raw_search, plain, query)))
            took = _time(functools.partial(store.search, query))
            search[1].samples.append(took)
            per_query[query].append(took)
    finally:
        plain.close()
        store.close()
    note = f"{MESSAGES} messages ({unread} unread), filled in {fill_s:.0f} s; {reps} calls each"
    search_note = f"{search_reps} calls, a mix of {len(mix)} queries; worst: "
    rows = [
        judge("store_inbox", inbox[0], inbox[1], note=note),
        judge("store_inbox_all", inbox_all[0], inbox_all[1], note=note),
        judge("store_search", search[0], search[1], note=search_note + _worst(per_query)),
    ]
    rows[2].extra["per_query_ms"] = {
        q: {
            "what": what,
            "median": round(percentile(per_query[q], 50), 3),
            "max": round(max(per_query[q]), 3),
        }
        for q, what in mix
        if per_query[q]
    }
    return rows


def _worst(per_query: dict[str, list[float]]) -> str:
    query, samples = max(
        ((q, s) for q, s in per_query.items() if s), key=lambda item: percentile(item[1], 50)
    )
    return f"{query!r} median {percentile(samples, 50):.1f} ms"
