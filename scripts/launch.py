#!/usr/bin/env python3
"""ClaudeMatrix plugin launcher. Standard library only; run by whatever python3 is on PATH.

    python3 launch.py mcp       this session's MCP server: a small proxy to the machine's daemon
    python3 launch.py install   build the venv now (what `mcp` starts in the background)
    python3 launch.py python    print the venv's interpreter path (empty + exit 1 if not ready)

The session's MCP server is the shim (src/claudematrix/thin/shim.py), run in this process: it
starts the machine's daemon if none answers (the venv's interpreter on the plugin root's src/)
and forwards MCP over the daemon's socket. One copy of the code runs: hooks, shim and daemon
alike import `claudematrix` from the plugin root's src/, so an edited or updated source is
what runs, never a stale installed copy. The venv holds only the pinned dependencies from
pyproject.toml. It lives in $CLAUDE_PLUGIN_DATA/venvs/<version>-<hash>, keyed by the plugin
version, a hash of pyproject.toml and the interpreter, so it is rebuilt exactly when one of
them changes. $CLAUDE_PLUGIN_DATA/venv is a symlink to the newest ready one.

Stdout is the MCP protocol: nothing but JSON-RPC is ever written there. Install output goes to
$CLAUDE_PLUGIN_DATA/install.log. Claude Code gives a stdio server 30 s (MCP_TIMEOUT) to finish
the handshake, and a server that misses it is skipped by later sessions too, so a first start
that has to install waits a short grace period and then answers the handshake itself (a tiny
JSON-RPC stand-in with no tools). When the venv is ready, the stand-in hands the session to
the shim, which replays the handshake to the daemon, and tells Claude Code the tool list
changed. See docs/distribution.md.

Set CLAUDEMATRIX_PLUGIN_VENV=<venv> to use an existing venv (developers, tests).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

MIN_PYTHON = (3, 10)
VENV_ENV = "CLAUDEMATRIX_PLUGIN_VENV"
GRACE_ENV = "CLAUDEMATRIX_LAUNCH_GRACE"  # seconds to wait for an install before shimming
DEFAULT_GRACE = 10.0
READY_MARK = ".claudematrix-ready"


def log(message: str) -> None:
    print(f"claudematrix launcher: {message}", file=sys.stderr, flush=True)


# -- where things are -----------------------------------------------------------------------


def plugin_root() -> Path:
    env = os.environ.get("CLAUDE_PLUGIN_ROOT")
    return Path(env) if env else Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    env = os.environ.get("CLAUDE_PLUGIN_DATA")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "claudematrix" / "plugin-data"


def plugin_version(root: Path) -> str:
    try:
        manifest = json.loads((root / ".claude-plugin" / "plugin.json").read_text())
        return str(manifest.get("version") or "0")
    except (OSError, ValueError):
        return "0"


def venv_key(root: Path) -> str:
    digest = hashlib.sha256()
    digest.update(plugin_version(root).encode())
    with contextlib.suppress(OSError):
        digest.update((root / "pyproject.toml").read_bytes())
    digest.update(sys.version.encode())
    digest.update(os.path.realpath(sys.executable).encode())
    return f"{plugin_version(root)}-{digest.hexdigest()[:12]}"


def venv_path(root: Path, data: Path) -> Path:
    return data / "venvs" / venv_key(root)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_ready(venv: Path) -> bool:
    return (venv / READY_MARK).is_file() and venv_python(venv).exists()


# -- installing -----------------------------------------------------------------------------


def dependencies(root: Path) -> list[str]:
    """The [project] dependencies of the plugin's pyproject.toml (ValueError if unreadable)."""
    text = (root / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10: the one array we need, in the form we write it
        project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
        if project is None:
            raise ValueError("pyproject.toml has no [project] table") from None
        found = re.search(r"^dependencies\s*=\s*\[(.*?)\]", project.group(1), re.M | re.S)
        if found is None:
            return []
        return re.findall(r"\"([^\"]+)\"", re.sub(r"#.*", "", found.group(1)))
    try:
        project = tomllib.loads(text)["project"]
    except (tomllib.TOMLDecodeError, KeyError) as exc:
        raise ValueError(f"pyproject.toml: {exc}") from None
    return [str(d) for d in project.get("dependencies", [])]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in ("PYTHONPATH", "PYTHONHOME", "PIP_USER", "VIRTUAL_ENV"):
        env.pop(var, None)
    return env


def _run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, env=_child_env())


