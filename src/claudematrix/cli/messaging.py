"""Mail commands: send, inbox, read, search, contacts, whoami, status, password."""

from __future__ import annotations

import dataclasses

import click

from claudematrix import homeserver
from claudematrix.cli._app import cli, emit_json, json_option, run_as
from claudematrix.config import load_config
from claudematrix.errors import ConfigError
from claudematrix.render import format_time, framed_body, header_line, message_json
from claudematrix.service import Service
from claudematrix.service.accounts import remember_password, stored_password
from claudematrix.service.session import WhoAmI
from claudematrix.types import Audience, Contact, Message


@cli.command(help="Send a message. TO is a contact name, a Matrix user ID, or a room.")
@click.argument("to")
@click.argument("text", required=False)
@click.option("--subject", "-s", default="", help="One-line subject shown in headers.")
@click.option("--tier", "--label", "label", default=None,
              help="secret | private | trusted | public (default: your mode).")
@click.option("--reply-to", default=None, help="Message id this answers.")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the text from standard input.")
@json_option
@click.pass_context
def send(ctx: click.Context, to: str, text: str | None, subject: str, label: str | None,
         reply_to: str | None, from_stdin: bool, as_json: bool) -> None:
    if from_stdin:
        text = click.get_text_stream("stdin").read()
    if text is None:
        raise click.UsageError("give the message text, or --stdin to read it")
    body = text

    async def action(service: Service) -> tuple[Message, Audience]:
        sent = await service.send(to, body, subject=subject, label=label, reply_to=reply_to)
        return sent, service.where(sent)

    sent, where = run_as(ctx, action, start_homeserver=True, refresh=False)
    if as_json:
        emit_json(message_json(sent, where))
    else:
        click.echo(f"sent #{sent.local_id} to {sent.recipient} ({where.value}) "
                   f"[{sent.label.value}]")


@cli.command(help="List message headers: unread by default, --all for everything.")
@click.option("--all", "include_read", is_flag=True, help="Include read messages.")
@click.option("--limit", default=50, show_default=True)
@json_option
@click.pass_context
def inbox(ctx: click.Context, include_read: bool, limit: int, as_json: bool) -> None:
    async def action(service: Service) -> list[tuple[Message, Audience]]:
        return [(m, service.where(m)) for m in service.inbox(include_read=include_read,
                                                             limit=limit)]

    rows = run_as(ctx, action)
    if as_json:
        emit_json([message_json(m, w) for m, w in rows])
        return
    if not rows:
        click.echo("no unread messages" if not include_read else "no messages")
    for message, where in rows:
        click.echo(header_line(message, where))


@cli.command(help="Show a message's body (by its #id or event id) and mark it read.")
@click.argument("message_id")
@json_option
@click.pass_context
def read(ctx: click.Context, message_id: str, as_json: bool) -> None:
    async def action(service: Service) -> tuple[Message, Audience]:
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
    async def action(service: Service) -> list[tuple[Message, Audience]]:
        return [(m, service.where(m)) for m in service.search(query, limit=limit)]

    rows = run_as(ctx, action)
    if as_json:
        emit_json([message_json(m, w) for m, w in rows])
        return
    if not rows:
        click.echo("no matches")
    for message, where in rows:
        click.echo(header_line(message, where))


@cli.command(help="Everyone I can reach, nearest first.")
@json_option
@click.pass_context
def contacts(ctx: click.Context, as_json: bool) -> None:
    async def action(service: Service) -> list[Contact]:
        return service.contacts(include_owner=True)

    found = run_as(ctx, action)
    if as_json:
        emit_json([
            {**dataclasses.asdict(c), "audience": c.audience.value} for c in found
        ])
        return
    if not found:
        click.echo("no contacts yet: other sessions on this machine appear once they start")
    for c in found:
        seen = f", seen {format_time(c.last_seen_ts)}" if c.last_seen_ts else ""
        status = f" — {c.status}" if c.status else ""
        click.echo(f"{c.display_name or c.user_id} <{c.user_id}> ({c.audience.value}{seen})"
                   f"{status}")


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
    async def action(service: Service) -> WhoAmI:
        return service.whoami(), service.unread_count(), len(service.contacts())

    me, unread, n_contacts = run_as(ctx, action)

    config = load_config()
    hs = homeserver.status(config) if config.embedded else None
    running = hs.running if hs else None
    if as_json:
        emit_json({
            "homeserver": config.homeserver_url,
            "embedded": config.embedded,
            "running": running,
            "me": dataclasses.asdict(me),
            "unread": unread,
            "contacts": n_contacts,
        })
        return
    where = "embedded" if config.embedded else "external"
    state = "" if running is None else (" running" if running else " NOT running (claudematrix up)")
    click.echo(f"homeserver: {config.homeserver_url} ({where}){state}")
    click.echo(f"me: {me.user_id or '(no account yet)'} — {me.display_name} — mode {me.mode}")
    click.echo(f"unread: {unread}   contacts: {n_contacts}")
    click.echo("")
    click.echo("Follow and join the conversations from any Matrix client (e.g. Element):")
    click.echo(f"  homeserver URL: {config.homeserver_url}")
    click.echo("  your account:   run `claudematrix --as owner whoami` for its Matrix ID")
    click.echo("  password:       run `claudematrix password` once to set one, then log in")


@cli.command(help="Set the password of your account (default: the owner) to log in from Element.")
@click.password_option("--new-password", prompt="New password")
@click.pass_context
def password(ctx: click.Context, new_password: str) -> None:
    if len(new_password) < 8:
        raise click.UsageError("choose a password of at least 8 characters")

    async def action(service: Service) -> str:
        current = stored_password(service.identity.slug)
        client = service.client
        if client is None or current is None:
            raise ConfigError(
                "this account's password is not managed by ClaudeMatrix; change it in your client"
            )
        await client.change_password(current, new_password)
        remember_password(service.identity.slug, new_password)
        return str(client.user_id)

    user = run_as(ctx, action, start_homeserver=True, refresh=False)
    click.echo(f"password set for {user}: log in with it from any Matrix client")
