"""claudematrix.hooks: the hooks' entry (`main`, as hooks/hooks.json runs it through
hooks/run.py): the session id read without a parser, the fast path that opens no store and
imports almost nothing (only the standard library on any path), and failing open whatever
comes in. Each event runs in a fresh `python -I -S`, as Claude Code runs it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from claudematrix.hooks import EVENTS, session_id_of
from claudematrix.local.layout import TURN_STATE, is_identity_name
from claudematrix.local.markers import has_new_mail
from support import REPO, SRC
from support.hooks import HOOKS_JSON, PYTHON, RUN, SID, World, hook_env, log_text, payload, run_hook


def test_session_id_is_read_without_a_parser() -> None:
    assert session_id_of(json.dumps(payload("post-tool-use")).encode()) == SID
    assert session_id_of(b'{ "session_id" :\n "abc-1" }') == "abc-1"
    for bad in (
        b"",
        b"{}",
        b'{"session_id": 12}',
        b'{"session_id": "../etc"}',
        b'{"session_id": "a/b"}',
        b'{"session_id": "a\\"b"}',
        b'{"session_id": ".hidden"}',
        b'{"session_id": "' + b"x" * 65 + b'"}',
        b'{"session_id": "unterminated',
    ):
        assert session_id_of(bad) is None, bad
    assert is_identity_name(SID) and not is_identity_name("..") and not is_identity_name("é")


# --- the fast path: nothing new opens no store and imports almost nothing -----------------


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


def test_nothing_new_never_opens_the_store(world: World) -> None:
    world.mail()
    assert run_hook("post-tool-use").context  # announced
    world.close()
    (world.dir / "store.db").write_bytes(b"garbage")  # any query would now fail and log
    for suffix in ("-wal", "-shm"):
        (world.dir / f"store.db{suffix}").unlink(missing_ok=True)
    for event in ("post-tool-use", "user-prompt-submit", "stop"):
        ran = run_hook(event)
        assert (ran.code, ran.stdout, ran.stderr) == (0, "", "")
    assert log_text(world.home) == ""


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


# --- malformed input and failing open -----------------------------------------------------


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"session_id": null}',
        b'{"session_id": "../../etc"}',
        b"\xff\xfe\x00garbage",
        b'{"hook_event_name": "PostToolUse"}',
    ],
)
def test_malformed_stdin_exits_0_silently(world: World, event: str, raw: bytes) -> None:
    world.mail()
    ran = run_hook(event, raw)
    assert (ran.code, ran.stdout, ran.stderr) == (0, "", "")
    assert world.flags() == [(1, 0, 0)], "nothing may be announced for a malformed input"


def test_unknown_event_and_no_argument_exit_0(world: World) -> None:
    world.mail()
    assert run_hook("no-such-event", payload("post-tool-use")).code == 0
    proc = subprocess.run(
        [PYTHON, "-I", "-S", str(RUN)], input=b"{}", capture_output=True, env=hook_env()
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_a_broken_store_fails_open_and_is_logged(world: World) -> None:
    world.mail()
    world.close()
    (world.dir / "store.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (world.dir / f"store.db{suffix}").unlink(missing_ok=True)
    ran = run_hook("post-tool-use")
    assert (ran.code, ran.stdout, ran.stderr) == (0, "", "")
    assert "post-tool-use" in log_text(world.home) and "Traceback" in log_text(world.home)
    # The failed claim must not leave "all announced" behind: the next hook tries again.
    assert has_new_mail(str(world.dir))


# --- hooks/hooks.json: how Claude Code starts the entry -----------------------------------


def test_hooks_json_shape() -> None:
    hooks = json.loads(HOOKS_JSON.read_text())["hooks"]
    assert set(hooks) == {"SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd"}
    every = [h for groups in hooks.values() for g in groups for h in g["hooks"]]
    for h in every:
        assert h["type"] == "command"
        assert " -I -S " in h["command"] and "exec " in h["command"]
        assert '[ -x "$P" ] || exit 0' in h["command"]
        assert isinstance(h["timeout"], int)
        event = shlex.split(h["command"].rsplit(";", 1)[1])[-1]
        assert event in EVENTS
    stop = hooks["Stop"][0]["hooks"]
    waiter = [h for h in stop if h.get("asyncRewake")]
    assert len(waiter) == 1 and waiter[0]["command"].endswith("stop-wait")
    assert waiter[0]["timeout"] > 600, "the 600 s default would kill an idle waiter"
    assert hooks["SessionEnd"][0]["hooks"][0]["timeout"] <= 1.5


def _as_claude_code_runs(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    """A hooks.json command through `/bin/sh -c`, a PostToolUse input on its stdin."""
    return subprocess.run(
        ["/bin/sh", "-c", command],
        input=json.dumps(payload("post-tool-use")).encode(),
        capture_output=True,
        env=env,
        timeout=20,
    )


def test_missing_venv_python_leaves_the_session_alone(tmp_path: Path) -> None:
    """The first session starts before the plugin venv exists: the guard exits 0 quietly."""
    hooks = json.loads(HOOKS_JSON.read_text())["hooks"]
    commands = [h["command"] for groups in hooks.values() for g in groups for h in g["hooks"]]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CLAUDE_PLUGIN_ROOT": str(REPO),
        "CLAUDE_PLUGIN_DATA": str(tmp_path / "no-data-yet"),
    }
    for command in commands:
        proc = _as_claude_code_runs(command, env)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b""), command


def test_hooks_json_runs_the_venv_python_through_the_shell(world: World) -> None:
    """The shipped command, as Claude Code runs it (`/bin/sh -c`), with the dev venv."""
    hooks = json.loads(HOOKS_JSON.read_text())["hooks"]
    command = hooks["PostToolUse"][0]["hooks"][0]["command"]
    world.mail("via the shell")
    env = hook_env({"CLAUDE_PLUGIN_ROOT": str(REPO), "CLAUDEMATRIX_PLUGIN_VENV": sys.prefix})
    proc = _as_claude_code_runs(command, env)
    assert proc.returncode == 0
    assert "via the shell" in proc.stdout.decode()
