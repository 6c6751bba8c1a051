"""`claudematrix server init|start|stop|status|run` for a team's Synapse on PostgreSQL.

Everything lives in the one directory given (0700, secrets 0600). `start` runs Synapse in
the background the way the embedded homeserver runs; `run` execs it in the foreground, for
systemd or a container (docs/team.md).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from claudematrix.errors import ConfigError
from claudematrix.homeserver._http import versions_ok
from claudematrix.homeserver._lock import file_lock
from claudematrix.homeserver._procs import MODULE
from claudematrix.homeserver._yaml import dump_yaml
from claudematrix.homeserver.install import ensure_synapse, installed_python
from claudematrix.homeserver.process import (
    adopt_running,
    running_pid,
    spawn_and_wait,
    terminate_all,
)
from claudematrix.homeserver.synapse_config import ensure_secrets, log_settings
from claudematrix.paths import ensure_dir, write_json_private, write_private

from .admin import admin_token
from .database import probe_dsn, require_synapse_ready
from .layout import TeamDir
from .settings import TeamSettings, load_settings, synapse_yaml_settings

__all__ = [
    "TeamStatus",
    "exec_foreground",
    "init",
    "run_argv",
    "start",
    "status",
    "stop",
    "installed_synapse_python",
    "synapse_python",
]

_HEADER = """\
Written by `claudematrix server init` for a team server on PostgreSQL. Edit with care: it is
not rewritten, and `claudematrix server health` checks what it points at."""
_LOCK_WAIT = 1800.0


@dataclass(frozen=True)
class TeamStatus:
    folder: str
    server_name: str
    public_url: str
    local_url: str
    running: bool
    pid: int | None
    log_path: str


def _venv(team: TeamDir, chosen: str | None) -> tuple[Path, bool]:
    if chosen:
        return Path(chosen), False
    return team.synapse.venv_path, True


def synapse_python(
    team: TeamDir, settings: TeamSettings, progress: Callable[[str], None] = lambda _m: None
) -> Path:
    """Synapse with its PostgreSQL driver, installed on first use."""
    venv, owned = _venv(team, settings.synapse_venv)
    return ensure_synapse(venv, owned, team.synapse, progress, postgres=True)


def installed_synapse_python(team: TeamDir, settings: TeamSettings) -> Path | None:
    """The same, if it is installed already (a health check installs nothing)."""
    venv, owned = _venv(team, settings.synapse_venv)
    return installed_python(venv, owned, postgres=True)


def init(
    directory: Path,
    settings: TeamSettings,
    dsn: str,
    progress: Callable[[str], None] = lambda _m: None,
) -> TeamStatus:
    """Write a team server's config into `directory` (new or empty), after checking that
    PostgreSQL is reachable and set up the way Synapse needs."""
    team = TeamDir(directory)
    if team.settings_path.exists() or team.synapse.config_path.exists():
        raise ConfigError(
            f"{directory} already holds a team server: start it with `claudematrix server "
            f"start --dir {directory}`, or give another --dir"
        )
    ensure_dir(directory)
    python = synapse_python(team, settings, progress)
    args = require_synapse_ready(probe_dsn(python, dsn))
    ensure_secrets(team.synapse)
    paths = team.synapse
    write_private(paths.log_config_path, dump_yaml(log_settings(), _HEADER))
    write_private(
        paths.config_path, dump_yaml(synapse_yaml_settings(settings, team, args), _HEADER)
    )
    write_json_private(team.settings_path, dataclasses.asdict(settings))
    return status(team)


def status(team: TeamDir) -> TeamStatus:
    settings = load_settings(team)
    pid = running_pid(team.synapse)
    running = pid is not None and versions_ok(settings.local_url, timeout=1.0)
    return TeamStatus(
        folder=str(team.root),
        server_name=settings.server_name,
        public_url=settings.public_url,
        local_url=settings.local_url,
        running=running,
        pid=pid,
        log_path=str(team.synapse.log_path),
    )


def start(team: TeamDir, progress: Callable[[str], None] = lambda _m: None) -> TeamStatus:
    settings = load_settings(team)
    paths = team.synapse
    with file_lock(
        paths.lock_path,
        timeout=_LOCK_WAIT,
        held_message=f"another command is starting this team server; see {paths.log_path}",
    ):
        pid = running_pid(paths)
        commands = {
            "start_command": f"claudematrix server start --dir {team.root}",
            "stop_command": f"claudematrix server stop --dir {team.root}",
        }
        if pid is not None:
            adopt_running(paths, settings.local_url, pid, **commands)
            return status(team)
        paths.pid_path.unlink(missing_ok=True)
        python = synapse_python(team, settings, progress)
        progress(f"starting the team server on {settings.local_url} (log: {paths.log_path})")
        spawn_and_wait(python, paths, settings.local_url, **commands)
        admin_token(team, settings)  # made now, so a broken secret shows at once, not later
    return status(team)


def stop(team: TeamDir) -> bool:
    """SIGTERM, then SIGKILL after a deadline; True if a server was running."""
    load_settings(team)
    paths = team.synapse
    with file_lock(
        paths.lock_path,
        timeout=_LOCK_WAIT,
        held_message="another command is starting this team server; wait for it, then retry",
    ):
        return terminate_all(paths)


def run_argv(team: TeamDir) -> list[str]:
    """Synapse in the foreground (`server run`): what a systemd unit or container starts."""
    settings = load_settings(team)
    python = synapse_python(team, settings)
    return [str(python), "-I", "-m", MODULE, "-c", str(team.synapse.config_path)]


def exec_foreground(team: TeamDir) -> None:
    argv = run_argv(team)
    os.chdir(team.root)
    os.umask(0o077)
    os.execv(argv[0], argv)
