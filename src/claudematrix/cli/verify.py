"""`claudematrix verify`: compare emoji with a person's client to verify their device.

The identity's device is the daemon's (one device, one owner), so the daemon runs the
verification and this command shows the emoji and asks the person; with the daemon off,
this process owns the device for the while. Never from inside Claude Code: an agent must
not be the one who says the emoji match.
"""

from __future__ import annotations

import json
import os

import click

from claudematrix.cli._app import cli, run_as
from claudematrix.cli._consent import inside_claude_code
from claudematrix.errors import ConsentRequired
from claudematrix.service import Service, verify_device
from claudematrix.thin import link
from claudematrix.thin.cli import DAEMON_ENV

__all__ = ["verify"]


@cli.command(help="Verify a person's device: compare emoji with their Matrix client.")
@click.argument("user")
@click.option("--device", help="Which of USER's devices, if they have several.")
@click.pass_context
def verify(ctx: click.Context, user: str, device: str | None) -> None:
    if inside_claude_code():
        raise ConsentRequired(
            "verifying a device needs the person to compare emoji in their own terminal; "
            "it cannot be done by a command run from inside a Claude Code session"
        )
    click.echo(
        f"Asking {user}'s client to verify (in Element: accept the request, then compare)..."
    )
    code = _through_daemon(ctx.obj.get("as"), user, device)
    if code is not None:
        ctx.exit(code)

    async def action(service: Service) -> str:
        async def compare(emoji: list[tuple[str, str]]) -> bool:
            return _ask(emoji)

        return await verify_device(service, user, device, compare)

    click.echo(run_as(ctx, action, start_homeserver=True))


def _ask(emoji: list[tuple[str, str]]) -> bool:
    click.echo("\nThe other client should show these emoji, in this order:\n")
    click.echo("  " + "  ".join(f"{e} {name}" for e, name in emoji))
    click.echo("")
    return click.confirm("Do they match exactly?", default=False)


def _through_daemon(as_name: str | None, user: str, device: str | None) -> int | None:
    """Run the verification in the daemon; its exit code, or None where no daemon can."""
    if os.environ.get(DAEMON_ENV, "").strip().lower() in ("0", "off", "no", "false"):
        return None
    try:
        link.ensure_daemon()
        sock, _ = link.connect(
            "verify", as_name=as_name, extra={"user": user, "device": device}, timeout=None
        )
    except link.DaemonUnavailable:
        return None
    with sock, sock.makefile("rb") as stream:
        for line in stream:
            message = json.loads(line)
            if "emoji" in message:
                match = _ask([(str(e), str(n)) for e, n in message["emoji"]])
                sock.sendall(json.dumps({"match": match}).encode() + b"\n")
            elif "said" in message:
                click.echo(message["said"])
                return int(message.get("exit", 0))
            elif "error" in message:
                click.echo(f"claudematrix: {message['error']}", err=True)
                return int(message.get("exit", 1))
    click.echo("claudematrix: the daemon stopped during the verification; run it again", err=True)
    return 4
