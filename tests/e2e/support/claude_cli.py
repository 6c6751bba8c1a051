"""Running the real, pinned Claude Code CLI offline: locating it, its environment, helpers.

Facts this relies on (seen with 2.1.330 and 2.1.332, see docs/distribution.md and PLATFORM.md):
- `--session-id <uuid>` sets the session id; it is what hooks and the MCP server get as
  CLAUDE_CODE_SESSION_ID and what the fake model sees in metadata.user_id.
- As root, `--permission-mode bypassPermissions` / `--dangerously-skip-permissions` are refused
  unless IS_SANDBOX=1; `--allowedTools mcp__plugin_claudematrix_claudematrix` (a whole server)
  works for anyone, so it is the default here.
- MCP tools are "deferred" behind ToolSearch, but a direct tool_use of one still works.
- A plugin MCP server that misses the 30 s connect timeout is recorded in
  ~/.claude/mcp-needs-auth-cache.json and skipped ("failed") by later sessions: each test gets
  a fresh HOME, so that never leaks between tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from support import CACHE, REPO
from support.daemon import stop_daemons

__all__ = [
    "CLAUDE_CODE_VERSION",
    "REPO",
    "PLUGIN_ID",
    "MCP_SERVER",
    "TOOL_PREFIX",
    "find_claude",
    "Claude",
    "PrintResult",
    "StreamSession",
]

CLAUDE_CODE_VERSION = "2.1.332"
NPM_DIR = CACHE / "claude-code"
PLUGIN_ID = "claudematrix@claudematrix"
MCP_SERVER = "mcp__plugin_claudematrix_claudematrix"  # --allowedTools value for all our tools
TOOL_PREFIX = MCP_SERVER + "__"  # + tool name, e.g. mcp__plugin_claudematrix_claudematrix__send


# Passed through from the test process: pyenv shims (python3 on PATH) need PYENV_ROOT once HOME
# changes; CA bundles; and the state dir / venvs the test chose.
_PASS_ENV = {
    "PYENV_ROOT",
    "PYENV_VERSION",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "CLAUDEMATRIX_HOME",
    "CLAUDEMATRIX_PLUGIN_VENV",
    "CLAUDEMATRIX_SYNAPSE_VENV",
}


def _candidates(base: Path) -> list[Path]:
    modules = base / "node_modules"
    return [
        modules / "@anthropic-ai" / "claude-code-linux-x64" / "claude",
        modules / "@anthropic-ai" / "claude-code-linux-arm64" / "claude",
        modules / ".bin" / "claude",
    ]


def _version_of(binary: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.split()[0] if out.split() else None


def find_claude(base: Path = NPM_DIR, version: str = CLAUDE_CODE_VERSION) -> Path:
    """The pinned CLI binary; npm-installs it into `base` first if missing or another version."""
    for binary in _candidates(base):
        if binary.exists() and _version_of(binary) == version:
            return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"Claude Code {version} not in {base} and npm is not on PATH")
    base.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", f"@anthropic-ai/claude-code@{version}"],
        cwd=base,
        check=True,
        capture_output=True,
        timeout=900,
    )
    for binary in _candidates(base):
        if binary.exists() and _version_of(binary) == version:
            return binary
    raise RuntimeError(f"npm installed @anthropic-ai/claude-code@{version} but no binary found")


@dataclass(frozen=True)
class PrintResult:
    """A finished `claude -p --output-format json` run."""

    returncode: int
    stdout: str
    stderr: str
    session_id: str

    @property
    def json(self) -> dict[str, Any]:
        value = json.loads(self.stdout)
        return value if isinstance(value, dict) else {"result": value}

    @property
    def text(self) -> str:
        """The final assistant text (`result` of the JSON output)."""
        return str(self.json.get("result", ""))


@dataclass
class Claude:
    """One throwaway Claude Code installation: a HOME, a project dir and an environment."""

    binary: Path
    home: Path
    project: Path
    model_url: str | None = None
    env_extra: dict[str, str] = field(default_factory=dict)
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment: nothing of the caller's Claude Code session leaks in."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "TERM": "dumb",
            "ANTHROPIC_API_KEY": "sk-ant-fake-key",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDEMATRIX_HOME": str(self.home / ".claudematrix"),
            # The throwaway HOME must not cost a cold pip cache (the launcher installs).
            "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip"),
        }
        for var, value in os.environ.items():
            if var in _PASS_ENV or var.startswith("PIP_"):
                env[var] = value
        if self.model_url:
            env["ANTHROPIC_BASE_URL"] = self.model_url
        env.update(self.env_extra)
        env.update(extra or {})
        return env

    def run(
        self,
        *args: str,
        timeout: float = 120,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args],
            cwd=self.project,
            env=self.env(env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"claude {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    # -- plugin management -------------------------------------------------------------
    def validate(self, path: Path, strict: bool = True) -> tuple[int, dict[str, Any]]:
        """`claude plugin validate <path> [--strict] --json`: exit code and the report."""
        args = ["plugin", "validate", str(path), "--json", *(["--strict"] if strict else [])]
        proc = self.run(*args, check=False)
        return proc.returncode, json.loads(proc.stdout)

    def marketplace_add(self, source: Path | str) -> str:
        return self.run("plugin", "marketplace", "add", str(source)).stdout

    def plugin_install(self, plugin: str = PLUGIN_ID) -> str:
        return self.run("plugin", "install", plugin).stdout

    def plugin_list(self) -> list[dict[str, Any]]:
        value = json.loads(self.run("plugin", "list", "--json").stdout)
        return value if isinstance(value, list) else []

    def install_plugin_from(self, source: Path | str = REPO, plugin: str = PLUGIN_ID) -> None:
        self.marketplace_add(source)
        self.plugin_install(plugin)

    def mcp_list(self, timeout: float = 90) -> str:
        """`claude mcp list`: spawns each server and health-checks it (`✔ Connected`)."""
        return self.run("mcp", "list", timeout=timeout).stdout

    # -- sessions ------------------------------------------------------------------------
    def run_print(
        self,
        prompt: str,
        session_id: str | None = None,
        extra_args: Sequence[str] = (),
        allowed_tools: Iterable[str] = (MCP_SERVER,),
        timeout: float = 120,
        env: Mapping[str, str] | None = None,
    ) -> PrintResult:
        """`claude -p <prompt> --output-format json` to completion."""
        sid = session_id or str(uuid.uuid4())
        args = ["-p", prompt, "--output-format", "json", "--session-id", sid]
        args += _allowed(allowed_tools)
        proc = self.run(*args, *extra_args, timeout=timeout, check=False, env=env)
        return PrintResult(proc.returncode, proc.stdout, proc.stderr, sid)

    def resume(
        self,
        session_id: str,
        prompt: str,
        allowed_tools: Iterable[str] = (MCP_SERVER,),
        timeout: float = 180,
    ) -> PrintResult:
        """`claude -p --resume <id>`: the same session (and CLAUDE_CODE_SESSION_ID) again.

        Not run_print with the same id: that passes --session-id, which Claude Code refuses
        together with --resume unless forking, and a fork gets a new id (a new account).
        """
        args = ["-p", prompt, "--output-format", "json", "--resume", session_id]
        proc = self.run(*args, *_allowed(allowed_tools), timeout=timeout, check=False)
        return PrintResult(proc.returncode, proc.stdout, proc.stderr, session_id)

    def stream_session(
        self,
        session_id: str | None = None,
        extra_args: Sequence[str] = (),
        allowed_tools: Iterable[str] = (MCP_SERVER,),
        env: Mapping[str, str] | None = None,
    ) -> StreamSession:
        """A live `claude -p --input-format stream-json` session; stdin stays open."""
        sid = session_id or str(uuid.uuid4())
        args = [
            str(self.binary),
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
            "--session-id",
            sid,
            *_allowed(allowed_tools),
            *extra_args,
        ]
        proc = subprocess.Popen(
            args,
            cwd=self.project,
            env=self.env(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.started.append(proc)
        return StreamSession(proc, sid)

    def claudematrix(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """The `claudematrix` CLI from the plugin's venv, with the sessions' environment."""
        env = self.env()
        venv = Path(env.get("CLAUDEMATRIX_PLUGIN_VENV") or REPO / ".venv")
        return subprocess.run(
            [str(venv / "bin" / "python"), "-m", "claudematrix", *args],
            env=env,
            cwd=self.project,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop_all(self) -> None:
        """Stop every process this object started (fixtures call this, also on failure),
        then the daemon and the embedded homeserver our sessions started in CLAUDEMATRIX_HOME."""
        for proc in self.started:
            _stop(proc)
        self.started.clear()
        stop_daemons(Path(self.env()["CLAUDEMATRIX_HOME"]))
        self.stop_homeserver()

    def stop_homeserver(self, timeout: float = 60) -> None:
        env = self.env()
        state = Path(env["CLAUDEMATRIX_HOME"])
        # `down` also finds a server whose pid file was never written (a session killed
        # while it was starting one), so any homeserver dir is reason enough to call it.
        if not (state / "homeserver").is_dir():
            return
        venv = Path(env.get("CLAUDEMATRIX_PLUGIN_VENV") or REPO / ".venv")
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "claudematrix", "down"],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )


def _allowed(tools: Iterable[str]) -> list[str]:
    tools = list(tools)
    return ["--allowedTools", ",".join(tools)] if tools else []


def _stop(proc: subprocess.Popen[str], grace: float = 5) -> None:
    if proc.poll() is not None:
        return
    if proc.stdin is not None and not proc.stdin.closed:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(timeout=grace)
        return
    except subprocess.TimeoutExpired:
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


_EOF = object()


class StreamSession:
    """`claude -p --input-format stream-json --output-format stream-json`, kept alive.

    `send(text)` queues a user turn; `read_until(...)` / `wait_result()` read events with a
    deadline. Every event read is kept in `events`. `close()` ends stdin and stops the process.
    """

    def __init__(self, proc: subprocess.Popen[str], session_id: str) -> None:
        self.proc = proc
        self.session_id = session_id
        self.events: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self._queue: queue.Queue[object] = queue.Queue()
        assert proc.stdout is not None and proc.stderr is not None
        threading.Thread(target=self._reader, args=(proc.stdout,), daemon=True).start()
        threading.Thread(target=self._drain, args=(proc.stderr,), daemon=True).start()

    def _reader(self, stream: IO[str]) -> None:
        for line in stream:
            line = line.strip()
            if not line:
                continue
            try:
                self._queue.put(json.loads(line))
            except ValueError:
                self._queue.put({"type": "_non_json", "line": line})
        self._queue.put(_EOF)

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self.stderr_lines.append(line)

    def send(self, text: str) -> None:
        message = {"type": "user", "message": {"role": "user", "content": text}}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None at end of output. AssertionError on timeout."""
        try:
            item = self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            raise AssertionError(
                f"no event from claude within {timeout:.1f}s; stderr:\n"
                + "".join(self.stderr_lines[-20:])
            ) from None
        if item is _EOF:
            self._queue.put(_EOF)
            return None
        assert isinstance(item, dict)
        self.events.append(item)
        return item

    def read_until(self, predicate: Any, timeout: float = 60) -> dict[str, Any]:
        """Read events until predicate(event) is true; return that event."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(deadline - time.monotonic())
            if event is None:
                raise AssertionError(
                    f"claude exited ({self.proc.poll()}) before the awaited event; stderr:\n"
                    + "".join(self.stderr_lines[-20:])
                )
            if predicate(event):
                return event

    def wait_result(self, timeout: float = 60) -> dict[str, Any]:
        """Read until the turn's `result` event and return it."""
        return self.read_until(lambda e: e.get("type") == "result", timeout)

    def init_event(self, timeout: float = 60) -> dict[str, Any]:
        """The `system/init` event (emitted when a turn starts): tools, mcp_servers, ..."""
        for event in self.events:
            if event.get("type") == "system" and event.get("subtype") == "init":
                return event
        return self.read_until(
            lambda e: e.get("type") == "system" and e.get("subtype") == "init", timeout
        )

    def close(self, timeout: float = 10) -> int:
        _stop(self.proc, grace=timeout)
        return self.proc.returncode

    def __enter__(self) -> StreamSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
