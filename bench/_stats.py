"""Samples, their summaries, and one result row per performance budget (docs/performance.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Dist",
    "Row",
    "percentile",
    "ratio_row",
    "absolute_row",
    "additive_row",
    "higher_is_better_row",
    "pending_row",
    "error_row",
]

PASS, FAIL, INFO, PENDING, ERROR = "pass", "fail", "info", "not measured yet", "error"


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Dist:
    """One side of a comparison: what was measured, in which unit, every sample."""

    label: str
    unit: str
    samples: list[float] = field(default_factory=list)

    def q(self, name: str) -> float:
        return {
            "p50": percentile(self.samples, 50),
            "p95": percentile(self.samples, 95),
            "p99": percentile(self.samples, 99),
            "max": max(self.samples) if self.samples else math.nan,
            "min": min(self.samples) if self.samples else math.nan,
        }[name]

    def summary(self) -> dict[str, Any]:
        s = self.samples
        return {
            "label": self.label,
            "unit": self.unit,
            "n": len(s),
            "median": _round(self.q("p50")),
            "p95": _round(self.q("p95")),
            "p99": _round(self.q("p99")),
            "min": _round(self.q("min")),
            "max": _round(self.q("max")),
            "mean": _round(sum(s) / len(s)) if s else None,
            "samples": [_round(x) for x in s],
        }


def _round(x: float) -> float | None:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), 3)


@dataclass
class Row:
    """One budget: the baseline and ours, the ratio, and the verdict against the budget."""

    id: str
    title: str
    raw: Dist | None
    ours: Dist | None
    limit: str
    verdict: str
    ratio: dict[str, float] = field(default_factory=dict)
    note: str = ""
    pending: bool = False  # depends on work not done yet: no figure, and no fake one
    chart: bool = True  # latency distributions go on the chart
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "baseline": self.raw.summary() if self.raw else None,
            "ours": self.ours.summary() if self.ours else None,
            "ratio": {k: _round(v) for k, v in self.ratio.items()},
            "limit": self.limit,
            "verdict": self.verdict,
            "pending": self.pending,
            "note": self.note,
            "extra": self.extra,
        }


def ratio_row(
    id: str, title: str, raw: Dist, ours: Dist, limits: dict[str, float], note: str = ""
) -> Row:
    """Lower is better; each quantile of ours must be <= limit x the same quantile of raw."""
    ratio = {q: ours.q(q) / raw.q(q) for q in limits}
    ok = all(ratio[q] <= limit for q, limit in limits.items())
    text = ", ".join(f"{q} <= {limit:g}x" for q, limit in limits.items())
    return Row(id, title, raw, ours, text, PASS if ok else FAIL, ratio, note)


def absolute_row(
    id: str,
    title: str,
    ours: Dist,
    limits: dict[str, float],
    raw: Dist | None = None,
    note: str = "",
) -> Row:
    """Lower is better; each quantile of ours must be <= an absolute limit (raw: context)."""
    ok = all(ours.q(q) <= limit for q, limit in limits.items())
    text = ", ".join(f"{q} <= {limit:g} {ours.unit}" for q, limit in limits.items())
    ratio = {q: ours.q(q) / raw.q(q) for q in limits} if raw and raw.samples else {}
    return Row(id, title, raw, ours, text, PASS if ok else FAIL, ratio, note)


def additive_row(
    id: str, title: str, raw: Dist, ours: Dist, q: str, plus: float, note: str = ""
) -> Row:
    """Lower is better; ours at quantile q must be <= raw at q + `plus` (same unit)."""
    ok = ours.q(q) <= raw.q(q) + plus
    ratio = {q: ours.q(q) / raw.q(q), f"{q}_delta": ours.q(q) - raw.q(q)}
    text = f"{q} <= raw + {plus:g} {ours.unit}"
    return Row(id, title, raw, ours, text, PASS if ok else FAIL, ratio, note)


def higher_is_better_row(
    id: str, title: str, raw: Dist, ours: Dist, at_least: float, note: str = ""
) -> Row:
    """Rates: ours' median must be >= at_least x raw's median."""
    ratio = {"p50": ours.q("p50") / raw.q("p50")}
    ok = ratio["p50"] >= at_least
    text = f"p50 >= {at_least:g}x"
    row = Row(id, title, raw, ours, text, PASS if ok else FAIL, ratio, note)
    row.chart = False
    return row


def pending_row(id: str, title: str, limit: str, why: str) -> Row:
    return Row(id, title, None, None, limit, PENDING, note=why, pending=True, chart=False)


def error_row(id: str, title: str, limit: str, why: str) -> Row:
    return Row(id, title, None, None, limit, ERROR, note=why, chart=False)
