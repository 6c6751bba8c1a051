"""The daemon commands (daemon start|stop|status|run) and `mcp`, the session's MCP server."""

from __future__ import annotations

import dataclasses
import sys
import time

import click

from claudematrix import daemon
from claudematrix.cli import remote
from claudematrix.cli._app import cli, emit_json, json_option
from claudematrix.paths import state_dir
from claudematrix.thin import link


def _show(state: daemon.DaemonStatus, as_json: bool) -> None:
    if as_json:
        emit_json(dataclasses.asdict(state))
        return
    if not state.running:
        click.echo(
            "daemon not running: it starts on demand (or `claudematrix daemon start`); "
            f"log: {state.log_path}"
        )
        return
    up = time.time() - (state.started or time.time())
    click.echo(
        f"daemon running (pid {state.pid}, version {state.version}, up {up:.0f} s): "
        f"{state.sessions} session connection(s), {len(state.identities)} identity(ies); "
        f"log: {state.log_path}"
    )
    for held in state.identities:
        line = f"  {held['identity']}: {held['connections']} connection(s)"
        if held.get("problem"):
            line += f"; {held['problem']}"
        click.echo(line)


@cli.group(name="daemon", help="The machine's daemon, which owns every session's Matrix side.")
def daemon_group() -> None:
    pass


@daemon_group.command(name="start", help="Start it (sessions and the CLI also start it).")
@json_option
def daemon_start(as_json: bool) -> None:
    try:
        _show(daemon.start(), as_json)
    except link.DaemonUnavailable as exc:
        raise click.ClickException(str(exc)) from None


@daemon_group.command(name="stop", help="Stop it; its sessions say offline.")
def daemon_stop() -> None:
    click.echo("daemon stopped" if daemon.stop() else "daemon was not running")


@daemon_group.command(name="status", help="Is it running, and whom does it serve?")
@json_option
def daemon_status(as_json: bool) -> None:
    _show(daemon.status(), as_json)


@daemon_group.command(name="run", help="Run it in the foreground (what `start` runs).")
def daemon_run() -> None:
    sys.exit(daemon.run_daemon(state_dir(), run_command=remote.run_command))


@cli.command(help="Run the MCP stdio server for this Claude Code session.")
@click.option(
    "--standalone",
    is_flag=True,
    help="Serve the tools in this process instead of through the machine's daemon.",
)
@click.pass_context
def mcp(ctx: click.Context, standalone: bool) -> None:
    if standalone:
        from claudematrix.mcp_server import serve  # the mcp SDK is only needed here

        serve(ctx.obj.get("as"))
        return
    from claudematrix.thin import shim

    sys.exit(shim.run(as_name=ctx.obj.get("as")))
