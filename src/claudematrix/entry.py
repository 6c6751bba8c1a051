"""The `claudematrix` command's entry: everyday commands through the daemon, the rest here.

Importing the CLI (click, the Matrix library) costs most of a command's time; a command the
daemon runs (claudematrix.thin.cli) never pays it.
"""

from __future__ import annotations

import sys

from claudematrix.thin.cli import forward

__all__ = ["main"]


def main() -> None:
    code = forward(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from claudematrix.cli import main as run_here

    run_here()
