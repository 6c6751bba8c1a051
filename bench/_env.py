"""The bench's world: its own state dir, free port, Synapse and child processes, all cleaned up.

Everything the bench starts carries CMBENCH_RUN=<run dir> in its environment (Synapse keeps
it too: homeserver.spawn_synapse only drops CLAUDEMATRIX_*, PYTHON* and CLAUDE_CODE_* variables), so
cleanup finds every process by that marker, whoever spawned it. A janitor process does the
same sweep if the bench itself is killed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from bench import _janitor

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
PYTHON = sys.executable
HOOK = REPO / "hooks" / "run.py"  # what hooks/hooks.json runs, with PYTHON -I -S

__all__ = ["BenchEnv", "free_port", "wait_for", "REPO", "PYTHON", "HOOK", "BenchError"]

# Settings of the developer's or CI's environment that must not leak into the bench.
_SCRUB = (
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDEMATRIX_HOMESERVER",
    "CLAUDEMATRIX_SERVER_NAME",
    "CLAUDEMATRIX_REGISTRATION_SHARED_SECRET",
    "CLAUDEMATRIX_REGISTRATION_TOKEN",
    "CLAUDEMATRIX_USER",
    "CLAUDEMATRIX_PASSWORD",
    "CLAUDEMATRIX_ACCESS_TOKEN",
    "CLAUDEMATRIX_MACHINE_NAME",
    "CLAUDE_PROJECT_DIR",
)


class BenchError(Exception):
    """The suite itself cannot go on (as opposed to a budget that fails)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.01) -> Any:
    """Poll `condition` until it is truthy; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def _synapse_venv() -> Path:
    venv = Path(os.environ.get("CLAUDEMATRIX_SYNAPSE_VENV") or REPO / ".cache" / "synapse-venv")
    if not (venv / "bin" / "python").exists():
        raise BenchError(
            f"no Synapse install at {venv}: run scripts/setup-dev.sh (or set "
            "CLAUDEMATRIX_SYNAPSE_VENV to a venv with matrix-synapse)"
        )
    return venv


class BenchEnv:
    """A run directory, a free port, the environment for children, and teardown."""

    def __init__(self, *, keep: bool = False, log: Callable[[str], None] = print) -> None:
        self.keep = keep
        self.log = log
        self.run_dir = Path(tempfile.mkdtemp(prefix="cmbench-"))
        self.home = self.run_dir / "home"
        self.port = free_port()
        self.synapse_venv = _synapse_venv()
        self.procs: list[subprocess.Popen[bytes]] = []
        self._saved_env = dict(os.environ)
        self._janitor: subprocess.Popen[bytes] | None = None
        self._old_handlers: dict[int, Any] = {}

    # --- set-up -------------------------------------------------------------------------

    def __enter__(self) -> BenchEnv:
        for var in _SCRUB:
            os.environ.pop(var, None)
        os.environ.update(
            {
                "CLAUDEMATRIX_HOME": str(self.home),
                "CLAUDEMATRIX_PORT": str(self.port),
                "CLAUDEMATRIX_SYNAPSE_VENV": str(self.synapse_venv),
                "CLAUDEMATRIX_MACHINE_NAME": "bench",
                _janitor.MARKER_ENV: str(self.run_dir),
            }
        )
        self._janitor = subprocess.Popen(
            [PYTHON, "-I", str(BENCH_DIR / "_janitor.py"), str(self.run_dir), str(os.getpid())]
            + (["--keep"] if self.keep else []),
            stdin=subprocess.PIPE,
            start_new_session=True,
        )
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[sig] = signal.signal(sig, _raise_exit)
        return self

    def config(self) -> Any:
        from claudematrix.config import load_config

        return load_config()

    def child_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        env.update(extra)
        return env

    def spawn(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stderr_name: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """A child with pipes on stdin/stdout; stderr to a log file in the run dir."""
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        name = stderr_name or f"proc-{len(self.procs)}"
        with open(logs / f"{name}.log", "ab") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env or self.child_env(),
                cwd=cwd or REPO,
            )
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str, lines: int = 5) -> str:
        path = self.run_dir / "logs" / f"{name}.log"
        try:
            text = path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    # --- teardown -----------------------------------------------------------------------

    def stop_procs(
        self, procs: list[subprocess.Popen[bytes]], *, eof_wait: float = 5.0, grace: float = 10.0
    ) -> None:
        """Close stdin (our children exit on EOF), then SIGTERM, then SIGKILL, by pid."""
        for proc in procs:
            if proc.poll() is None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
        for sig, wait in ((None, eof_wait), (signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            for proc in procs:
                if proc.poll() is None and sig is not None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(sig)
            deadline = time.monotonic() + wait
            while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
                time.sleep(0.02)
        for proc in procs:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
            if proc in self.procs:
                self.procs.remove(proc)

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop_procs(list(self.procs))
            with contextlib.suppress(Exception):
                from claudematrix import daemon, homeserver

                daemon.stop(self.home)  # first: it would start the homeserver again
                homeserver.stop(self.config())
            # Anything else of this run (Synapse started by a child, a stray grandchild).
            spared = {os.getpid()} | ({self._janitor.pid} if self._janitor else set())
            _janitor.sweep(str(self.run_dir), spared, grace=3.0)
        finally:
            if self._janitor is not None and self._janitor.stdin is not None:
                self._janitor.stdin.close()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._janitor.wait(timeout=20)
            if not self.keep:
                shutil.rmtree(self.run_dir, ignore_errors=True)
            os.environ.clear()
            os.environ.update(self._saved_env)
            for sig, handler in self._old_handlers.items():
                signal.signal(sig, handler)


def _raise_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def timed(label: str, log: Callable[[str], None]) -> Iterator[None]:
    start = time.monotonic()
    log(f"-- {label} ...")
    yield
    log(f"   {label}: {time.monotonic() - start:.1f} s")
