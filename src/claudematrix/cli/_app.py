"""The command group, shared options, and running a command as an identity."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from claudematrix import __version__
from claudematrix.config import Config, load_config
from claudematrix.errors import HomeserverUnavailable
from claudematrix.identity import Identity, resolve_identity
from claudematrix.ids import IdentityName
from claudematrix.service import Service
from claudematrix.session_env import SessionEnv
from claudematrix.types import Label

__all__ = [
    "cli",
    "run_as",
    "emit_json",
    "json_option",
    "Remote",
    "REMOTE",
    "session_env",
    "session_config",
]

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


@dataclass(frozen=True)
class Remote:
    """Set while the daemon runs a command for a `claudematrix` process elsewhere: that
    process's environment, the daemon's event loop, and the daemon's live Service of an
    identity it holds (None for one it does not)."""

    env: SessionEnv
    loop: asyncio.AbstractEventLoop
    held: Callable[[IdentityName], Service | None]


REMOTE: contextvars.ContextVar[Remote | None] = contextvars.ContextVar("remote", default=None)


def session_env() -> SessionEnv:
    remote = REMOTE.get()
    return remote.env if remote is not None else SessionEnv.current()


def session_config() -> Config:
    """The settings of the session this command runs for (in the daemon: the caller's)."""
    return load_config(session_env())


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
    In the daemon, an identity it holds is served by its live Service (kept current by its
    own sync); any other one gets a Service for this command, as in a process of its own.
    """
    env = session_env()
    identity = resolve_identity(ctx.obj.get("as"), env)
    remote = REMOTE.get()

    async def job() -> tuple[T, str]:
        live = remote.held(identity.name) if remote is not None else None
        if live is not None:
            return await action(live), ""
        return await _one_off(env, identity, action, start_homeserver, refresh, initial_mode)

    if remote is not None:  # the Services live on the daemon's loop: run it there
        result, warning = asyncio.run_coroutine_threadsafe(job(), remote.loop).result()
    else:
        result, warning = asyncio.run(job())
    if warning:
        click.echo(warning, err=True)
    return result


async def _one_off(
    env: SessionEnv,
    identity: Identity,
    action: Callable[[Service], Awaitable[T]],
    start_homeserver: bool,
    refresh: bool,
    initial_mode: Label | None,
) -> tuple[T, str]:
    """(the action's result, a warning to show) with a Service made for this command."""
    service = Service(load_config(env), identity, env=env)
    warning = ""
    try:
        try:
            await service.connect(start_homeserver=start_homeserver, initial_mode=initial_mode)
            if refresh and service.try_own_sync():
                await service.sync(timeout_ms=0)
        except HomeserverUnavailable as exc:
            if start_homeserver:
                raise
            warning = f"claudematrix: {exc}; showing what is stored locally"
        return await action(service), warning
    finally:
        await service.close()
