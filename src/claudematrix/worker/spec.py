"""The workers of this state dir: what each was started with, in workers/<name>.json (0600).

A worker is an identity like a session, named `worker-<name>`; the daemon runs every worker
listed here, from its start until `claudematrix worker stop`.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from claudematrix.errors import ConfigError, InvalidInput
from claudematrix.identity import Identity
from claudematrix.ids import IdentityName, UserID, parse_user_id
from claudematrix.paths import ensure_dir, read_json, state_dir, write_json_private

__all__ = ["WorkerSpec", "load_workers", "save_worker", "remove_worker", "worker_log"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
# Modes that skip Claude Code's permission checks: never a default, only asked for by name.
SKIPS_CHECKS = ("bypassPermissions",)
_DIR = "workers"


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    project: str
    allow: tuple[UserID, ...] = ()
    timeout_s: float = 1800.0
    permission_mode: str | None = None
    allowed_tools: str | None = None
    claude: str = "claude"
    started_ts: int = 0

    @property
    def identity(self) -> Identity:
        return Identity(IdentityName(f"worker-{self.name}"), False, False)

    @classmethod
    def checked(
        cls,
        name: str,
        project: str,
        allow: tuple[str, ...],
        timeout_s: float,
        permission_mode: str | None,
        allowed_tools: str | None,
        claude: str,
        started_ts: int,
    ) -> WorkerSpec:
        if not _NAME.fullmatch(name):
            raise InvalidInput(
                f"{name!r} is not a worker name: lower-case letters, digits and '-', at most "
                "32, e.g. --name build-box"
            )
        folder = Path(project).expanduser().resolve()
        if not folder.is_dir():
            raise InvalidInput(f"{project} is not a folder: give the project to work in")
        if timeout_s <= 0:
            raise InvalidInput("--timeout must be a number of seconds above 0")
        found = shutil.which(claude)
        if found is None:
            raise ConfigError(
                f"the Claude Code CLI ({claude}) is not on PATH: install it, or set "
                "CLAUDEMATRIX_CLAUDE to its path"
            )
        return cls(
            name=name,
            project=str(folder),
            allow=tuple(parse_user_id(u.strip()) for u in allow),
            timeout_s=float(timeout_s),
            permission_mode=permission_mode,
            allowed_tools=allowed_tools,
            claude=found,
            started_ts=started_ts,
        )


def _folder() -> Path:
    return state_dir() / _DIR


def worker_log(name: str) -> Path:
    return _folder() / f"{name}.log"


def load_workers() -> list[WorkerSpec]:
    """Every worker started here and not stopped; a broken file is skipped (and named in
    the daemon's log by the caller)."""
    found = []
    for path in sorted(_folder().glob("*.json")) if _folder().is_dir() else []:
        data = read_json(path)
        if not isinstance(data, dict):
            continue
        try:
            data["allow"] = tuple(UserID(u) for u in data.get("allow") or ())
            found.append(WorkerSpec(**data))
        except TypeError:
            continue
    return found


def save_worker(spec: WorkerSpec) -> None:
    ensure_dir(_folder())
    write_json_private(_folder() / f"{spec.name}.json", asdict(spec))


def remove_worker(name: str) -> bool:
    path = _folder() / f"{name}.json"
    if not path.exists():
        return False
    path.unlink()
    return True
