"""What a worker is started with: checked first, kept 0600, listed and removed."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from claudematrix.errors import ConfigError, InvalidInput
from claudematrix.worker.spec import WorkerSpec, load_workers, remove_worker, save_worker


def _spec(folder: Path, name: str = "build-box", **changes: object) -> WorkerSpec:
    args: dict[str, object] = {
        "name": name, "project": str(folder), "allow": ("@ann:localhost",), "timeout_s": 60.0,
        "permission_mode": None, "allowed_tools": None, "claude": sys.executable,
        "started_ts": 1,
    }  # fmt: skip
    args.update(changes)
    return WorkerSpec.checked(**args)  # type: ignore[arg-type]


def test_a_worker_is_kept_listed_and_removed(isolated_home: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    assert spec.identity.name == "worker-build-box" and spec.allow == ("@ann:localhost",)
    save_worker(spec)
    path = isolated_home / "workers" / "build-box.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_workers() == [spec]
    assert remove_worker("build-box") and not remove_worker("build-box")
    assert load_workers() == []


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"name": "Build Box"}, InvalidInput, "not a worker name"),
        ({"project": "/no/such/folder"}, InvalidInput, "not a folder"),
        ({"timeout_s": 0}, InvalidInput, "--timeout"),
        ({"allow": ("ann",)}, InvalidInput, "Matrix"),
        ({"claude": "no-such-claude-binary"}, ConfigError, "CLAUDEMATRIX_CLAUDE"),
    ],
)
def test_bad_settings_are_refused_in_one_line(
    isolated_home: Path, tmp_path: Path, changes: dict[str, object], error: type, words: str
) -> None:
    with pytest.raises(error, match=words):
        _spec(tmp_path, **changes)  # type: ignore[arg-type]
