"""Delivery latency and throughput, each against raw Synapse in the same minute.

Delivery: the time from the sender's call until the recipient has the message.
- raw: a stdlib client PUTs the message; another process long-polls /sync as the recipient
  and stamps the moment the response holding it is parsed.
- ours: session A's `send` tool, called over MCP through its shim as Claude Code calls it;
  the machine's daemon sends it, and receives it for session B (another shim's identity,
  synced by the same daemon); the bench stamps the moment the row is visible in B's store
  and B's mail.marker names it (what the hooks read).
Samples alternate raw, ours, raw, ours.

Context beside the budget: the same raw send from a sender that also keeps its own long-poll
open (`listening-send` in bench/_rawpeer.py), as every session's identity does in the daemon.
The homeserver wakes that poll for the sender's own message too; the plain raw sender has none.

Encrypted delivery: A's and B's DM is end-to-end encrypted (ClaudeMatrix makes every DM so);
the same `send` tool into a plaintext room that holds just the two of them (made by the bench
with A's own token; B joins) is its baseline. Samples alternate with the others.

Throughput: N senders (raw processes; for ours N sessions' `send` tools) each send a burst
at once, to one recipient; messages/s
from the first send to the last send returning (the budget), and to the last message being
in the recipient's hands (reported beside it).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from bench._env import BenchError
from bench._proc import Peer, collect, cpu_seconds, synapse_pid
from bench._rawpeer import Raw, RawError
from bench._stats import Dist, Row
from bench._watch import StoreWatch
from bench._world import Ctx
from bench.b_daemon import daemon_pid
from bench.budgets import judge

__all__ = ["bench_delivery", "bench_throughput"]

DELIVERY_TIMEOUT = 15.0


def bench_delivery(ctx: Ctx) -> list[Row]:
    reps = 30 if ctx.quick else 200
    sender_raw, recipient_raw = ctx.raw_user("raw-a"), ctx.raw_user("raw-b")
    room = sender_raw.create_room([recipient_raw.user_id], direct=True)
    recipient_raw.join(room)
    listener_raw = ctx.raw_user("raw-al")
    listened_room = listener_raw.create_room([recipient_raw.user_id], direct=True)
    recipient_raw.join(listened_room)
    rsend = ctx.raw_peer("raw-send", "send", sender_raw)
    rlisten = ctx.raw_peer("raw-listen", "listening-send", listener_raw)
    rrecv = ctx.raw_peer("raw-recv", "recv", recipient_raw)
    peers = [rsend, rlisten, rrecv]
    ours = ctx.our_peers(["bench-a", "bench-b"])
    a, b = ours
    watch = StoreWatch([b.dir, a.dir])
    try:
        ctx.raw_peers_ready(peers)
        plain_room = _plaintext_room(ctx, a.dir, b.dir)

        def raw_once(token: str, sender: Peer = rsend, to: str = room) -> tuple[float, float]:
            sender.write(f"send {to} {token}")
            sent = sender.expect("sent", DELIVERY_TIMEOUT)
            t0, t1 = float(sent[2]), float(sent[3])
            t = float(rrecv.expect(f"got {token} ", DELIVERY_TIMEOUT, f"raw receipt {token}")[2])
            return (t - t0) * 1000, (t1 - t0) * 1000

        def ours_once(token: str, to: str = b.user_id) -> tuple[float, float, float]:
            a.peer.write(f"send {to} {token}")
            row_seen: list[float] = []

            def visible(i: int) -> bool:
                """The row is in B's store and mail.marker says so: what the hooks check."""
                local = watch.row_id(i, token + " ")
                if local is None:
                    return False
                if not row_seen:
                    row_seen.append(time.monotonic())
                return watch.marker(i) >= local

            seen = watch.wait(
                visible,
                [0],
                DELIVERY_TIMEOUT,
                f"message {token} in the recipient's store",
                abort=a.peer.failure,
            )
            sent = a.peer.expect("sent", DELIVERY_TIMEOUT)
            t0, t1 = float(sent[2]), float(sent[3])
            # The sample ends here: A's own events never reach its sync (not_senders), so
            # no echo is left in flight to disturb the next one.
            return (seen[0] - t0) * 1000, (row_seen[0] - t0) * 1000, (t1 - t0) * 1000

        for i in range(3):  # warm-up: the DM room is made, connections open, keys shared
            raw_once(f"dw{i}r")
            raw_once(f"dw{i}l", rlisten, listened_room)
            ours_once(f"dw{i}o")
            ours_once(f"dw{i}p", plain_room)
        _require_encrypted_dm(ctx, a.dir, b.user_id)
        raw = Dist("raw Synapse send -> /sync receipt", "ms")
        raw_returned = Dist("raw send returns", "ms")
        mine = Dist("send tool -> row + mail.marker in recipient's dir", "ms")
        row_only = Dist("send tool -> row in recipient's store", "ms")
        returned = Dist("send tool returns", "ms")
        plain = Dist("send tool -> recipient, plaintext room of the two", "ms")
        listened = Dist("raw send -> /sync receipt, the sender long-polling too", "ms")
        for i in range(reps):
            got_raw, back_raw = raw_once(f"d{i}r")
            raw.samples.append(got_raw)
            raw_returned.samples.append(back_raw)
            got, row_at, back = ours_once(f"d{i}o")
            mine.samples.append(got)
            row_only.samples.append(row_at)
            returned.samples.append(back)
            plain.samples.append(ours_once(f"d{i}p", plain_room)[0])
            listened.samples.append(raw_once(f"d{i}l", rlisten, listened_room)[0])
    finally:
        watch.close()
        ctx.stop(peers)
        ctx.stop(ours)
    row = judge(
        "delivery",
        raw,
        mine,
        note=f"{reps} pairs; ours ends when the row is in the store and mail.marker names it; "
        f"the row alone: p50 {row_only.q('p50'):.1f} ms, p99 {row_only.q('p99'):.1f} ms; "
        f"the send call returns after p50 {returned.q('p50'):.1f} ms (raw "
        f"{raw_returned.q('p50'):.1f} ms); context: a raw sender that keeps its own long-poll "
        f"open, as a session does, delivers in p50 {listened.q('p50'):.1f} ms "
        f"(ours {mine.q('p50') / listened.q('p50'):.2f}x that)",
    )
    row.extra.update(
        row_visible_ms=row_only.summary(),
        send_return_ms=returned.summary(),
        raw_send_return_ms=raw_returned.summary(),
        raw_listening_sender_ms=listened.summary(),
    )
    sealed = Dist("send tool -> recipient, their encrypted DM", "ms", list(mine.samples))
    encrypted = judge(
        "delivery_encrypted",
        plain,
        sealed,
        note=f"{reps} pairs, the same send tool and recipient: into their end-to-end "
        "encrypted DM (Megolm) vs into a plaintext room of just the two",
    )
    return [row, encrypted]


