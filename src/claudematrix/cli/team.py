"""`claudematrix server ...` on a team's host, and `claudematrix join|leave` on a member's
machine (docs/team.md)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from pathlib import Path

import click

from claudematrix import daemon, team
from claudematrix.cli._app import cli, emit_json, json_option
from claudematrix.cli._consent import NOT_CONFIRMED, person_confirms, yes_option
from claudematrix.config import load_config
from claudematrix.service import join_team, leave_team, stderr_progress

__all__ = ["server_group", "join_", "leave_"]

_DIR = click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The team server's directory (config, secrets, log).",
)


@cli.group(name="server", help="Run a team homeserver on PostgreSQL that machines join.")
def server_group() -> None:
    pass


@server_group.command(name="init", help="Write a team server's config, after checking PostgreSQL.")
@_DIR
@click.option("--server-name", required=True, help="The domain every Matrix ID here ends in.")
@click.option(
    "--public-url", required=True, help="Where clients reach it: the reverse proxy's https URL."
)
@click.option(
    "--postgres",
    "dsn",
    required=True,
    envvar="CLAUDEMATRIX_POSTGRES",
    help="PostgreSQL connection string (or set CLAUDEMATRIX_POSTGRES, kept off `ps`).",
)
@click.option(
    "--listen",
    default=team.DEFAULT_LISTEN,
    show_default=True,
    help="ADDRESS:PORT Synapse listens on, behind the reverse proxy.",
)
@click.option("--federation", is_flag=True, help="Also serve federation (off by default).")
@json_option
def init_(
    directory: Path,
    server_name: str,
    public_url: str,
    dsn: str,
    listen: str,
    federation: bool,
    as_json: bool,
) -> None:
    host, port = team.parse_listen(listen)
    settings = team.TeamSettings(
        server_name=team.parse_server_name(server_name),
        public_url=team.parse_public_url(public_url),
        listen_host=host,
        listen_port=port,
        federation=federation,
        synapse_venv=os.environ.get("CLAUDEMATRIX_SYNAPSE_VENV") or None,
    )
    state = team.init(directory.resolve(), settings, dsn, stderr_progress)
    if as_json:
        emit_json(dataclasses.asdict(state))
        return
    click.echo(f"team server {state.server_name} written to {state.folder}")
    click.echo(f"next: `claudematrix server start --dir {state.folder}`")


def _team(directory: Path) -> team.TeamDir:
    return team.TeamDir(directory.resolve())


def _show(state: team.TeamStatus, as_json: bool) -> None:
    if as_json:
        emit_json(dataclasses.asdict(state))
    elif state.running:
        click.echo(
            f"team server {state.server_name} running (pid {state.pid}) at {state.local_url}, "
            f"public URL {state.public_url}; log: {state.log_path}"
        )
    else:
        click.echo(
            f"team server {state.server_name} stopped: `claudematrix server start --dir "
            f"{state.folder}` (log: {state.log_path})"
        )


@server_group.command(name="start", help="Start the team server in the background.")
@_DIR
@json_option
def start_(directory: Path, as_json: bool) -> None:
    _show(team.start(_team(directory), stderr_progress), as_json)


@server_group.command(name="stop", help="Stop the team server.")
@_DIR
def stop_(directory: Path) -> None:
    stopped = team.stop(_team(directory))
    click.echo("team server stopped" if stopped else "team server was not running")


@server_group.command(name="status", help="Whether the team server runs, and where.")
@_DIR
@json_option
def status_(directory: Path, as_json: bool) -> None:
    _show(team.status(_team(directory)), as_json)


@server_group.command(
    name="run", help="Run the team server in the foreground (for systemd or a container)."
)
@_DIR
def run_(directory: Path) -> None:
    team.exec_foreground(_team(directory))


@server_group.command(
    name="health", help="Check the server, its database, disk and registration; exit 1 if not."
)
@_DIR
@json_option
def health_(directory: Path, as_json: bool) -> None:
    checks = team.health(_team(directory))
    healthy = all(check.ok for check in checks)
    if as_json:
        emit_json({"healthy": healthy, "checks": [check.as_json() for check in checks]})
    else:
        for check in checks:
            click.echo(f"{'ok' if check.ok else 'PROBLEM':8}{check.name}: {check.detail}")
    if not healthy:
        raise SystemExit(1)


@server_group.command(name="token", help="Make a registration token for a machine or a person.")
@_DIR
@click.option("--uses", type=int, help="How many accounts it may make (default: any number).")
@click.option("--expires", metavar="DURATION", help="Valid for e.g. 30m, 12h, 7d, 2w.")
@json_option
def token_(directory: Path, uses: int | None, expires: str | None, as_json: bool) -> None:
    where = _team(directory)
    expires_s = team.parse_duration(expires) if expires else None
    made = team.create_token(where, team.load_settings(where), uses, expires_s)
    if as_json:
        emit_json(made.as_json())
        return
    url = team.load_settings(where).public_url
    click.echo(made.token)
    click.echo(
        f"a machine joins with: claudematrix join {url} --token {made.token}  ({_limits(made)})",
        err=True,
    )


def _limits(token: team.RegistrationToken) -> str:
    uses = "any number of uses" if token.uses_allowed is None else f"{token.uses_allowed} uses"
    if token.expiry_ms is None:
        return f"{uses}, no expiry"
    when = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(token.expiry_ms / 1000))
    return f"{uses}, expires {when}"


@server_group.command(name="tokens", help="List the registration tokens, or revoke one.")
@_DIR
@click.option("--revoke", metavar="TOKEN", help="Revoke this token: it registers nobody more.")
@json_option
def tokens_(directory: Path, revoke: str | None, as_json: bool) -> None:
    where = _team(directory)
    settings = team.load_settings(where)
    if revoke:
        team.revoke_token(where, settings, revoke)
        click.echo(f"token {revoke} revoked")
        return
    found = team.list_tokens(where, settings)
    if as_json:
        emit_json([token.as_json() for token in found])
        return
    if not found:
        click.echo("no registration tokens: `claudematrix server token --dir DIR` makes one")
    for token in found:
        used = token.completed + token.pending
        click.echo(f"{token.token}  {token.state:8} used {used}  ({_limits(token)})")


@cli.command(name="join", help="Move this machine's sessions to a team server, with a token.")
@click.argument("url")
@click.option("--token", required=True, help="A registration token from the server's operator.")
@click.option(
    "--user",
    "person",
    metavar="NAME",
    help="Your own account there: logged in, or made with the token (password asked).",
)
@yes_option
def join_(url: str, token: str, person: str | None, yes: bool) -> None:
    config = load_config()
    question = (
        f"Move this machine's sessions to the team server {url}? Each session gets an account "
        "there (local history is kept) and the embedded homeserver is no longer started"
    )
    if not person_confirms(question, yes):
        click.echo(NOT_CONFIRMED)
        return
    password = None
    if person:
        password = os.environ.get("CLAUDEMATRIX_PASSWORD") or click.prompt(
            f"password of {person}", hide_input=True
        )
    done = asyncio.run(
        join_team(
            config,
            url,
            token,
            person=person,
            password=password,
            progress=stderr_progress,
            stop_daemon=daemon.stop,
        )
    )
    if done.token_only:
        click.echo(f"already on {done.url}: the new token is kept for new sessions")
    else:
        click.echo(f"this machine's sessions are on {done.url} ({done.server_name}) now")
    if done.owner:
        click.echo(f"  you are {done.owner} there")
    for old, new in done.moved:
        click.echo(f"  {old} is now {new}")
    if done.kept_at is not None:
        click.echo(f"old logins are kept in {done.kept_at}; `claudematrix leave` goes back")


@cli.command(name="leave", help="Move this machine's sessions back to the embedded homeserver.")
@yes_option
def leave_(yes: bool) -> None:
    config = load_config()
    question = (
        f"Leave the team server {config.homeserver_url} and go back to this machine's own "
        "homeserver? Local history is kept"
    )
    if not person_confirms(question, yes):
        click.echo(NOT_CONFIRMED)
        return
    done = asyncio.run(leave_team(config, stderr_progress, stop_daemon=daemon.stop))
    click.echo(f"this machine's sessions are on its own homeserver again ({done.server_name})")
    for old, new in done.moved:
        click.echo(f"  {old} is now {new}")
    if done.kept_at is not None:
        click.echo(f"the team server's logins are kept in {done.kept_at}")
