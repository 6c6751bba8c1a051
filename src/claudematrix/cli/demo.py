"""`claudematrix demo`: the main job end to end on the embedded homeserver."""

from __future__ import annotations

import asyncio
import time

import click

from claudematrix import homeserver
from claudematrix.cli._app import cli
from claudematrix.config import load_config
from claudematrix.errors import HomeserverUnavailable
from claudematrix.identity import Identity
from claudematrix.ids import IdentityName
from claudematrix.render import framed_body, header_line, notification
from claudematrix.service import Service, stderr_progress
from claudematrix.types import Message

_WAIT_S = 30.0


def _step(text: str) -> None:
    click.secho(f"\n== {text}", bold=True)


async def _await_mail(service: Service) -> list[Message]:
    deadline = time.monotonic() + _WAIT_S
    while time.monotonic() < deadline:
        new = await service.sync(timeout_ms=2_000)
        if new:
            return [service.message(str(i)) for i in sorted(new)]
    raise HomeserverUnavailable(
        f"no message arrived within {_WAIT_S:.0f} s: check `claudematrix homeserver status`"
    )


async def _demo() -> None:
    config = load_config()
    alice = Service(config, Identity(IdentityName("demo-alice"), False, False))
    bob = Service(config, Identity(IdentityName("demo-bob"), False, False))
    try:
        _step("Two sessions get their own Matrix accounts and meet in the machine lobby")
        for who in (alice, bob):
            await who.connect(start_homeserver=False)
            await who.sync()
            me = who.whoami()
            click.echo(f"{who.identity.name}: {me.user_id} — {me.display_name}")

        bob_id = bob.whoami().user_id
        _step(f"demo-alice sends to demo-bob ({bob_id})")
        await alice.send(
            str(bob_id),
            "Could you review the tokenizer change on branch parser-fix? Tests pass here.",
            subject="Review request: tokenizer",
        )
        got = await _await_mail(bob)
        click.echo("demo-bob's Claude session is notified with headers only:\n")
        click.echo(notification(got, bob.where))
        click.echo("\ndemo-bob opens it:\n")
        opened = bob.read(str(got[0].local_id))
        click.echo(framed_body(opened, bob.where(opened)))

        _step("demo-bob replies")
        await bob.send(
            "demo-alice",
            "Reviewed: one nit on the error message, otherwise good to merge.",
            subject="Re: Review request: tokenizer",
            reply_to=str(opened.local_id),
        )
        got = await _await_mail(alice)
        click.echo("demo-alice's Claude session is notified:\n")
        click.echo(notification(got, alice.where))

        _step("Each inbox (claudematrix --as demo-alice inbox --all)")
        for who in (alice, bob):
            click.echo(f"{who.identity.name}:")
            for message in who.inbox(include_read=True):
                click.echo("  " + header_line(message, who.where(message)))
    finally:
        await alice.close()
        await bob.close()


@cli.command(help="Show the main job end to end: homeserver, two sessions, a message each way.")
def demo() -> None:
    config = load_config()
    _step("Starting the homeserver (Synapse; installed on first use)")
    state = homeserver.start(config, stderr_progress)
    click.echo(f"homeserver ready at {state.url}")
    asyncio.run(_demo())
    _step("Done")
    click.echo(
        "The homeserver keeps running for your sessions (`claudematrix down` stops it).\n"
        "Follow along in any Matrix client: `claudematrix status` says how."
    )
