"""claudematrix.locks: one holder at a time, a lock file only its owner can read, and the
kernel releases the lock when the holder dies, even by kill -9."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from claudematrix.locks import FileLock
from support import SRC

HOLD = (
    "import sys, time; sys.path.insert(0, sys.argv[2]);"
    "from pathlib import Path; from claudematrix.locks import FileLock;"
    "lock = FileLock(Path(sys.argv[1])); assert lock.acquire(blocking=False);"
    "print('held', flush=True); time.sleep(600)"
)


def test_one_holder_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "sync.lock"
    first, second = FileLock(path), FileLock(path)
    assert first.acquire(blocking=False) and first.held
    assert not second.acquire(blocking=False) and not second.held
    first.release()
    assert not first.held
    assert second.acquire(blocking=False)
    second.release()
    second.release()  # a second release is harmless


def test_the_lock_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "sync.lock"
    with FileLock(path) as lock:
        assert lock.held
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not lock.held
    assert FileLock(path).acquire(blocking=False)  # left by the block


def test_a_killed_holder_releases_it(tmp_path: Path) -> None:
    path = tmp_path / "sync.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(SRC)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert not FileLock(path).acquire(blocking=False)
        holder.kill()  # SIGKILL: no chance to release it itself
        holder.wait(timeout=10)
        assert FileLock(path).acquire(blocking=False)
    finally:
        holder.kill()
        holder.wait()
