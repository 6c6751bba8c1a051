"""Every performance budget, written once: the rule each result row is judged by, by row id.

The phases (bench/b_*.py) turn their samples into rows with `judge`; run.py names the rows
of a phase that broke with `broken`; docs/performance.md lists these budgets and says what
each row measures. Change a limit here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench._env import BenchError
from bench._stats import ERROR, FAIL, PASS, Dist, Row

__all__ = ["BUDGETS", "Budget", "Ratio", "Ceiling", "Allowance", "Floor", "judge", "broken"]


def _baseline(raw: Dist | None) -> Dist:
    if raw is None or not raw.samples:
        raise BenchError("this budget compares with a baseline, and there are no raw samples")
    return raw


@dataclass(frozen=True)
class Ratio:
    """Lower is better: ours at each quantile <= limit x the baseline at the same quantile."""

    limits: dict[str, float]

    def text(self) -> str:
        return ", ".join(f"{q} <= {limit:g}x" for q, limit in self.limits.items())

    def judge(self, raw: Dist | None, ours: Dist) -> tuple[bool, dict[str, float]]:
        base = _baseline(raw)
        ratio = {q: ours.q(q) / base.q(q) for q in self.limits}
        return all(ratio[q] <= limit for q, limit in self.limits.items()), ratio


@dataclass(frozen=True)
class Ceiling:
    """Lower is better: ours at each quantile <= an absolute limit; a baseline is context."""

    limits: dict[str, float]
    unit: str

    def text(self) -> str:
        return ", ".join(f"{q} <= {limit:g} {self.unit}" for q, limit in self.limits.items())

    def judge(self, raw: Dist | None, ours: Dist) -> tuple[bool, dict[str, float]]:
        ratio = {q: ours.q(q) / raw.q(q) for q in self.limits} if raw and raw.samples else {}
        return all(ours.q(q) <= limit for q, limit in self.limits.items()), ratio


@dataclass(frozen=True)
class Allowance:
    """Lower is better: ours at one quantile <= the baseline there + a fixed allowance."""

    quantile: str
    allowance: float
    unit: str

    def text(self) -> str:
        return f"{self.quantile} <= raw + {self.allowance:g} {self.unit}"

    def judge(self, raw: Dist | None, ours: Dist) -> tuple[bool, dict[str, float]]:
        base, q = _baseline(raw), self.quantile
        ratio = {q: ours.q(q) / base.q(q), f"{q}_delta": ours.q(q) - base.q(q)}
        return ours.q(q) <= base.q(q) + self.allowance, ratio


@dataclass(frozen=True)
class Floor:
    """Higher is better (rates): ours' median >= at_least x the baseline's median."""

    at_least: float

    def text(self) -> str:
        return f"p50 >= {self.at_least:g}x"

    def judge(self, raw: Dist | None, ours: Dist) -> tuple[bool, dict[str, float]]:
        ratio = {"p50": ours.q("p50") / _baseline(raw).q("p50")}
        return ratio["p50"] >= self.at_least, ratio


@dataclass(frozen=True)
class Budget:
    title: str  # what the row is called when its phase gives it no more precise title
    rule: Ratio | Ceiling | Allowance | Floor


BUDGETS: dict[str, Budget] = {
    "hook_idle": Budget("Hook, nothing new (PostToolUse)", Ratio({"p50": 1.3})),
    "hook_idle_prompt": Budget("Hook, nothing new (UserPromptSubmit)", Ratio({"p50": 1.3})),
    "hook_mail": Budget("Hook, with new mail (PostToolUse)", Ratio({"p50": 2.5})),
    "store_inbox": Budget("Inbox listing at 100k (unread, 50)", Ceiling({"p95": 5.0}, "ms")),
    "store_inbox_all": Budget("Inbox listing at 100k (all, 50)", Ceiling({"p95": 5.0}, "ms")),
    "store_search": Budget("Full-text search at 100k (20 hits)", Ceiling({"p95": 20.0}, "ms")),
    "first_start": Budget("First start, homeserver installed but stopped", Ratio({"p50": 1.3})),
    "new_session": Budget("New session ready (homeserver running)", Ceiling({"p50": 500.0}, "ms")),
    "rss": Budget("Session RSS (the MCP shim)", Ceiling({"max": 20.0}, "MiB")),
    "daemon_rss": Budget("Daemon RSS, 50 identities", Ceiling({"max": 250.0}, "MiB")),
    "tools_ready": Budget("New session's tools ready (daemon running)", Ratio({"p50": 25.0})),
    "idle_events": Budget("Idle sessions: room events", Ceiling({"max": 0.0}, "events")),
    "idle_cpu": Budget("Idle sessions: CPU", Ceiling({"max": 0.02}, "cores")),
    "catch_up": Budget("Catch-up after the daemon is killed", Ceiling({"max": 2000.0}, "ms")),
    "fanout": Budget("Lobby fan-out to the last session", Ratio({"p50": 1.2})),
    "delivery": Budget(
        "Delivery: send -> recipient's hooks see it", Ratio({"p50": 1.15, "p99": 1.5})
    ),
    "delivery_encrypted": Budget(
        "Encrypted delivery vs plaintext (both ours)", Ratio({"p50": 1.1})
    ),
    "wake": Budget("Idle wake: send -> Stop hook exits", Allowance("p50", 25.0, "ms")),
    "wake_recv": Budget("Idle wake, receive side (raw sender)", Allowance("p50", 25.0, "ms")),
    "throughput": Budget("Throughput: concurrent senders", Floor(0.8)),
    "cli_read": Budget("CLI inbox/read/search/contacts/whoami/status", Ratio({"p50": 8.0})),
    "cli_send": Budget("CLI send", Allowance("p50", 30.0, "ms")),
    "cross_delivery": Budget(
        "Cross-machine delivery: send -> the remote recipient's hooks see it",
        Ratio({"p50": 1.25, "p99": 1.5}),
    ),
    "cross_catch_up": Budget(
        "Cross-machine catch-up after the peer restarts", Ceiling({"max": 10000.0}, "ms")
    ),
    "team_delivery": Budget(
        "Team server: delivery on PostgreSQL vs SQLite", Ratio({"p50": 1.5, "p99": 2.0})
    ),
}


def judge(rid: str, raw: Dist | None, ours: Dist, *, title: str = "", note: str = "") -> Row:
    """Row `rid` with its verdict under its budget. raw: the baseline (context only for a
    Ceiling, which may have none)."""
    budget = BUDGETS[rid]
    if not ours.samples:
        raise BenchError(f"{rid}: no samples to judge")
    ok, ratio = budget.rule.judge(raw, ours)
    verdict = PASS if ok else FAIL
    return Row(rid, title or budget.title, raw, ours, budget.rule.text(), verdict, ratio, note)


def broken(rid: str, why: str) -> Row:
    """Row `rid` when it could not be measured: no figures, and why."""
    budget = BUDGETS[rid]
    return Row(rid, budget.title, None, None, budget.rule.text(), ERROR, note=why)
