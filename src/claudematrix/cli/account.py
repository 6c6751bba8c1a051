"""The account behind an identity: a password to log in from any client, and recovery."""

from __future__ import annotations

import asyncio

import click

from claudematrix.cli._app import cli, run_as
from claudematrix.config import load_config
from claudematrix.identity import resolve_identity
from claudematrix.service import Service


@cli.command(help="Set your account's password (default: the owner) to log in from Element.")
@click.password_option("--new-password", prompt="New password")
@click.pass_context
def password(ctx: click.Context, new_password: str) -> None:
    if len(new_password) < 8:
        raise click.UsageError("choose a password of at least 8 characters")

    async def action(service: Service) -> str:
        return str(await service.change_password(new_password))

    user = run_as(ctx, action, start_homeserver=True, refresh=False)
    click.echo(f"password set for {user}: log in with it from any Matrix client")


@cli.command(
    help="Log an identity in again after its credentials (account.json) were lost, keeping "
    "its history and Matrix ID."
)
@click.option(
    "--new-account",
    is_flag=True,
    help="Where the homeserver cannot reset the password: keep the history under a new ID.",
)
@click.pass_context
def recover(ctx: click.Context, new_account: bool) -> None:
    async def runner() -> str:
        service = Service(load_config(), resolve_identity(ctx.obj.get("as")))
        try:
            user = await service.recover(new_account=new_account)
        finally:
            await service.close()
        return str(user)

    user = asyncio.run(runner())
    what = "a new account" if new_account else "its account again"
    click.echo(f"recovered {what}: {user}; its history is kept")
