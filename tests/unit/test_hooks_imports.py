"""The hooks import only the standard library, and the fast path almost nothing.

Each event runs in a fresh `python -I -S` (as hooks.json runs it) through
claudematrix.hooks.main, then reports every module it imported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from claudematrix.local.layout import TURN_STATE
from unit.test_hooks import PYTHON, REPO, World, hook_env, payload

SRC = REPO / "src"
DRIVER = """
import sys
out, event = sys.argv[1], sys.argv[2]
sys.path.insert(0, {src!r})
before = set(sys.modules)
from claudematrix.hooks import main
sys.argv = ["run.py", event]
code = main()
with open(out, "w") as handle:
    handle.write(repr((code, sorted(set(sys.modules) - before))))
"""
# Third-party packages the plugin's venv holds, and our own modules that pull them (or a lot
# of the standard library) in. None of them may appear in a hook.
FORBIDDEN = {
    "nio",
    "mcp",
    "click",
    "aiohttp",
    "httpx",
    "anyio",
    "pydantic",
    "starlette",
    "uvicorn",
    "jsonschema",
    "claudematrix.config",
    "claudematrix.store",
    "claudematrix.service",
    "claudematrix.matrix",
    "claudematrix.mcp_server",
    "claudematrix.cli",
    "claudematrix.types",
    "claudematrix.render",
    "claudematrix.homeserver",
}
# Costly standard modules the hooks avoid on purpose (PLATFORM.md: start-up costs).
AVOIDED = {"typing", "json", "re", "dataclasses", "enum", "pathlib", "asyncio", "logging"}


@pytest.fixture
def world(isolated_home: Path) -> Iterator[World]:
    w = World(isolated_home)
    try:
        yield w
    finally:
        w.close()


def imported(event: str, data: dict[str, object], tmp_path: Path) -> tuple[int, list[str]]:
    out = tmp_path / f"modules-{event}.txt"
    proc = subprocess.run(
        [PYTHON, "-I", "-S", "-c", DRIVER.format(src=str(SRC)), str(out), event],
        input=json.dumps(data).encode(),
        capture_output=True,
        env=hook_env(),
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    code, modules = eval(out.read_text())  # noqa: S307 - our own repr of (int, list[str])
    return int(code), list(modules)


def third_party(modules: list[str]) -> list[str]:
    return [
        m
        for m in modules
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "claudematrix"
    ]


# The fast path: the hooks package and the two pieces of the on-disk contract it reads (where
# the files are, and the markers), each importing only `sys` and the built-in `posix`.
FAST_PATH = [
    "claudematrix",
    "claudematrix.hooks",
    "claudematrix.local",
    "claudematrix.local.layout",
    "claudematrix.local.markers",
]


def test_nothing_new_imports_only_the_hooks_package(world: World, tmp_path: Path) -> None:
    world.mail()
    assert imported("post-tool-use", payload("post-tool-use"), tmp_path)[1]  # announces
    for event in ("post-tool-use", "user-prompt-submit", "stop"):
        code, modules = imported(event, payload(event), tmp_path)
        assert code == 0
        assert modules == FAST_PATH, (event, modules)


@pytest.mark.parametrize(
    "event",
    ["session-start", "user-prompt-submit", "post-tool-use", "stop", "stop-wait", "session-end"],
)
def test_every_event_imports_only_the_standard_library(
    world: World, tmp_path: Path, event: str
) -> None:
    world.mail("something new")
    (world.dir / TURN_STATE).write_bytes(b"idle")  # the waiter answers at once
    code, modules = imported(event, payload(event), tmp_path)
    assert code == (2 if event == "stop-wait" else 0)
    assert third_party(modules) == [], modules
    assert not FORBIDDEN & set(modules), FORBIDDEN & set(modules)
    assert not AVOIDED & set(modules), AVOIDED & set(modules)
