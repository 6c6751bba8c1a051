"""The `claudematrix` command: a thin front over service/ and homeserver/.

Errors become one line on stderr and a non-zero exit code; never a traceback.
"""

from __future__ import annotations

import sys

import click

from claudematrix.cli import (  # noqa: F401  (registers commands)
    account,
    daemon,
    demo,
    messaging,
    people,
    server,
)
from claudematrix.cli._app import cli
from claudematrix.errors import ClaudeMatrixError

__all__ = ["main", "cli"]


def main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="claudematrix")
    except ClaudeMatrixError as exc:
        click.echo(f"claudematrix: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("claudematrix: aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # one line too, saying where the usage is told
        where = exc.ctx.command_path if exc.ctx is not None else "claudematrix"
        problem = exc.format_message().rstrip(".")
        click.echo(f"claudematrix: {problem}; see `{where} --help`", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"claudematrix: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
