"""Running one command line: errors become one line on stderr and an exit code."""

from __future__ import annotations

import sys

import click

from claudematrix.cli._app import cli
from claudematrix.errors import ClaudeMatrixError

__all__ = ["run", "main"]


def run(argv: list[str]) -> int:
    """Run one command line; errors become one line on stderr. Returns the exit code."""
    try:
        result = cli.main(args=argv, standalone_mode=False, prog_name="claudematrix")
    except ClaudeMatrixError as exc:
        click.echo(f"claudematrix: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("claudematrix: aborted", err=True)
        return 130
    except click.UsageError as exc:  # one line too, saying where the usage is told
        where = exc.ctx.command_path if exc.ctx is not None else "claudematrix"
        problem = exc.format_message().rstrip(".")
        click.echo(f"claudematrix: {problem}; see `{where} --help`", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"claudematrix: {exc.format_message()}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return result if isinstance(result, int) else 0  # (--help, --version: click's code)


def main() -> None:
    sys.exit(run(sys.argv[1:]))
