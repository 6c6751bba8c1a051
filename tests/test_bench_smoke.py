"""The benchmark suite must keep running: `python -m bench --quick` end to end.

This checks that the suite works: every budget of bench/budgets.py has its row, measured, with
numbers (a row the suite could not measure fails the test). Never the timings themselves: CI
machines are too noisy for that. The table is printed, so a CI log (`pytest -s`) shows them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.budgets import BUDGETS

from support import REPO
from support.synapse import synapse_venv

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

# Absolute budgets with nothing to compare against.
NO_BASELINE = {"rss", "daemon_rss", "idle_events", "catch_up", "cross_catch_up"}


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def test_quick_suite_produces_every_row(tmp_path: Path) -> None:
    if not (synapse_venv() / "bin" / "python").exists():
        pytest.skip("no Synapse install (run scripts/setup-dev.sh)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAUDE")}
    env["CLAUDEMATRIX_SYNAPSE_VENV"] = str(synapse_venv())
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    print(proc.stdout)
    assert proc.returncode == 0, f"the bench broke (exit {proc.returncode}):\n{proc.stderr[-4000:]}"

    result = json.loads((tmp_path / "latest.json").read_text())
    rows = {row["id"]: row for row in result["rows"]}
    assert sorted(rows) == sorted(BUDGETS), "the run's rows are not the budgets' rows"
    assert result["machine"]["cores"] and result["versions"]["synapse"]
    for rid, row in rows.items():
        assert row["verdict"] in ("pass", "fail"), f"{rid} was not measured: {row['note']}"
        ours = row["ours"]
        assert ours["n"] > 0 and all(_number(ours[q]) for q in ("median", "p95", "p99")), rid
        if rid not in NO_BASELINE:
            base = row["baseline"]
            assert base["n"] > 0 and all(_number(base[q]) for q in ("median", "p95")), rid
            assert row["ratio"] and all(_number(v) for v in row["ratio"].values()), rid
    png = (tmp_path / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


def test_janitor_cleans_up_after_a_killed_bench(tmp_path: Path) -> None:
    """Even kill -9 of the bench leaves no process behind: the janitor sweeps its run."""
    run_dir = tmp_path / "cmbench-x"
    run_dir.mkdir()
    env = dict(os.environ, CMBENCH_RUN=str(run_dir))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    janitor = subprocess.Popen(
        [sys.executable, "-I", str(REPO / "bench" / "_janitor.py"), str(run_dir), "1"],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert janitor.stdin is not None
        janitor.stdin.close()  # what the bench dying looks like to the janitor
        janitor.wait(timeout=30)
        assert child.wait(timeout=10) is not None
        assert not run_dir.exists()
    finally:
        for proc in (child, janitor):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