def _point_current(data: Path, venv: Path) -> Path | None:
    """Atomically repoint data/venv at venv; return the previous target, if any."""
    link = data / "venv"
    previous = Path(os.readlink(link)) if link.is_symlink() else None
    tmp = data / f".venv-link-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(venv.relative_to(data))
    os.replace(tmp, link)
    return data / previous if previous is not None and not previous.is_absolute() else previous


def install(root: Path, data: Path) -> int:
    """Build the venv for this plugin version unless it is ready. Safe to run concurrently."""
    data.mkdir(parents=True, exist_ok=True)
    venv = venv_path(root, data)
    with open(data / "install.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(venv):
            return 0
        if not sys.stdout.isatty():  # started by `mcp`: keep a log instead
            with open(data / "install.log", "w") as logfile:
                os.dup2(logfile.fileno(), 1)
                os.dup2(logfile.fileno(), 2)
        print(f"installing claudematrix {plugin_version(root)} into {venv}", flush=True)
        started = time.monotonic()
        if venv.exists():  # a build that died half-way: never trusted, rebuilt from scratch
            shutil.rmtree(venv)
        try:
            needed = dependencies(root)
            _run([sys.executable, "-m", "venv", str(venv)])
            if needed:
                pip = [str(venv_python(venv)), "-m", "pip", "install"]
                _run([*pip, "--disable-pip-version-check", "--no-input", *needed])
        except (OSError, ValueError, subprocess.CalledProcessError) as exc:
            print(f"install failed: {exc}", flush=True)
            shutil.rmtree(venv, ignore_errors=True)
            return 1
        stamp = {"version": plugin_version(root), "python": sys.version, "at": time.time()}
        tmp_mark = venv / f"{READY_MARK}.tmp"
        tmp_mark.write_text(json.dumps(stamp) + "\n")
        os.replace(tmp_mark, venv / READY_MARK)
        try:  # best effort: the venv is ready whatever happens here
            previous = _point_current(data, venv)
            for old in (data / "venvs").iterdir():
                if old != venv and old != previous:
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            print(f"could not update {data / 'venv'} or prune old venvs: {exc}", flush=True)
        print(f"ready in {time.monotonic() - started:.1f}s", flush=True)
    return 0


def start_installer(data: Path) -> subprocess.Popen[bytes]:
    """Run `launch.py install` detached, so it finishes even if this session goes away."""
    data.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "install"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


# -- the handshake shim and proxy -----------------------------------------------------------


def _seconds(value: str | None, scale: float = 1.0) -> float | None:
    try:
        return float(value) / scale if value else None
    except ValueError:
        return None


def _grace() -> float:
    """How long to wait for an install before answering the handshake with the shim."""
    override = _seconds(os.environ.get(GRACE_ENV))
    if override is not None:
        return max(0.0, override)
    timeout = _seconds(os.environ.get("MCP_TIMEOUT"), 1000)  # Claude Code's, in ms, if set
    return min(DEFAULT_GRACE, timeout / 3) if timeout and timeout > 0 else DEFAULT_GRACE


class Shim:
    """Answers the MCP handshake while the venv is built, then hands over to the shim."""

    def __init__(self, installer: subprocess.Popen[bytes], venv: Path, data: Path) -> None:
        self.installer = installer
        self.venv = venv
        self.data = data
        self.version = plugin_version(plugin_root())
        self.lock = threading.Lock()
        self.out_lock = threading.Lock()
        self.init_request: bytes | None = None
        self.initialized: bytes | None = None
        self.proxy: Any = None  # claudematrix.thin.shim.Proxy, once handed over
        self.failure: str | None = None

    def write(self, message: dict[str, Any]) -> None:
        self.write_raw(json.dumps(message).encode() + b"\n")

    def write_raw(self, line: bytes) -> None:
        with self.out_lock:
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()

    def run(self) -> int:
        threading.Thread(target=self._await_install, daemon=True).start()
        stdin = sys.stdin.buffer
        while True:
            line = stdin.readline()
            if not line:
                break
            with self.lock:
                proxy = self.proxy
                if proxy is None:
                    self._handle(line)
                    continue
            proxy.from_claude(line)
        with self.lock:
            proxy = self.proxy
        if proxy is not None:
            proxy.finish()
        return 0

    def _handle(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            return
        if isinstance(message, dict) and message.get("method") == "notifications/initialized":
            self.initialized = line
        if not isinstance(message, dict) or "id" not in message or "method" not in message:
            return  # notifications and stray responses need no answer
        method, params = message["method"], message.get("params") or {}
        result: dict[str, Any] | None = None
        if method == "initialize":
            self.init_request = line
            result = {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {"listChanged": True}},
                "serverInfo": {"name": "claudematrix", "version": self.version},
                "instructions": "ClaudeMatrix is finishing its first-time setup; its tools "
                "appear when it is done.",
            }
        elif method == "ping":
            result = {}
        elif method == "tools/list":
            result = {"tools": [self._failure_tool()] if self.failure else []}
        elif method == "tools/call":
            text = self.failure or "ClaudeMatrix is still installing; try again shortly."
            result = {"content": [{"type": "text", "text": text}], "isError": True}
        if result is None:
            error = {"code": -32601, "message": f"Method not found: {method}"}
            self.write({"jsonrpc": "2.0", "id": message["id"], "error": error})
        else:
            self.write({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def _failure_tool(self) -> dict[str, Any]:
        return {
            "name": "setup_error",
            "description": f"ClaudeMatrix is not available: {self.failure} Tell the user.",
            "inputSchema": {"type": "object", "properties": {}},
        }

    def _await_install(self) -> None:
        code = self.installer.wait()
        if code == 0 and is_ready(self.venv):
            try:
                self._hand_over()
                return
            except (OSError, ValueError) as exc:
                reason = f"its MCP server did not start ({exc})."
        else:
            reason = "installing its Python environment failed."
        log_file = self.data / "install.log"
        with self.lock:
            self.failure = f"{reason} See {log_file}; it retries in the next session."
        log(self.failure)
        self.write({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})

    def _hand_over(self) -> None:
        shim = load_shim(plugin_root())
        proxy = shim.Proxy(python=str(venv_python(self.venv)), version=self.version)
        with self.lock:
            if self.init_request is not None:
                proxy.adopt_handshake(self.init_request, self.initialized)
            try:  # the daemon answers before the tools are said to be there
                proxy.connect()
            except shim.link.DaemonUnavailable as exc:
                raise OSError(str(exc)) from None
            proxy.start()
            self.proxy = proxy
        self.write({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
        session = os.environ.get("CLAUDE_CODE_SESSION_ID", "?")
        note = f"handed over to the ClaudeMatrix daemon: session {session}"
        log(note)
        with contextlib.suppress(OSError), open(self.data / "install.log", "a") as logfile:
            logfile.write(note + "\n")


# -- entry points ---------------------------------------------------------------------------


def load_shim(root: Path) -> Any:
    """claudematrix.thin.shim from the plugin root's src/ (standard library only)."""
    src = str(root / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    import claudematrix.thin.shim as shim

    return shim


# The shim alone, in a fresh interpreter without site-packages (-I -S): what stays for the
# whole session is only what the shim needs, not the launcher's hashing and installing.
SHIM_FROM_SOURCE = (
    "import sys; sys.path.insert(0, sys.argv[1]); from claudematrix.thin.shim import run; "
    "sys.exit(run(python=sys.argv[2], version=sys.argv[3], as_name=sys.argv[4] or None))"
)


def run_shim(venv: Path, root: Path, args: list[str]) -> int:
    """Become the session's MCP shim (exec: same process, same stdin and stdout)."""
    as_name = args[args.index("--as") + 1] if "--as" in args[:-1] else ""
    argv = [sys.executable, "-I", "-S", "-c", SHIM_FROM_SOURCE, str(root / "src")]
    argv += [str(venv_python(venv)), plugin_version(root), as_name]
    os.execv(sys.executable, argv)
    return 1  # (not reached)


def _newer_python() -> str | None:
    for minor in range(14, MIN_PYTHON[1] - 1, -1):
        found = shutil.which(f"python3.{minor}")
        if found:
            return found
    return None


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "mcp"
    if sys.version_info < MIN_PYTHON:
        newer = _newer_python()
        if newer and command in ("mcp", "install", "python"):
            os.execv(newer, [newer, str(Path(__file__).resolve()), *argv])
        log(f"needs Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}; found {sys.version.split()[0]}")
        return 1
    override = os.environ.get(VENV_ENV)
    root, data = plugin_root(), data_dir()
    venv = Path(override) if override else venv_path(root, data)
    if command == "install":
        return install(root, data)
    if command == "python":
        if override or is_ready(venv):
            print(venv_python(venv))
            return 0
        return 1
    if command != "mcp":
        log(f"unknown command {command!r}; use mcp, install or python")
        return 2
    if override or is_ready(venv):
        return run_shim(venv, root, argv[1:])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    installer = start_installer(data)
    log(f"setting up the Python environment (log: {data / 'install.log'})")
    with contextlib.suppress(subprocess.TimeoutExpired):
        installer.wait(timeout=_grace())
    if installer.returncode == 0 and is_ready(venv):
        return run_shim(venv, root, argv[1:])
    return Shim(installer, venv, data).run()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Claude Code stops stdio servers with SIGINT
        sys.exit(0)
