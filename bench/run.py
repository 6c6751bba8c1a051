"""ClaudeMatrix's benchmark suite: every performance budget (bench/budgets.py) against its raw
baseline, measured in one run, interleaved (how long a run takes: docs/performance.md).

    .venv/bin/python -m bench            # full run
    .venv/bin/python -m bench --quick    # CI: fewer samples, 8 sessions instead of 50
    .venv/bin/python bench/run.py ...    # the same

Options: --only store,delivery,...  --out DIR (default bench/results)  --publish (copy the
chart to docs/bench-latency.png)  --keep (keep the run dir for inspection)  --strict (exit 1
when a budget fails; by default only a broken suite fails: exit 2).

The suite starts its own Synapse (embedded homeserver, via claudematrix.homeserver) on a free
loopback port with its own state dir, and stops every process it started on the way out,
including on Ctrl-C, SIGTERM or an error (a janitor process covers even kill -9).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._chart import write_chart  # noqa: E402
from bench._env import REPO, BenchEnv, BenchError, timed  # noqa: E402
from bench._report import loadavg, machine_info, table, versions, write_json  # noqa: E402
from bench._stats import ERROR, FAIL, PASS, Row  # noqa: E402
from bench._world import Ctx  # noqa: E402
from bench.b_cli import bench_cli  # noqa: E402
from bench.b_delivery import bench_delivery, bench_throughput  # noqa: E402
from bench.b_hooks import bench_hooks  # noqa: E402
from bench.b_machines import bench_machines  # noqa: E402
from bench.b_scale import bench_scale  # noqa: E402
from bench.b_start import bench_first_start, bench_new_session  # noqa: E402
from bench.b_store import bench_store  # noqa: E402
from bench.b_team import bench_team  # noqa: E402
from bench.b_wake import bench_wake  # noqa: E402
from bench.budgets import BUDGETS, broken  # noqa: E402

Phase = tuple[str, Callable[[Ctx], list[Row]], list[str]]

# name, function, the ids of the rows it owes (bench/budgets.py): errors if it breaks.
PHASES: list[Phase] = [
    ("hooks", bench_hooks, ["hook_idle", "hook_idle_prompt", "hook_mail"]),
    ("store", bench_store, ["store_inbox", "store_inbox_all", "store_search"]),
    ("start", bench_first_start, ["first_start"]),
    ("session", bench_new_session, ["new_session"]),
    (
        "scale",
        bench_scale,
        ["rss", "fanout", "daemon_rss", "tools_ready", "idle_events", "idle_cpu", "catch_up"],
    ),
    ("delivery", bench_delivery, ["delivery", "delivery_encrypted"]),
    ("wake", bench_wake, ["wake", "wake_recv"]),
    ("throughput", bench_throughput, ["throughput"]),
    ("cli", bench_cli, ["cli_read", "cli_send"]),
    ("machines", bench_machines, ["cross_delivery", "cross_catch_up"]),
    ("team", bench_team, ["team_delivery"]),
]


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI mode: fewer samples, 8 sessions")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated phases: " + ",".join(name for name, _, _ in PHASES),
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument(
        "--publish", action="store_true", help="also copy the chart to docs/bench-latency.png"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run dir (logs, stores)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a budget fails")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        _log("bench: interrupted; every process it started has been stopped")
        return 130


def _main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    owed_by_phases = sorted(rid for _, _, owed in PHASES for rid in owed)
    if owed_by_phases != sorted(BUDGETS):
        _log(f"bench: the phases owe {owed_by_phases}, bench/budgets.py has {sorted(BUDGETS)}")
        return 2
    wanted = {p.strip() for p in args.only.split(",") if p.strip()}
    unknown = wanted - {name for name, _, _ in PHASES}
    if unknown:
        _log(f"bench: unknown phase(s) {', '.join(sorted(unknown))}")
        return 2
    phases = [p for p in PHASES if not wanted or p[0] in wanted]
    started = time.monotonic()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_start = loadavg()
    rows: list[Row] = []
    broken_phases: list[str] = []
    mode = "quick" if args.quick else "full"
    _log(f"bench: {mode} run; load average {load_start} on this machine")
    with BenchEnv(keep=args.keep, log=_log) as env:
        ctx = Ctx(env, args.quick, _log)
        from claudematrix import homeserver

        with timed(f"starting a Synapse of our own on port {env.port} (not timed)", _log):
            homeserver.start(ctx.config)
        for name, fn, owed in phases:
            try:
                with timed(name, _log):
                    got = fn(ctx)
                if sorted(r.id for r in got) != sorted(owed):
                    raise BenchError(f"gave rows {[r.id for r in got]}, owes {owed}")
                rows += got
            except Exception as exc:  # noqa: BLE001 - one broken phase must not hide the rest
                broken_phases.append(name)
                _log(f"bench: phase {name} broke: {exc}\n{traceback.format_exc()}")
                rows += [broken(rid, f"{type(exc).__name__}: {exc}") for rid in owed]
            if not homeserver.status(ctx.config).running:
                homeserver.start(ctx.config)
        versions_found = versions(env.synapse_venv)
        if args.keep:
            _log(f"bench: run dir kept at {env.run_dir}")
    duration = time.monotonic() - started
    load_end = loadavg()
    counts = {v: sum(r.verdict == v for r in rows) for v in (PASS, FAIL, ERROR)}
    notes = [
        "Each figure is a distribution over interleaved samples (baseline, ours, baseline, "
        "ours, ...) taken in the same run; ratios compare the same quantile.",
        f"Load average at start {load_start}, at end {load_end}, on "
        f"{machine_info()['cores']} cores: other work on the machine inflates both sides.",
    ]
    if args.quick:
        notes.append("Quick mode: fewer samples (p99 is rough) and 8 sessions instead of 50.")
    result = {
        "suite": "claudematrix bench",
        "schema": 2,
        "mode": mode,
        "started_at": started_at,
        "duration_s": round(duration, 1),
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine_info(),
        "load_average": {"start": load_start, "end": load_end},
        "versions": versions_found,
        "notes": notes,
        "summary": counts,
        "broken_phases": broken_phases,
        "rows": [r.to_json() for r in rows],
    }
    out: Path = args.out
    write_json(out / "latest.json", result)
    title = f"ClaudeMatrix bench ({mode}, {datetime.now():%Y-%m-%d}): latency, ours vs raw"
    chart = out / "latency.png"
    if write_chart(rows, chart, title) and args.publish:
        shutil.copyfile(chart, REPO / "docs" / "bench-latency.png")
    print(table(rows))
    print(
        f"\n{counts[PASS]} pass, {counts[FAIL]} fail, {counts[ERROR]} error; "
        f"{duration:.0f} s; results in {out / 'latest.json'}, "
        f"chart {chart}"
    )
    if broken_phases:
        _log(f"bench: broken phases: {', '.join(broken_phases)}")
        return 2
    return 1 if args.strict and counts[FAIL] else 0


if __name__ == "__main__":
    sys.exit(main())
