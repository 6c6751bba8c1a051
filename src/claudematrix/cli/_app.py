"""The command group, shared options, and running a command as an identity."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from claudematrix import __version__
from claudematrix.config import load_config
from claudematrix.errors import HomeserverUnavailable
from claudematrix.identity import resolve_identity
from claudematrix.service import Service
from claudematrix.types import Label

__all__ = ["cli", "run_as", "emit_json", "json_option"]

T = TypeVar("T")


@click.group(
    help="ClaudeMatrix: Claude Code sessions and people messaging each other over Matrix.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--as",
    "as_name",
    metavar="SESSION",
    help="Act as this session (default: $CLAUDE_CODE_SESSION_ID, else your owner account).",
)
@click.version_option(version=__version__, prog_name="claudematrix")
@click.pass_context
def cli(ctx: click.Context, as_name: str | None) -> None:
    ctx.obj = {"as": as_name}


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def run_as(
    ctx: click.Context,
    action: Callable[[Service], Awaitable[T]],
    *,
    start_homeserver: bool = False,
    refresh: bool = True,
    initial_mode: Label | None = None,
) -> T:
    """Run `action` as the chosen identity, after fetching new mail when we may.

    Reading commands work from the local store when the homeserver is away (with a warning);
    commands that must reach the network pass start_homeserver=True. `initial_mode` is the
    mode a brand-new identity starts in, if it is more private than the configured default.
    """

    async def runner() -> T:
        service = Service(load_config(), resolve_identity(ctx.obj.get("as")))
        try:
            try:
                await service.connect(start_homeserver=start_homeserver, initial_mode=initial_mode)
                if refresh and service.try_own_sync():
                    await service.sync(timeout_ms=0)
            except HomeserverUnavailable as exc:
                if start_homeserver:
                    raise
                click.echo(f"claudematrix: {exc}; showing what is stored locally", err=True)
            return await action(service)
        finally:
            await service.close()

    return asyncio.run(runner())
