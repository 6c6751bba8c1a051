"""Mail commands: send, inbox, read, search, contacts, whoami, status."""

from __future__ import annotations

import dataclasses
import sys

import click

from claudematrix import homeserver
from claudematrix.cli._app import cli, emit_json, json_option, run_as, session_config
from claudematrix.render import (
    contact_json,
    contact_line,
    framed_body,
    header_line,
    held_device_note,
    message_json,
    waiting_note,
)
from claudematrix.service import PeerState, Service, WhoAmI, peer_states
from claudematrix.types import Contact, Message, Where

Rows = list[tuple[Message, Where]]


def _show_rows(rows: Rows, as_json: bool, empty: str) -> None:
    if as_json:
        emit_json([message_json(m, w) for m, w in rows])
        return
    if not rows:
        click.echo(empty)
    for message, where in rows:
        click.echo(header_line(message, where))


@cli.command(help="Send a message. TO is a contact name, a Matrix user ID, or a room.")
@click.argument("to")
@click.argument("text", required=False)
@click.option("--subject", "-s", default="", help="One-line subject shown in headers.")
@click.option(
    "--tier",
    "--label",
    "label",
    default=None,
    help="secret | private | trusted | public (default: your mode).",
)
@click.option("--reply-to", default=None, help="Message id this answers.")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the text from standard input.")
@json_option
@click.pass_context
def send(
    ctx: click.Context,
    to: str,
    text: str | None,
    subject: str,
    label: str | None,
    reply_to: str | None,
    from_stdin: bool,
    as_json: bool,
) -> None:
    body = sys.stdin.read() if from_stdin else text
    if body is None:
        raise click.UsageError("give the message text, or --stdin to read it")

    async def action(service: Service) -> tuple[Message, Where, list[tuple[str, str]]]:
        ref = reply_to.lstrip("#") if reply_to else None
        sent = await service.send(to, body, subject=subject, label=label, reply_to=ref)
        return sent, service.where(sent), service.held_back.pop(sent.event_id, [])

    sent, where, held = run_as(ctx, action, start_homeserver=True, refresh=False)
    for user, device in held:
        click.echo(f"claudematrix: {held_device_note(user, device)}", err=True)
    if as_json:
        emit_json(message_json(sent, where))
    else:
        click.echo(
            f"sent #{sent.local_id} to {sent.recipient} ({where.value}) [{sent.label.value}]"
        )


@cli.command(help="List message headers: unread by default, --all for everything.")
@click.option("--all", "include_read", is_flag=True, help="Include read messages.")
@click.option("--limit", default=50, show_default=True)
@json_option
@click.pass_context
def inbox(ctx: click.Context, include_read: bool, limit: int, as_json: bool) -> None:
    async def action(service: Service) -> tuple[Rows, int, list[PeerState]]:
        found = service.inbox(include_read=include_read, limit=limit)
        peers = await peer_states(service.config) if not as_json else []
        return [(m, service.where(m)) for m in found], len(service.requests()), peers

    rows, pending, peers = run_as(ctx, action)
    _show_rows(rows, as_json, "no messages" if include_read else "no unread messages")
    if pending and not as_json:
        click.echo(f"{pending} message request(s) waiting: `claudematrix requests`")
    for peer in peers:
        if peer.down_since is not None:
            click.echo(waiting_note(peer.name, peer.server_name, peer.down_since))


@cli.command(help="Show a message's body (by its #id or event id) and mark it read.")
@click.argument("message_id")
@json_option
@click.pass_context
def read(ctx: click.Context, message_id: str, as_json: bool) -> None:
    async def action(service: Service) -> tuple[Message, Where]:
        message = service.read(message_id.lstrip("#"))
        return message, service.where(message)

    message, where = run_as(ctx, action)
    if as_json:
        emit_json(message_json(message, where, body=True))
    else:
        click.echo(framed_body(message, where))


@cli.command(help="Full-text search over all stored messages, sent and received.")
@click.argument("query")
@click.option("--limit", default=20, show_default=True)
@json_option
@click.pass_context
def search(ctx: click.Context, query: str, limit: int, as_json: bool) -> None:
    async def action(service: Service) -> Rows:
        return [(m, service.where(m)) for m in service.search(query, limit=limit)]

    _show_rows(run_as(ctx, action), as_json, "no matches")


@cli.command(help="Everyone I can reach: online first, nearest first, with what they work on.")
@click.option("--all", "include_hidden", is_flag=True, help="Include long-gone sessions.")
@json_option
@click.pass_context
def contacts(ctx: click.Context, include_hidden: bool, as_json: bool) -> None:
    async def action(service: Service) -> list[Contact]:
        return service.contacts(include_hidden=include_hidden)

    found = run_as(ctx, action)
    if as_json:
        emit_json([contact_json(c) for c in found])
        return
    if not found:
        click.echo("no contacts yet: other sessions on this machine appear once they start")
    for contact in found:
        click.echo(contact_line(contact))


@cli.command(help="My Matrix ID, mode and display name.")
@json_option
@click.pass_context
def whoami(ctx: click.Context, as_json: bool) -> None:
    async def action(service: Service) -> WhoAmI:
        return service.whoami()

    me = run_as(ctx, action, refresh=False)
    if as_json:
        emit_json(dataclasses.asdict(me))
        return
    click.echo(f"{me.user_id or '(no account yet)'}  {me.display_name}")
    click.echo(f"identity {me.identity}, mode {me.mode}, homeserver {me.homeserver}")


@cli.command(help="Homeserver, identity, unread counts, and how to join from Element.")
@json_option
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    async def action(service: Service) -> tuple[WhoAmI, int, int, str, list[PeerState]]:
        owner = service.owner_user() or ""
        peers = await peer_states(service.config)
        return service.whoami(), service.unread_count(), len(service.contacts()), owner, peers

    me, unread, n_contacts, owner, peers = run_as(ctx, action)
    config = session_config()
    running = homeserver.status(config).running if config.embedded else None
    if as_json:
        emit_json(
            {
                "homeserver": config.homeserver_url,
                "embedded": config.embedded,
                "running": running,
                "me": dataclasses.asdict(me),
                "unread": unread,
                "contacts": n_contacts,
                "owner": owner or None,
                "machines": [dataclasses.asdict(p) for p in peers],
            }
        )
        return
    kind = "embedded" if config.embedded else "external"
    state = {None: "", True: " running", False: " NOT running (claudematrix up)"}[running]
    click.echo(f"homeserver: {config.homeserver_url} ({kind}){state}")
    click.echo(f"me: {me.user_id or '(no account yet)'} — {me.display_name} — mode {me.mode}")
    click.echo(f"unread: {unread}   contacts: {n_contacts}")
    for peer in peers:
        if peer.down_since is None:
            click.echo(f"paired machine {peer.name} ({peer.server_name}): reachable")
        else:
            click.echo(waiting_note(peer.name, peer.server_name, peer.down_since))
    if me.device_problem:
        click.echo(f"encryption: PROBLEM: {me.device_problem}")
    elif me.device:
        click.echo(f"encryption: on, this session's device key {me.device}")
    if me.device_notice and not me.device_problem:
        click.echo(f"encryption: note: {me.device_notice}")
    click.echo("")
    click.echo("Follow and join the conversations from any Matrix client (e.g. Element):")
    click.echo(f"  homeserver URL: {config.homeserver_url}")
    if owner:
        click.echo(f"  your account:   {owner}")
    else:
        click.echo(
            "  your account:   created by your first `claudematrix` command outside a session"
        )
    click.echo(
        "  password:       yours if you set one (`claudematrix --as owner password` sets or "
        "changes it), then log in"
    )
