"""Where state lives, and writing it safely: dirs 0700, secrets 0600, atomic replace.

Where is decided by claudematrix.local.layout (one rule, shared with the hooks); this module
makes the dirs and writes the files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from claudematrix.errors import StateCorrupt
from claudematrix.local import layout

__all__ = [
    "state_dir",
    "ensure_dir",
    "write_private",
    "write_json_private",
    "read_json",
    "identity_dir",
]


def state_dir() -> Path:
    """The state dir (claudematrix.local.layout.state_dir), created 0700."""
    return ensure_dir(Path(layout.state_dir()))


_ENSURED: set[Path] = set()


def ensure_dir(path: Path) -> Path:
    """Create (0700) once per process; later calls cost nothing (they sit on hot paths)."""
    if path in _ENSURED:
        return path
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    _ENSURED.add(path)
    return path


def identity_dir(slug: str) -> Path:
    """An identity's dir (claudematrix.local.layout.identity_dir), created 0700."""
    return ensure_dir(ensure_dir(state_dir() / layout.IDENTITIES) / slug)


def write_private(path: Path, data: str | bytes) -> None:
    """Atomically write a file readable only by its owner (0600)."""
    ensure_dir(path.parent)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_private(path: Path, value: Any) -> None:
    write_private(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any | None:
    """Read a JSON state file; None if absent. A corrupt file is moved aside, never lost."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except ValueError:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        raise StateCorrupt(
            f"{path} was not valid JSON; it was moved to {aside.name} (inspect or delete it), "
            "then run the command again"
        ) from None
