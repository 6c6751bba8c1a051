"""Homeserver commands: up, down, homeserver start|stop|status."""

from __future__ import annotations

import dataclasses

import click

from claudematrix import daemon, homeserver
from claudematrix.cli._app import cli, emit_json, json_option
from claudematrix.config import load_config
from claudematrix.homeserver import HomeserverStatus
from claudematrix.service import stderr_progress


def _show(state: HomeserverStatus, as_json: bool) -> None:
    if as_json:
        emit_json(
            {k: str(v) if k == "log_path" else v for k, v in dataclasses.asdict(state).items()}
        )
        return
    if state.external:
        click.echo(
            f"using the external homeserver {state.url}: answering"
            if state.running
            else f"the external homeserver {state.url} is not answering: check that it is up "
            "and that CLAUDEMATRIX_HOMESERVER (or 'homeserver' in config.json) is right"
        )
    elif state.running:
        click.echo(f"homeserver running at {state.url} (pid {state.pid}); log: {state.log_path}")
    elif not state.installed:
        click.echo("homeserver not installed yet: `claudematrix up` installs and starts it")
    else:
        click.echo(f"homeserver stopped: `claudematrix up` starts it (log: {state.log_path})")


def _start(as_json: bool) -> None:
    config = load_config()
    _show(homeserver.start(config, stderr_progress), as_json)


def _stop() -> None:
    if daemon.stop():  # first, so its sessions can still say "offline"
        click.echo("daemon stopped")
    config = load_config()
    if not config.embedded:
        click.echo(f"using the external homeserver {config.homeserver_url}: nothing to stop")
        return
    stopped = homeserver.stop(config)
    click.echo("homeserver stopped" if stopped else "homeserver was not running")


@cli.command(help="Start the embedded homeserver (installing it on first use).")
@json_option
def up(as_json: bool) -> None:
    _start(as_json)


@cli.command(help="Stop the embedded homeserver.")
def down() -> None:
    _stop()


@cli.group(name="homeserver", help="The embedded homeserver, explicitly.")
def homeserver_group() -> None:
    pass


@homeserver_group.command(name="start", help="Same as `claudematrix up`.")
@json_option
def hs_start(as_json: bool) -> None:
    _start(as_json)


@homeserver_group.command(name="stop", help="Same as `claudematrix down`.")
def hs_stop() -> None:
    _stop()


@homeserver_group.command(name="status", help="Is it installed and running?")
@json_option
def hs_status(as_json: bool) -> None:
    _show(homeserver.status(load_config()), as_json)
