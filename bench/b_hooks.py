"""Hook wall time and idle wake, from bench/bench_hooks.py (written alongside the hooks).

bench_hooks.run(quick: bool) -> list[dict] gives one dict per figure:

    {"id": "hook_idle" | "hook_mail" | "wake" | ...,   # required
     "title": "Hook, nothing new (PostToolUse)",        # optional
     "unit": "ms",                                      # optional, default ms
     "baseline": [ms, ...], "ours": [ms, ...],          # samples, interleaved A B A B
     "baseline_label": "...", "ours_label": "...",      # optional
     "note": "...",                                     # optional
     "pending": true}                                   # instead of samples: not measurable yet

("raw"/"raw_samples"/"baseline_samples"/"baseline_ms" and "ours_samples"/"ours_ms" are read
too, as are {"samples": [...]} dicts.) The budget comes from the id: "wake" in it -> p50 <=
raw + 25 ms; "mail" in it -> p50 <= 2.5x; otherwise (nothing new) -> p50 <= 1.3x.
Missing figures become rows marked "not measured yet", never made-up numbers. The idle wake
row "wake" belongs to bench/b_wake.py (Service.send -> waiter exit, the whole path);
bench_hooks' own wake figure (a raw sender, so only our receive side) is shown beside it as
"wake_recv".
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from bench._stats import Dist, Row, additive_row, error_row, pending_row, ratio_row
from bench._world import Ctx

__all__ = ["bench_hooks", "row_from_dict"]

_HOOKS_FILE = Path(__file__).resolve().parent / "bench_hooks.py"
_IDLE = ("hook_idle", "Hook, nothing new", "p50 <= 1.3x")
_MAIL = ("hook_mail", "Hook, with new mail", "p50 <= 2.5x")
_WAKE = ("wake", "Idle wake: send -> Stop hook exits", "p50 <= raw + 25 ms")


def _samples(d: dict[str, Any], keys: tuple[str, ...]) -> list[float] | None:
    for key in keys:
        value = d.get(key)
        if isinstance(value, dict):
            value = value.get("samples")
        if isinstance(value, list) and value and all(isinstance(x, (int, float)) for x in value):
            return [float(x) for x in value]
    return None


def row_from_dict(d: dict[str, Any]) -> Row:
    rid = str(d.get("id") or d.get("name") or "hook")
    kind = _WAKE if "wake" in rid else _MAIL if "mail" in rid else _IDLE
    title = str(d.get("title") or kind[1])
    note = str(d.get("note") or "")
    if d.get("pending"):
        return pending_row(rid, title, kind[2], note or "not measured yet")
    unit = str(d.get("unit") or "ms")
    raw_s = _samples(
        d, ("baseline", "raw", "baseline_samples", "raw_samples", "baseline_ms", "raw_ms")
    )
    ours_s = _samples(d, ("ours", "ours_samples", "ours_ms"))
    if raw_s is None or ours_s is None:
        return error_row(rid, title, kind[2], f"bench_hooks gave no samples: keys {sorted(d)}")
    raw = Dist(str(d.get("baseline_label") or "bare venv python -I -S -c pass"), unit, raw_s)
    ours = Dist(str(d.get("ours_label") or rid), unit, ours_s)
    if kind is _WAKE:
        return additive_row(rid, title, raw, ours, "p50", 25.0, note=note)
    return ratio_row(rid, title, raw, ours, {"p50": 2.5 if kind is _MAIL else 1.3}, note=note)


def bench_hooks(ctx: Ctx) -> list[Row]:
    if not _HOOKS_FILE.exists():
        why = "bench/bench_hooks.py (the hooks' own timings) does not exist yet"
        return [pending_row(k[0], k[1], k[2], why) for k in (_IDLE, _MAIL)]
    module = importlib.import_module("bench.bench_hooks")
    rows = [row_from_dict(d) for d in module.run(ctx.quick)]
    for row in rows:
        if row.id == "wake":  # bench/b_wake.py owns "wake": the whole path from Service.send
            row.id = "wake_recv"
            row.title = "Idle wake, receive side (raw sender)"
    return rows
