"""Installing Synapse into a venv of its own (pip), once, with progress on a callback."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from claudematrix.config import Config
from claudematrix.errors import HomeserverInstallFailed

from ._lock import file_lock
from .layout import HomeserverPaths, homeserver_paths

__all__ = [
    "SYNAPSE_VERSION",
    "SYNAPSE_REQUIREMENT",
    "POSTGRES_DRIVER",
    "ensure_installed",
    "ensure_synapse",
    "installed_python",
    "is_installed",
    "venv_python",
]

SYNAPSE_VERSION = "1.163.2"
SYNAPSE_REQUIREMENT = f"matrix-synapse=={SYNAPSE_VERSION}"
# Synapse's `postgres` extra builds psycopg2 from source (a compiler and libpq headers); the
# binary wheel is the same module, ready to import. Only a team server (on PostgreSQL) needs it.
POSTGRES_DRIVER = "psycopg2-binary"
# Written into a venv we made, after pip succeeded: a half-finished install is never "installed".
_MARKER = ".claudematrix-synapse"
_INSTALL_LOCK_WAIT = 1800.0
# pip lines worth showing a person; the full output goes to install.log.
_SHOWN_PREFIXES = ("Collecting", "Installing", "Successfully", "ERROR", "error:")


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _venv_for(config: Config) -> tuple[Path, bool]:
    """The venv to use and whether ClaudeMatrix owns it."""
    if config.synapse_venv is not None:
        return config.synapse_venv, False
    return homeserver_paths(config).venv_path, True


def _has_synapse_dist(venv: Path) -> bool:
    pattern = str(venv / "lib" / "python3*" / "site-packages" / "matrix_synapse-*.dist-info")
    return bool(glob.glob(pattern))


def is_installed(config: Config) -> bool:
    """Cheap check (no process started) that Synapse is ready to run."""
    venv, owned = _venv_for(config)
    return _ready(venv, owned, postgres=False)


def _has_postgres_driver(venv: Path) -> bool:
    pattern = str(venv / "lib" / "python3*" / "site-packages" / "psycopg2*" / "__init__.py")
    return bool(glob.glob(pattern))


def _ready(venv: Path, owned: bool, *, postgres: bool) -> bool:
    if postgres and not _has_postgres_driver(venv):
        return False
    if not venv_python(venv).exists():
        return False
    if owned:
        try:
            return (venv / _MARKER).read_text().strip() == SYNAPSE_VERSION
        except FileNotFoundError:
            return False
    return _has_synapse_dist(venv)


def ensure_installed(config: Config, progress: Callable[[str], None]) -> Path:
    """Install Synapse if needed; return the venv's python. Progress lines go to `progress`."""
    venv, owned = _venv_for(config)
    return ensure_synapse(venv, owned, homeserver_paths(config), progress)


def installed_python(venv: Path, owned: bool, *, postgres: bool = False) -> Path | None:
    """The venv's python if Synapse (and for `postgres` its driver) is ready there; None
    otherwise. Installs nothing."""
    return venv_python(venv) if _ready(venv, owned, postgres=postgres) else None


def ensure_synapse(
    venv: Path,
    owned: bool,
    paths: HomeserverPaths,
    progress: Callable[[str], None],
    *,
    postgres: bool = False,
) -> Path:
    """Synapse (and, for `postgres`, its PostgreSQL driver) in `venv`, installed if missing;
    returns the venv's python. `owned`: a venv ClaudeMatrix made, marked once complete."""
    if _ready(venv, owned, postgres=postgres):
        return venv_python(venv)
    with file_lock(
        paths.install_lock_path,
        timeout=_INSTALL_LOCK_WAIT,
        waiting=lambda: progress("waiting for another process that is installing Synapse..."),
        held_message=(
            f"another process has been installing Synapse for 30 minutes; see "
            f"{paths.install_log_path}, stop it, then run `claudematrix up` again"
        ),
    ):
        if _ready(venv, owned, postgres=postgres):
            return venv_python(venv)
        log_path = paths.install_log_path
        with open(log_path, "ab") as log:
            os.fchmod(log.fileno(), 0o600)
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} install into {venv}\n".encode())
            if not venv_python(venv).exists():
                progress(f"creating a Python environment for Synapse in {venv}")
                _run(
                    [sys.executable, "-m", "venv", str(venv)],
                    log,
                    progress=None,
                    failure=(
                        f"could not create a Python venv in {venv} (see {log_path}); on "
                        "Debian/Ubuntu install the python3-venv package, then run "
                        "`claudematrix up` again"
                    ),
                )
            progress(
                f"installing Synapse {SYNAPSE_VERSION} into {venv} "
                "(one time, about 250 MB; this takes a minute or two)"
            )
            _run(
                [
                    str(venv_python(venv)),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--progress-bar",
                    "off",
                    SYNAPSE_REQUIREMENT,
                    *([POSTGRES_DRIVER] if postgres else []),
                ],
                log,
                progress=progress,
                failure=(
                    f"installing Synapse failed (see {log_path}); check that this machine "
                    "can reach the Python package index, then run `claudematrix up` again"
                ),
            )
        if owned:
            (venv / _MARKER).write_text(SYNAPSE_VERSION + "\n")
        if not _ready(venv, owned, postgres=postgres):
            raise HomeserverInstallFailed(
                f"pip finished but Synapse is not in {venv} (see {log_path}); delete that "
                "directory and run `claudematrix up` again"
            )
        progress(f"Synapse {SYNAPSE_VERSION} installed")
    return venv_python(venv)


def _run(
    argv: list[str],
    log: IO[bytes],
    *,
    progress: Callable[[str], None] | None,
    failure: str,
) -> None:
    """Run a command, copying its output to the log and chosen lines to `progress`."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
        )
    except OSError as err:
        raise HomeserverInstallFailed(f"{failure} ({err.strerror})") from None
    assert proc.stdout is not None
    with proc.stdout:
        for raw in proc.stdout:
            log.write(raw)
            line = raw.decode(errors="replace").strip()
            if progress is not None and line.startswith(_SHOWN_PREFIXES):
                progress(f"  {line[:157]}..." if len(line) > 160 else f"  {line}")
    if proc.wait() != 0:
        raise HomeserverInstallFailed(failure)
