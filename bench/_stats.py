"""Samples, their summaries, and the result row of one budget (bench/budgets.py judges it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Dist", "Row", "percentile", "PASS", "FAIL", "ERROR"]

PASS, FAIL, ERROR = "pass", "fail", "error"  # error: not measured, the note says why


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
            "note": self.note,
            "extra": self.extra,
        }
