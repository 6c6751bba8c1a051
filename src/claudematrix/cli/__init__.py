"""The `claudematrix` command: a thin front over service/ and homeserver/.

Errors become one line on stderr and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

from claudematrix.cli import (  # noqa: F401  (registers commands)
    account,
    daemon,
    demo,
    machines,
    messaging,
    people,
    server,
    team,
    verify,
    worker,
)
from claudematrix.cli._app import cli
from claudematrix.cli._main import main, run

__all__ = ["main", "run", "cli"]
