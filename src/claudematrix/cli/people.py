"""What only the person may change: mode, trust, blocks, requests; and my status line.

Opening up, trusting and accepting ask the person at the terminal, and are refused inside a
Claude Code session (cli/_consent.py): an agent, possibly steered by a message, must never
make these changes by running the CLI itself.
"""

from __future__ import annotations

import dataclasses

import click

from claudematrix.cli._app import cli, emit_json, json_option, run_as
from claudematrix.cli._consent import person_confirms, yes_option
from claudematrix.ids import parse_user_id
from claudematrix.local.untrusted import ID_MAX, NAME_MAX, one_line
from claudematrix.policy import opens_up
from claudematrix.render import format_time, request_line
from claudematrix.service import Service
from claudematrix.store import Device, Request
from claudematrix.types import Label


@cli.command(help="Show or set my mode: secret, private, trusted or public.")
@click.argument("mode", required=False)
@yes_option
@click.pass_context
def mode(ctx: click.Context, mode: str | None, yes: bool) -> None:
    wanted = Label.parse(mode) if mode is not None else None

    async def action(service: Service) -> str:
        current = service.mode()
        if wanted is None:
            return f"mode {current.value}"
        new = wanted
        confirmed = not opens_up(current, new) or person_confirms(
            f"Open up from {current.value} to {new.value} (others will see more)?", yes
        )
        if not confirmed:
            return f"mode stays {current.value}"
        return f"mode {(await service.set_mode(new, confirmed=True)).value}"

    click.echo(run_as(ctx, action, start_homeserver=wanted is not None, initial_mode=wanted))


@cli.command(help="Trust a Matrix user (e.g. a session on another machine).")
@click.argument("user")
@yes_option
@click.pass_context
def trust(ctx: click.Context, user: str, yes: bool) -> None:
    user_id = parse_user_id(user.strip())  # the question shows only a valid Matrix ID

    async def action(service: Service) -> str:
        if not person_confirms(f"Trust {user_id} with trusted-labelled data?", yes):
            return "not trusted"
        return f"trusted {await service.trust(user_id, confirmed=True)}"

    click.echo(run_as(ctx, action, start_homeserver=True))


@cli.command(help="Contacts' encryption devices; confirm a new or changed one with --confirm.")
@click.argument("user", required=False)
@click.option("--confirm", "device", help="The held device of USER to send to from now on.")
@yes_option
@json_option
@click.pass_context
def devices(
    ctx: click.Context, user: str | None, device: str | None, yes: bool, as_json: bool
) -> None:
    if device is not None:
        if user is None:
            raise click.UsageError("name the user whose device you confirm")
        user_id = parse_user_id(user.strip())

        async def confirm(service: Service) -> str:
            question = f"Send encrypted mail to {user_id}'s device {device} from now on?"
            if not person_confirms(question, yes):
                return "not confirmed"
            return f"confirmed {service.confirm_device(user_id, device, confirmed=True)} {device}"

        click.echo(run_as(ctx, confirm))
        return

    async def listing(service: Service) -> list[Device]:
        return service.devices(user)

    found = run_as(ctx, listing, refresh=False)
    if as_json:
        emit_json([dataclasses.asdict(d) for d in found])
        return
    if not found:
        click.echo("no devices known yet: they are pinned when you first write to someone")
        return
    for d in found:
        note = "  verified by emoji" if d.verified else ""
        if d.state != "pinned":
            note = "  HELD: new or changed, not sent to (--confirm)"
        click.echo(f"{d.user_id}  {d.device_id}  {_fingerprint(d.ed25519)}{note}")


def _fingerprint(key: str) -> str:
    """An ed25519 key in groups of four, as Matrix clients show it for comparison."""
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4))


@cli.command(help="Stop trusting a Matrix user.")
@click.argument("user")
@click.pass_context
def untrust(ctx: click.Context, user: str) -> None:
    async def action(service: Service) -> str:
        return f"no longer trusted: {await service.untrust(user)}"

    click.echo(run_as(ctx, action, start_homeserver=True))


@cli.command(help="Block a Matrix user: their invitations and mail are dropped.")
@click.argument("user")
@click.pass_context
def block(ctx: click.Context, user: str) -> None:
    async def action(service: Service) -> str:
        return f"blocked {await service.block(user)}"

    click.echo(run_as(ctx, action, start_homeserver=True))


@cli.command(help="Unblock a Matrix user.")
@click.argument("user")
@click.pass_context
def unblock(ctx: click.Context, user: str) -> None:
    async def action(service: Service) -> str:
        return f"unblocked {await service.unblock(user)}"

    click.echo(run_as(ctx, action))


@cli.command(help="Message requests: people outside my audience who want to talk.")
@json_option
@click.pass_context
def requests(ctx: click.Context, as_json: bool) -> None:
    async def action(service: Service) -> list[Request]:
        return service.requests()

    found = run_as(ctx, action)
    if as_json:
        emit_json(
            [
                {
                    "from": one_line(r.inviter, ID_MAX),
                    "name": one_line(r.display_name, NAME_MAX),
                    "room_id": one_line(r.room_id, ID_MAX),
                    "time": format_time(r.received_ts),
                }
                for r in found
            ]
        )
        return
    if not found:
        click.echo("no message requests")
    for r in found:
        click.echo(request_line(r.inviter, r.display_name, format_time(r.received_ts)))


@cli.command(help="Accept a message request from a Matrix user.")
@click.argument("user")
@yes_option
@click.pass_context
def accept(ctx: click.Context, user: str, yes: bool) -> None:
    user_id = parse_user_id(user.strip())

    async def action(service: Service) -> str:
        if not person_confirms(f"Accept messages from {user_id}?", yes):
            return "not accepted"
        done = await service.accept(user_id, confirmed=True)
        return (
            f"accepted {user_id}: {len(done.rooms)} conversation(s) joined, {done.released} "
            "held message(s) moved to the inbox; see `claudematrix inbox`"
        )

    click.echo(run_as(ctx, action, start_homeserver=True))


@cli.command(name="set-status", help="Say what I am working on (shown to my audience).")
@click.argument("text")
@click.pass_context
def set_status(ctx: click.Context, text: str) -> None:
    async def action(service: Service) -> str:
        return f"status: {await service.set_status(text)}"

    click.echo(run_as(ctx, action, start_homeserver=True))
