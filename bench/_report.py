"""The results: a table on the terminal, a JSON file, and what they were measured on."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from bench._env import REPO
from bench._stats import Dist, Row

__all__ = ["table", "machine_info", "versions", "write_json", "loadavg"]


def _fmt(x: float, unit: str) -> str:
    if x is None or math.isnan(x):
        return "-"
    if unit == "ms":
        return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 1000 else f"{x:.0f}"
    if 0 < abs(x) < 1:  # e.g. idle CPU in cores: 0.016, not 0.0
        return f"{x:.3f}"
    return f"{x:.1f}"


def _triple(d: Dist | None) -> str:
    if d is None or not d.samples:
        return "-"
    return "/".join(_fmt(d.q(q), d.unit) for q in ("p50", "p95", "p99")) + f" {d.unit}"


def _ratio(row: Row) -> str:
    parts = []
    for key, value in row.ratio.items():
        if key.endswith("_delta"):
            parts.append(f"{value:+.1f} ms")
        else:
            parts.append(f"{key} {value:.2f}x")
    return ", ".join(parts) or "-"


def table(rows: list[Row]) -> str:
    head = ("budget", "baseline p50/p95/p99", "ours p50/p95/p99", "ratio", "limit", "verdict")
    body = [
        (r.title, _triple(r.raw), _triple(r.ours), _ratio(r), r.limit, r.verdict.upper())
        for r in rows
    ]
    widths = [max(len(str(line[i])) for line in [head, *body]) for i in range(len(head))]
    out = []
    for n, line in enumerate([head, *body]):
        cells = (str(cell).ljust(w) for cell, w in zip(line, widths, strict=True))
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    notes = [f"  {r.id}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["", "notes:"] + notes if notes else []))


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "mem_mib": _mem_mib(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions(synapse_venv: Path) -> dict[str, Any]:
    synapse = sorted(synapse_venv.glob("lib/python3*/site-packages/matrix_synapse-*.dist-info"))
    return {
        "claudematrix": _dist_version("claudematrix"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "synapse": synapse[-1].name.removesuffix(".dist-info").split("-")[1] if synapse else None,
        "matrix-nio": _dist_version("matrix-nio"),
        "mcp": _dist_version("mcp"),
        "aiohttp": _dist_version("aiohttp"),
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
