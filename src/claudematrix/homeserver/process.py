"""Starting, stopping and inspecting the embedded Synapse daemon.

start() is idempotent and safe when many processes call it at once: check-and-spawn runs
under an flock in the homeserver dir, so exactly one Synapse is started. The daemon runs in
its own session, outlives whoever started it, and logs to <homeserver dir>/homeserver.log.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from claudematrix.config import Config
from claudematrix.errors import ConfigError, HomeserverUnavailable

from ._http import versions_ok
from ._lock import file_lock
from ._procs import MODULE, find_our_synapses, is_gone, is_our_synapse, read_pid, write_pid
from .install import ensure_installed, is_installed
from .layout import HomeserverPaths, homeserver_paths
from .nudge import nudge_peers
from .synapse_config import ensure_config, generated_port

__all__ = [
    "HomeserverStatus",
    "start",
    "stop",
    "status",
    "READY_TIMEOUT",
    "adopt_running",
    "running_pid",
    "spawn_and_wait",
    "terminate_all",
]

# The first start creates the database (a few seconds here); slow disks need more.
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Install (minutes) + first start: how long a second caller waits for the first one.
_LOCK_WAIT = 1800.0 + READY_TIMEOUT
_LOG_ROTATE_BYTES = 10 * 1024 * 1024
_POLL = 0.05
_PORT_RELEASE_WAIT = 3.0


@dataclass(frozen=True)
class HomeserverStatus:
    installed: bool
    running: bool
    pid: int | None
    url: str
    log_path: Path
    external: bool = False  # a homeserver run elsewhere: nothing here starts or stops it


def running_pid(paths: HomeserverPaths) -> int | None:
    """Our live Synapse's pid: the pid file if it is right, else a search of the processes."""
    pid = read_pid(paths.pid_path)
    if pid is not None and is_our_synapse(pid, paths.config_path):
        return pid
    found = find_our_synapses(paths.config_path)
    return found[0] if found else None


def status(config: Config) -> HomeserverStatus:
    """Cheap: reads the pid file and /proc, and asks the server for /versions (1 s max)."""
    url = config.homeserver_url
    if not config.embedded:
        log_path = HomeserverPaths(config.home / "homeserver").log_path  # nothing created
        answering = versions_ok(url, timeout=2.0)
        return HomeserverStatus(True, answering, None, url, log_path, external=True)
    paths = homeserver_paths(config)
    pid = running_pid(paths)
    running = pid is not None and versions_ok(url, timeout=1.0)
    return HomeserverStatus(is_installed(config), running, pid, url, paths.log_path)


def start(config: Config, progress: Callable[[str], None] = lambda _m: None) -> HomeserverStatus:
    """Make sure the homeserver answers; start the embedded one if needed (install first)."""
    url = config.homeserver_url
    if not config.embedded:
        if not versions_ok(url, timeout=5.0):
            raise HomeserverUnavailable(
                f"the homeserver at {url} is not answering: check that it is up and that "
                "CLAUDEMATRIX_HOMESERVER (or 'homeserver' in config.json) is right"
            )
        return status(config)
    paths = homeserver_paths(config)
    with file_lock(
        paths.lock_path,
        timeout=_LOCK_WAIT,
        waiting=lambda: progress("waiting for another process that is starting the homeserver"),
        held_message=(
            "another process has been starting the homeserver for too long; see "
            f"{paths.log_path}, then run `claudematrix down` and `claudematrix up`"
        ),
    ):
        pid = running_pid(paths)
        if pid is not None:
            _check_same_port(config, paths, pid)
            adopt_running(paths, url, pid)
            return status(config)
        paths.pid_path.unlink(missing_ok=True)  # stale: that process is gone or not ours
        python = ensure_installed(config, progress)
        ensure_config(config)
        _check_port_free(config, paths)
        progress(f"starting the homeserver on {url} (log: {paths.log_path})")
        spawn_and_wait(python, paths, url)
        nudge_peers(config)  # what paired machines queued for us while we were away flows now
    return status(config)


def apply_settings(
    config: Config, progress: Callable[[str], None] = lambda _m: None
) -> HomeserverStatus:
    """Rewrite homeserver.yaml from the current settings (e.g. the paired machines); a
    running homeserver whose settings changed is restarted to take them on."""
    if not config.embedded:
        return status(config)
    paths = homeserver_paths(config)
    try:
        before: str | None = paths.config_path.read_text()
    except FileNotFoundError:
        before = None
    ensure_config(config)
    if before != paths.config_path.read_text() and running_pid(paths) is not None:
        progress("restarting the homeserver with the new settings")
        stop(config)
        return start(config, progress)
    return status(config)


def stop(config: Config) -> bool:
    """Stop the embedded homeserver: SIGTERM, then SIGKILL after a deadline."""
    if not config.embedded:
        return False
    paths = homeserver_paths(config)
    with file_lock(
        paths.lock_path,
        timeout=_LOCK_WAIT,
        held_message=(
            "another process is starting the homeserver; wait for it, then run "
            "`claudematrix down` again"
        ),
    ):
        return terminate_all(paths)


def adopt_running(
    paths: HomeserverPaths,
    url: str,
    pid: int,
    *,
    start_command: str = "claudematrix up",
    stop_command: str = "claudematrix down",
) -> None:
    """A Synapse of `paths` runs already (the caller holds the start lock): record it and wait
    until it answers."""
    if read_pid(paths.pid_path) != pid:
        write_pid(paths.pid_path, pid)
    wait_ready(
        url,
        paths,
        pid,
        proc=None,
        log_offset=None,
        start_command=start_command,
        stop_command=stop_command,
    )


