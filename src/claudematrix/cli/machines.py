"""`claudematrix machine federate|card|add|list|remove|trust|untrust`: making this machine
ready to pair, pairing it with others, and trusting one as a whole.

Adding or trusting a machine widens who can reach this one, so, like trust, it is the
person's act: refused inside Claude Code, confirmed at their own terminal (or --yes there).
"""

from __future__ import annotations

import asyncio
import dataclasses

import click

from claudematrix import daemon
from claudematrix.cli._app import cli, emit_json, json_option
from claudematrix.cli._consent import NOT_CONFIRMED, person_confirms, yes_option
from claudematrix.config import load_config
from claudematrix.federation.address import parse_federation_address
from claudematrix.federation.card import parse_card
from claudematrix.render import format_time
from claudematrix.service import (
    both_ways,
    federate,
    own_card,
    pair,
    paired_machines,
    stderr_progress,
    trust_machine,
    unpair,
    untrust_machine,
)


@cli.group(name="machine", help="Pair this machine with others, over Matrix federation.")
def machine_group() -> None:
    pass


@machine_group.command(
    name="federate", help="Make this machine ready to pair, keeping every session's history."
)
@click.argument("address", metavar="ADDRESS:PORT")
@click.option(
    "--server-name",
    help="The name other machines reach this one by (default: ADDRESS:PORT).",
)
@yes_option
def federate_(address: str, server_name: str | None, yes: bool) -> None:
    where = parse_federation_address(address, "the federation address")
    config = load_config()
    name = server_name or str(where)
    question = (
        f"Listen for paired machines on {where} and rename this machine's homeserver from "
        f"{config.server_name} to {name}? Every session gets a new Matrix ID on {name} "
        "(same username); local history is kept, conversations start again"
    )
    if not person_confirms(question, yes):
        click.echo(NOT_CONFIRMED)
        return
    done = asyncio.run(
        federate(config, where, server_name, stderr_progress, stop_daemon=daemon.stop)
    )
    click.echo(f"this machine federates as {done.server_name}, listening on {done.address}")
    for old, new in done.moved:
        click.echo(f"  {old} is now {new}")
    if done.kept_at is not None:
        click.echo(
            f"local history kept; the {done.old_server_name} homeserver's data and old logins "
            f"are in {done.kept_at}"
        )
        click.echo(
            "people and machines that knew the old IDs need the new ones; running Claude Code "
            "sessions carry on under their new IDs"
        )
    click.echo("next: `claudematrix machine card` here, and `machine add <card>` on the other")


@machine_group.command(name="card", help="Print this machine's card, for the other to add.")
def card() -> None:
    click.echo(str(own_card(load_config(), stderr_progress)))


@machine_group.command(name="add", help="Pair with the machine whose CARD (one line) is given.")
@click.argument("card_text", metavar="CARD", nargs=-1, required=True)
@yes_option
def add(card_text: tuple[str, ...], yes: bool) -> None:
    text = " ".join(card_text)  # the card pasted unquoted arrives as several arguments
    wanted = parse_card(text)  # the question names a well-formed card only
    question = (
        f"Pair with {wanted.name} ({wanted.server_name})? Its sessions can then reach this "
        "machine's sessions where their modes allow"
    )
    if not person_confirms(question, yes):
        click.echo("not paired: nobody confirmed (answer the question at a terminal, or --yes)")
        return
    config = load_config()
    paired, new = pair(config, text, stderr_progress)
    what = "paired" if new else "already paired"
    click.echo(f"{what} with {paired.name} ({paired.server_name}), certificate pinned")
    answer = both_ways(config, paired)
    if answer:
        click.echo("it has added this machine too: mail flows both ways")
    elif answer is None:
        click.echo(
            "could not tell yet whether it has added this machine: mail flows once it has "
            "(`claudematrix status` shows whether mail to it waits)"
        )
    else:
        click.echo(
            "mail flows once that machine adds this one's card too (`claudematrix machine "
            "card` here, `claudematrix machine add <card>` there)"
        )


@machine_group.command(name="list", help="The paired machines.")
@json_option
def list_(as_json: bool) -> None:
    peers = paired_machines(load_config())
    if as_json:
        emit_json([dataclasses.asdict(p) for p in peers])
        return
    if not peers:
        click.echo("no paired machines: `claudematrix machine card` here, `machine add` there")
        return
    for p in peers:
        trusted = "  trusted as a whole" if p.trusted else ""
        click.echo(
            f"{p.name}  {p.server_name}  {p.fingerprint[:23]}...  paired "
            f"{format_time(p.paired_at)}{trusted}"
        )


@machine_group.command(name="remove", help="Unpair a machine (by name or server name): at once.")
@click.argument("name")
def remove(name: str) -> None:
    gone = unpair(load_config(), name, stderr_progress)
    click.echo(f"unpaired {gone.name} ({gone.server_name}): nothing flows with it any more")


@machine_group.command(
    name="trust", help="Trust every session of a paired machine (by name or server name)."
)
@click.argument("name")
@yes_option
def trust(name: str, yes: bool) -> None:
    question = (
        f"Trust every session of the machine {name}? Trusted-labelled mail and profiles of "
        "this machine's sessions may then reach all of them"
    )
    if not person_confirms(question, yes):
        click.echo("not trusted: nobody confirmed (answer the question at a terminal, or --yes)")
        return
    machine = trust_machine(load_config(), name, confirmed=True)
    click.echo(
        f"trusted {machine.name} ({machine.server_name}): its sessions are trusted remote "
        "contacts of every session here"
    )


@machine_group.command(name="untrust", help="Stop trusting a paired machine as a whole.")
@click.argument("name")
def untrust(name: str) -> None:
    machine = asyncio.run(untrust_machine(load_config(), name, stderr_progress))
    click.echo(
        f"no longer trusted as a whole: {machine.name} ({machine.server_name}); sessions "
        "there you trust one by one stay trusted"
    )
