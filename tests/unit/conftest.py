"""Unit fixtures. The tests mirror src: tests/unit/<package>/test_<module>.py for
src/claudematrix/<package>/<module>.py (test_init.py for a package's __init__.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.hooks import World


@pytest.fixture
def world(isolated_home: Path) -> Iterator[World]:
    """A session's identity dir, as the service leaves it (support/hooks.py)."""
    w = World(isolated_home)
    try:
        yield w
    finally:
        w.close()