def _require_encrypted_dm(ctx: Ctx, sender_dir: Path, peer: str) -> None:
    """The comparison means nothing unless the DM really is encrypted."""
    uri = f"file:{sender_dir / 'store.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        found = conn.execute(
            "SELECT room_id FROM rooms WHERE kind = 'dm' AND peer = ?", (peer,)
        ).fetchone()
    if found is None:
        raise BenchError("the sender's store has no DM with the recipient")
    sender = json.loads((sender_dir / "account.json").read_text())
    raw = Raw(ctx.url, str(sender["access_token"]), str(sender["user_id"]))
    try:
        state = raw.call("GET", f"/_matrix/client/v3/rooms/{found[0]}/state/m.room.encryption/")
    except RawError:
        state = {}
    finally:
        raw.close()
    if state.get("algorithm") != "m.megolm.v1.aes-sha2":
        raise BenchError(f"the DM {found[0]} is not end-to-end encrypted")


def _plaintext_room(ctx: Ctx, sender_dir: Path, recipient_dir: Path) -> str:
    """A room of just the two, without encryption, made with the sender's own account."""
    sender, recipient = (
        json.loads((d / "account.json").read_text()) for d in (sender_dir, recipient_dir)
    )
    made_by = Raw(ctx.url, str(sender["access_token"]), str(sender["user_id"]))
    joins = Raw(ctx.url, str(recipient["access_token"]), str(recipient["user_id"]))
    try:
        room = made_by.create_room([joins.user_id])
        joins.join(room)
    finally:
        made_by.close()
        joins.close()
    return room


