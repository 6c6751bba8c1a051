"""scripts/launch.py: builds the plugin's venv once, concurrently safe, stdout always clean.

Most tests use a stand-in `claudematrix` package (no dependencies: the real standard-library
shim and a stand-in daemon serving a tiny MCP server) in a temporary plugin root, so they test
the launcher and the shim, not pip's speed. The venv holds only the
dependencies; the code always runs from the plugin root's src/. The last two build the real
package and run it through the real Claude Code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from e2e.support.claude_cli import REPO, TOOL_PREFIX, Claude
from e2e.support.fake_model import FakeModel, ToolUse
from e2e.support.stdio_client import StdioClient, clean_env
from support import wait_until
from support.daemon import stop_daemons

pytestmark = pytest.mark.e2e

LAUNCHER = REPO / "scripts" / "launch.py"
INSTALL_TIMEOUT = 240.0

STANDIN_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "claudematrix"
version = "0.0.0+standin"
requires-python = ">=3.10"

[tool.setuptools.packages.find]
where = ["src"]
"""

# A stand-in for the daemon (`python -m claudematrix daemon run`): standard library only, it
# speaks the real daemon protocol and serves each session a tiny MCP server with one tool that
# says which interpreter runs it. Lives only in the test's temp dir; the launcher and its shim
# (claudematrix.thin, claudematrix.local) are the real ones.
STANDIN_MAIN = r"""
import json, os, socket, sys, threading
from claudematrix.thin import link

assert sys.argv[1:] == ["daemon", "run"], sys.argv


def serve(conn):
    stream = conn.makefile("rb")
    hello = json.loads(stream.readline())
    if hello.get("want") == "stop":
        conn.sendall(b'{"ok": true}\n')
        os._exit(0)
    version = os.environ.get(link.VERSION_ENV, "0")
    conn.sendall(json.dumps({"ok": True, "pid": os.getpid(), "version": version}).encode() + b"\n")

    def reply(mid, result=None, error=None):
        msg = {"jsonrpc": "2.0", "id": mid}
        msg.update({"error": error} if error else {"result": result})
        conn.sendall(json.dumps(msg).encode() + b"\n")

    for line in iter(stream.readline, b""):
        msg = json.loads(line)
        if "id" not in msg:
            continue
        method = msg.get("method")
        if method == "initialize":
            reply(msg["id"], {"protocolVersion": msg["params"]["protocolVersion"],
                              "capabilities": {"tools": {}}, "instructions": "stand-in server",
                              "serverInfo": {"name": "claudematrix", "version": "standin"}})
        elif method == "tools/list":
            reply(msg["id"], {"tools": [{"name": "whoami", "description": "who runs me",
                                         "inputSchema": {"type": "object", "properties": {}}}]})
        elif method == "tools/call":
            reply(msg["id"], {"content": [{"type": "text", "text": "prefix=" + sys.prefix}]})
        elif method == "ping":
            reply(msg["id"], {})
        else:
            reply(msg["id"], error={"code": -32601, "message": "Method not found"})


path = link.socket_path()
if os.path.exists(path):
    os.unlink(path)
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
with link.bind_address(path) as address:
    listener.bind(address)
listener.listen(16)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


def _plugin_root(dest: Path, *, standin: bool) -> Path:
    """A plugin root in a temp dir: our manifests and launcher, the real or stand-in package."""
    dest.mkdir(parents=True)
    for name in (".claude-plugin", "scripts"):
        shutil.copytree(REPO / name, dest / name)
    shutil.copy2(REPO / ".mcp.json", dest / ".mcp.json")
    if standin:
        (dest / "pyproject.toml").write_text(STANDIN_PYPROJECT)
        package = dest / "src" / "claudematrix"
        package.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copy2(REPO / "src" / "claudematrix" / "__init__.py", package / "__init__.py")
        for stdlib_part in ("local", "thin"):  # the real shim, on the standard library
            shutil.copytree(
                REPO / "src" / "claudematrix" / stdlib_part, package / stdlib_part, ignore=ignore
            )
        (package / "__main__.py").write_text(STANDIN_MAIN)
    else:
        shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
        shutil.copytree(REPO / "src", dest / "src", ignore=ignore)
        for name in ("README.md", "LICENSE"):
            if (REPO / name).exists():
                shutil.copy2(REPO / name, dest / name)
            else:  # the README is being written elsewhere; the build needs one
                (dest / name).write_text("placeholder\n")
    return dest


def _launch(root: Path, data: Path, grace: float, **env: str) -> StdioClient:
    environment = clean_env(
        CLAUDE_PLUGIN_ROOT=str(root),
        CLAUDE_PLUGIN_DATA=str(data),
        CLAUDEMATRIX_LAUNCH_GRACE=str(grace),
        **env,
    )
    return StdioClient([sys.executable, str(root / "scripts" / "launch.py"), "mcp"], environment)


def _assert_clean(client: StdioClient) -> None:
    """Everything the launcher wrote to stdout is JSON-RPC 2.0, one message per line."""
    for line in client.lines:
        message = json.loads(line)
        assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", line


def _tool_text(response: dict[str, Any]) -> str:
    return str(response["result"]["content"][0]["text"])


@pytest.fixture
def standin_root(tmp_path: Path) -> Path:
    return _plugin_root(tmp_path / "plugin", standin=True)


def test_first_launch_builds_venv_second_reuses_it(standin_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _launch(standin_root, data, grace=INSTALL_TIMEOUT) as first:
        init = first.initialize(timeout=INSTALL_TIMEOUT)
        # Installed within the grace period: the real server answered the handshake itself.
        assert init["result"]["instructions"] == "stand-in server"
        prefix = _tool_text(first.request("tools/call", {"name": "whoami", "arguments": {}}))
    _assert_clean(first)
    (venv,) = (data / "venvs").iterdir()
    assert prefix == f"prefix={venv}"
    assert (data / "venv").resolve() == venv.resolve()
    mark = venv / ".claudematrix-ready"
    assert json.loads(mark.read_text())["version"] == "0.1.0"
    assert "installing claudematrix" in (data / "install.log").read_text()
    stamp, log_stamp = mark.stat().st_mtime_ns, (data / "install.log").stat().st_mtime_ns

    started = time.monotonic()
    with _launch(standin_root, data, grace=0) as second:
        assert second.initialize()["result"]["instructions"] == "stand-in server"
    assert time.monotonic() - started < 10
    assert mark.stat().st_mtime_ns == stamp
    assert (data / "install.log").stat().st_mtime_ns == log_stamp  # no installer ran
    assert "setting up" not in second.err


def test_the_plugin_roots_source_runs_never_an_installed_copy(
    standin_root: Path, tmp_path: Path, isolated_home: Path
) -> None:
    """One copy of the code: the shim and the daemon, like the hooks, run the plugin root's
    src/. The venv holds only dependencies, so an edited source (or an update that keeps
    pyproject.toml) is what the next daemon runs, with no rebuild."""
    data = tmp_path / "data"
    with _launch(standin_root, data, grace=INSTALL_TIMEOUT) as first:
        assert first.initialize(timeout=INSTALL_TIMEOUT)["result"]["instructions"] == (
            "stand-in server"
        )
    (venv,) = (data / "venvs").iterdir()
    assert list(venv.glob("lib/python*/site-packages/claudematrix*")) == []
    main = standin_root / "src" / "claudematrix" / "__main__.py"
    main.write_text(main.read_text().replace('"stand-in server"', '"stand-in server, edited"'))
    stop_daemons(isolated_home)  # a running daemon keeps the code it started with
    with _launch(standin_root, data, grace=0) as second:
        assert second.initialize()["result"]["instructions"] == "stand-in server, edited"
    assert [v.name for v in (data / "venvs").iterdir()] == [venv.name]


def test_version_bump_builds_a_new_venv(standin_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _launch(standin_root, data, grace=INSTALL_TIMEOUT) as first:
        first.initialize(timeout=INSTALL_TIMEOUT)
    (old,) = (data / "venvs").iterdir()

    manifest = standin_root / ".claude-plugin" / "plugin.json"
    manifest.write_text(manifest.read_text().replace('"0.1.0"', '"0.1.1"'))
    with _launch(standin_root, data, grace=INSTALL_TIMEOUT) as second:
        second.initialize(timeout=INSTALL_TIMEOUT)
        text = _tool_text(second.request("tools/call", {"name": "whoami", "arguments": {}}))
    new = (data / "venv").resolve()
    assert new.name.startswith("0.1.1-") and text == f"prefix={data / 'venvs' / new.name}"
    assert sorted(p.name for p in (data / "venvs").iterdir()) == sorted([old.name, new.name])


def test_slow_install_is_shimmed_then_handed_over(standin_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _launch(standin_root, data, grace=0) as client:
        probe_started = time.monotonic()
        init = client.initialize(timeout=10)
        assert time.monotonic() - probe_started < 5  # far inside Claude Code's 30 s
        assert init["result"]["capabilities"]["tools"]["listChanged"] is True
        early = client.request("tools/list")["result"]["tools"]
        assert early == [] or [t["name"] for t in early] == ["whoami"]  # (if already ready)

        if not early:
            client.wait_notification("notifications/tools/list_changed", INSTALL_TIMEOUT)
        tools = client.request("tools/list")["result"]["tools"]
        assert [t["name"] for t in tools] == ["whoami"]
        text = _tool_text(client.request("tools/call", {"name": "whoami", "arguments": {}}))
        assert text.startswith(f"prefix={data / 'venvs'}")
        assert client.request("ping")["result"] == {}
    _assert_clean(client)
    assert client.proc.returncode == 0


def test_concurrent_first_launches_share_one_venv(standin_root: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    clients = [_launch(standin_root, data, grace=0) for _ in range(3)]
    try:
        for client in clients:
            client.initialize(timeout=10)
        prefixes = set()
        for client in clients:
            if not client.request("tools/list")["result"]["tools"]:
                client.wait_notification("notifications/tools/list_changed", INSTALL_TIMEOUT)
            call = client.request("tools/call", {"name": "whoami", "arguments": {}})
            prefixes.add(_tool_text(call))
    finally:
        for client in clients:
            client.close()
    for client in clients:
        _assert_clean(client)
    (venv,) = (data / "venvs").iterdir()
    assert prefixes == {f"prefix={venv}"}
    assert (venv / ".claudematrix-ready").is_file()


def test_failed_install_reports_a_setup_error_tool(standin_root: Path, tmp_path: Path) -> None:
    (standin_root / "pyproject.toml").write_text("this is not toml [")
    data = tmp_path / "data"
    with _launch(standin_root, data, grace=0) as client:
        client.initialize(timeout=10)
        client.wait_notification("notifications/tools/list_changed", INSTALL_TIMEOUT)
        (tool,) = client.request("tools/list")["result"]["tools"]
        assert tool["name"] == "setup_error"
        assert str(data / "install.log") in tool["description"]
    _assert_clean(client)
    assert not (data / "venvs").exists() or not any((data / "venvs").iterdir())


def test_override_venv_skips_installing(tmp_path: Path) -> None:
    """CLAUDEMATRIX_PLUGIN_VENV (developers, tests) is used as is: nothing is built."""
    data = tmp_path / "data"
    env = clean_env(CLAUDE_PLUGIN_DATA=str(data), CLAUDEMATRIX_PLUGIN_VENV=str(REPO / ".venv"))
    out = subprocess.run(
        [sys.executable, str(LAUNCHER), "python"], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(REPO / ".venv" / "bin" / "python")
    assert not data.exists()


def test_real_package_first_session_gets_tools(
    claude: Claude, fake_model: FakeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user story: installed from the marketplace, no venv yet, a session starts at once.

    The launcher builds the real package (pip, real dependencies, warm pip cache) while its shim
    answers the handshake; the session connects, then the tools appear (tools/list_changed) and
    a tool call runs in the freshly built venv.
    """
    monkeypatch.delenv("CLAUDEMATRIX_PLUGIN_VENV")
    root = _plugin_root(tmp_path / "plugin", standin=False)
    claude.install_plugin_from(root)
    data = claude.home / ".claude" / "plugins" / "data" / "claudematrix-claudematrix"
    whoami = TOOL_PREFIX + "whoami"
    attempts: list[int] = []

    def call_whoami(body: dict[str, Any]) -> ToolUse | str:
        # Retry once or twice if the tool list refresh has not landed yet (a few ms window).
        results = fake_model.tool_results()
        if (results and "No such tool" not in results[-1]["text"]) or len(attempts) >= 3:
            return "done"
        attempts.append(1)
        return ToolUse(whoami, {})

    fake_model.default = call_whoami
    with claude.stream_session(env={"CLAUDEMATRIX_LAUNCH_GRACE": "1"}) as session:
        log = data / "install.log"
        wait_until(
            lambda: log.exists() and b"handed over" in log.read_bytes(),
            INSTALL_TIMEOUT,
            "the launcher to build the venv and hand over",
        )
        session.send("who am I on Matrix?")
        result = session.wait_result(timeout=120)
        # Each turn starts with an init event listing the tools known then; the first turn
        # can begin a moment before tools/list_changed lands, so the next turn's is the one
        # that shows what the session has.
        session.send("thanks")
        session.wait_result(timeout=120)
        init = [
            e for e in session.events if e.get("type") == "system" and e.get("subtype") == "init"
        ][-1]
    assert result["result"] == "done", result
    (server,) = [s for s in init["mcp_servers"] if s["name"] == "plugin:claudematrix:claudematrix"]
    assert server["status"] == "connected"
    assert whoami in init["tools"]
    last = fake_model.tool_results()[-1]
    assert not last.get("is_error"), last
    assert "@" in last["text"], last  # a Matrix user ID