def spawn_and_wait(
    python: Path,
    paths: HomeserverPaths,
    url: str,
    *,
    start_command: str = "claudematrix up",
    stop_command: str = "claudematrix down",
) -> None:
    """Start Synapse of `paths` detached (the caller holds the start lock) and wait until it
    answers, or fail with its log's last line."""
    proc, offset = spawn_synapse(python, paths)
    write_pid(paths.pid_path, proc.pid)
    try:
        wait_ready(
            url,
            paths,
            proc.pid,
            proc=proc,
            log_offset=offset,
            start_command=start_command,
            stop_command=stop_command,
        )
    finally:
        if proc.returncode is None:
            # Reap the child when it eventually exits: no zombie lingers in this process.
            threading.Thread(target=proc.wait, name="synapse-reaper", daemon=True).start()


def terminate_all(paths: HomeserverPaths) -> bool:
    """Every Synapse of `paths` stopped (the caller holds the start lock); True if any ran."""
    pids = set(find_our_synapses(paths.config_path))
    pid = running_pid(paths)
    if pid is not None:
        pids.add(pid)
    for each in sorted(pids):
        terminate(each, paths)
    paths.pid_path.unlink(missing_ok=True)
    return bool(pids)


def terminate(pid: int, paths: HomeserverPaths) -> None:
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if is_gone(pid):
                return
            time.sleep(_POLL)


def _check_same_port(config: Config, paths: HomeserverPaths, pid: int) -> None:
    port = generated_port(paths)
    if port is not None and port != config.port:
        raise ConfigError(
            f"the homeserver (pid {pid}) is running on port {port} but the settings now say "
            f"{config.port}: run `claudematrix down` then `claudematrix up` to move it"
        )


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like Synapse's own listener, so a port in TIME_WAIT is not mistaken for "taken".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return False
            raise HomeserverUnavailable(
                f"cannot listen on 127.0.0.1:{port} ({err.strerror}); "
                "set CLAUDEMATRIX_PORT to another port"
            ) from None
    return True


def _check_port_free(config: Config, paths: HomeserverPaths) -> None:
    """Fail in one line if something that is not our server holds the port.

    A previous server that was just killed can hold its socket for a moment after it
    vanished from the process table, so a busy port is retried briefly.
    """
    deadline = time.monotonic() + _PORT_RELEASE_WAIT
    while not _port_is_free(config.port):
        if versions_ok(config.homeserver_url, timeout=1.0):
            what = "a Matrix homeserver that is not this ClaudeMatrix's"
            break
        if time.monotonic() >= deadline:
            what = "another program"
            break
        time.sleep(_POLL)
    else:
        return
    raise HomeserverUnavailable(
        f"port {config.port} on 127.0.0.1 is already used by {what}; stop it or set "
        f"CLAUDEMATRIX_PORT to a free port (state dir: {paths.root.parent})"
    )


def spawn_synapse(python: Path, paths: HomeserverPaths) -> tuple[subprocess.Popen[bytes], int]:
    """Start Synapse detached from the caller; return it and where its log output begins."""
    log = paths.log_path
    if log.exists() and log.stat().st_size > _LOG_ROTATE_BYTES:
        os.replace(log, log.with_name(log.name + ".1"))
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        offset = os.fstat(fd).st_size
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CLAUDEMATRIX_", "PYTHON", "CLAUDE_CODE_"))
        }
        argv = [str(python), "-I", "-m", MODULE, "-c", str(paths.config_path)]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            cwd=paths.root,
            env=env,
            start_new_session=True,
            umask=0o077,
        )
    except OSError as err:
        raise HomeserverUnavailable(
            f"could not run {python} ({err.strerror}); delete {python.parent.parent} "
            "and run `claudematrix up` to reinstall"
        ) from None
    finally:
        os.close(fd)
    return proc, offset


def wait_ready(
    url: str,
    paths: HomeserverPaths,
    pid: int,
    *,
    proc: subprocess.Popen[bytes] | None,
    log_offset: int | None,
    start_command: str = "claudematrix up",
    stop_command: str = "claudematrix down",
) -> None:
    """Poll /versions until it answers; fail fast with the log's last line if Synapse dies."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if versions_ok(url, timeout=1.0):
            return
        # A child we started is judged by its exit status alone: until it has exec'd, its
        # command line is still ours, so under load is_our_synapse would call it gone.
        exited = proc.poll() if proc is not None else None
        stopped = (
            exited is not None if proc is not None else not is_our_synapse(pid, paths.config_path)
        )
        if stopped:
            paths.pid_path.unlink(missing_ok=True)
            code = f" (exit code {exited})" if exited is not None else ""
            last = _last_log_line(paths.log_path, log_offset)
            raise HomeserverUnavailable(
                f"the homeserver stopped during start-up{code}: {last}; see {paths.log_path}"
            )
        if time.monotonic() >= deadline:
            raise HomeserverUnavailable(
                f"the homeserver (pid {pid}) did not answer on {url} within "
                f"{READY_TIMEOUT:.0f} s; see {paths.log_path}, then run `{start_command}` "
                f"again (or `{stop_command}` first if it seems stuck)"
            )
        time.sleep(_POLL)


def _last_log_line(log: Path, offset: int | None) -> str:
    try:
        with open(log, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(offset or 0, size - 8192)
            handle.seek(start)
            tail = handle.read().decode(errors="replace")
    except OSError:
        return "no log output"
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no log output"