def bench_throughput(ctx: Ctx) -> list[Row]:
    n = 4 if ctx.quick else 8
    per = 15 if ctx.quick else 20
    rounds = 2 if ctx.quick else 3
    total = n * per
    # raw: n senders, each with its own DM to one recipient
    recipient_raw = ctx.raw_user("raw-tp-r")
    senders_raw = [ctx.raw_user(f"raw-tp-s{k}") for k in range(n)]
    rooms = _dms_with(recipient_raw, senders_raw)
    # Context: as many raw senders again, each also long-polling (as a session's identity).
    listeners_raw = [ctx.raw_user(f"raw-tp-l{k}") for k in range(n)]
    listened_rooms = _dms_with(recipient_raw, listeners_raw)
    rrecv = ctx.raw_peer("raw-tp-recv", "recv", recipient_raw)
    rsends = [ctx.raw_peer(f"raw-tp-send{k}", "send", s) for k, s in enumerate(senders_raw)]
    rlistens = [
        ctx.raw_peer(f"raw-tp-listen{k}", "listening-send", s) for k, s in enumerate(listeners_raw)
    ]
    raw_peers = [rrecv, *rsends, *rlistens]
    ours = ctx.our_peers(["bench-tp-r"] + [f"bench-tp-s{k}" for k in range(n)])
    recipient, senders = ours[0], ours[1:]
    watch = StoreWatch([recipient.dir])
    try:
        ctx.raw_peers_ready(raw_peers)
        for k, s in enumerate(senders):  # warm-up: DM rooms made and joined
            s.peer.write(f"send {recipient.user_id} tpw{k}")
        watch.wait(
            lambda i: watch.count(i, "tpw") >= n,
            [0],
            60.0,
            "warm-up messages",
            abort=lambda: next(filter(None, (s.peer.failure() for s in senders)), None),
        )
        for s in senders:
            s.peer.expect("sent", 30.0)
        for k, room in enumerate(rooms):
            rsends[k].write(f"send {room} tpw{k}r")
            rlistens[k].write(f"send {listened_rooms[k]} tpw{k}l")
        collect(raw_peers, _counter(2 * n, 0, "tpw"), 30.0, "raw warm-up")

        syn_pid = synapse_pid(ctx.config)
        raw_pids = [rrecv.proc.pid] + [p.proc.pid for p in rsends]
        listening_pids = [rrecv.proc.pid] + [p.proc.pid for p in rlistens]
        # Ours: the session processes, their shims and the daemon that does the work.
        our_pids = [p.peer.proc.pid for p in ours] + [p.shim_pid for p in ours]
        our_pids.append(daemon_pid(ctx.env.home))
        cpu: dict[str, list[float]] = {
            "raw_synapse": [],
            "raw_clients": [],
            "ours_synapse": [],
            "ours_clients": [],
            "listening_synapse": [],
            "listening_clients": [],
        }

        def cpu_round(
            side: str, pids: list[int], fn: Callable[[], tuple[float, float]]
        ) -> tuple[float, float]:
            """Run a round; note CPU ms per message spent by Synapse and by the clients."""
            syn0, cli0 = cpu_seconds([syn_pid]), cpu_seconds(pids)
            rates = fn()
            cpu[f"{side}_synapse"].append((cpu_seconds([syn_pid]) - syn0) * 1000 / total)
            cpu[f"{side}_clients"].append((cpu_seconds(pids) - cli0) * 1000 / total)
            return rates

        def raw_round(tag: str, senders: list[Peer], to: list[str]) -> tuple[float, float]:
            for k, room in enumerate(to):
                senders[k].write(f"burst {room} {per} {tag}k{k}")
            bursts: list[tuple[float, float]] = []
            got: list[float] = []

            def accept(i: int, f: list[str]) -> bool:
                if i > 0 and f[:1] == ["burst"] and f[1].startswith(tag):
                    bursts.append((float(f[2]), float(f[3])))
                elif i == 0 and f[:1] == ["got"] and f[1].startswith(tag + "k"):
                    got.append(float(f[2]))
                return len(bursts) == n and len(got) == total

            collect([rrecv, *senders], accept, 120.0, f"raw burst {tag}")
            return _rates(bursts, max(got), total)

        def ours_round(tag: str) -> tuple[float, float]:
            for k, s in enumerate(senders):
                s.peer.write(f"burst {recipient.user_id} {per} {tag}k{k}")
            seen = watch.wait(
                lambda i: watch.count(i, tag + "k") >= total,
                [0],
                120.0,
                f"burst {tag} in the recipient's store",
                poll=0.02,
                abort=lambda: next(filter(None, (s.peer.failure() for s in senders)), None),
            )
            bursts = []
            for s in senders:
                f = s.peer.expect("burst", 120.0)
                bursts.append((float(f[2]), float(f[3])))
            return _rates(bursts, seen[0], total)

        raw_sent, raw_got = Dist("raw Synapse sends", "msg/s"), Dist("raw delivered", "msg/s")
        our_sent, our_got = Dist("send tool", "msg/s"), Dist("ours delivered", "msg/s")
        listening_sent = Dist("raw Synapse sends, senders long-polling", "msg/s")
        for r in range(rounds):
            plain_round = functools.partial(raw_round, f"tp{r}r", rsends, rooms)
            sent, got_rate = cpu_round("raw", raw_pids, plain_round)
            raw_sent.samples.append(sent)
            raw_got.samples.append(got_rate)
            listening_round = functools.partial(raw_round, f"tp{r}l", rlistens, listened_rooms)
            sent, _ = cpu_round("listening", listening_pids, listening_round)
            listening_sent.samples.append(sent)
            sent, got_rate = cpu_round("ours", our_pids, functools.partial(ours_round, f"tp{r}o"))
            our_sent.samples.append(sent)
            our_got.samples.append(got_rate)
    finally:
        watch.close()
        ctx.stop(raw_peers)
        ctx.stop(ours)
    row = judge(
        "throughput",
        raw_sent,
        our_sent,
        title=f"Throughput: {n} concurrent senders",
        note=f"{rounds} rounds x {n} senders x {per} msgs, one recipient; delivered to the "
        f"recipient: raw p50 {raw_got.q('p50'):.1f}/s, ours p50 {our_got.q('p50'):.1f}/s; "
        "CPU ms per message, Synapse / clients: raw "
        f"{_mean(cpu['raw_synapse']):.1f} / {_mean(cpu['raw_clients']):.1f}, ours "
        f"{_mean(cpu['ours_synapse']):.1f} / {_mean(cpu['ours_clients']):.1f}; context: raw "
        f"senders that keep their own long-poll open, as sessions do: p50 "
        f"{listening_sent.q('p50'):.1f}/s (ours {our_sent.q('p50') / listening_sent.q('p50'):.2f}x "
        f"that), Synapse CPU {_mean(cpu['listening_synapse']):.1f} ms per message",
    )
    row.extra.update(
        delivered_raw=raw_got.summary(),
        delivered_ours=our_got.summary(),
        cpu_ms_per_message={k: [round(x, 2) for x in v] for k, v in cpu.items()},
        raw_listening_senders=listening_sent.summary(),
    )
    return [row]


def _dms_with(recipient: Raw, senders: list[Raw]) -> list[str]:
    """A DM of each sender with `recipient`, joined: the room ids, in the senders' order."""
    rooms = []
    for sender in senders:
        room = sender.create_room([recipient.user_id], direct=True)
        recipient.join(room)
        rooms.append(room)
    return rooms


def _counter(n: int, index: int, prefix: str) -> Callable[[int, list[str]], bool]:
    got: list[list[str]] = []

    def accept(i: int, f: list[str]) -> bool:
        if i == index and f[:1] == ["got"] and f[1].startswith(prefix):
            got.append(f)
        return len(got) >= n

    return accept


def _rates(bursts: list[tuple[float, float]], t_last_got: float, total: int) -> tuple[float, float]:
    start = min(t0 for t0, _ in bursts)
    end = max(t1 for _, t1 in bursts)
    return total / (end - start), total / (t_last_got - start)


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")
