"""`claudematrix worker start|list|stop|logs`: a machine put to work by messages.

A worker runs in the machine's daemon (so it survives the terminal closing) as an identity of
its own; starting one is the person's act, as it runs Claude Code on what others send:
refused inside Claude Code.
"""

from __future__ import annotations

import os
import time

import click

from claudematrix import daemon
from claudematrix.cli._app import cli, emit_json, json_option
from claudematrix.cli._consent import inside_claude_code
from claudematrix.errors import ConsentRequired, InvalidInput
from claudematrix.worker.spec import (
    SKIPS_CHECKS,
    WorkerSpec,
    load_workers,
    remove_worker,
    save_worker,
    worker_log,
)

_UP_TIMEOUT_S = 90.0


@cli.group(name="worker", help="Workers: messages in a Matrix room start Claude Code runs.")
def worker_group() -> None:
    pass


@worker_group.command(name="start", help="Start a worker on a project (in the background).")
@click.option("--project", required=True, help="The folder it works in.")
@click.option("--name", help="Its name (default: the folder's name).")
@click.option(
    "--allow", multiple=True, metavar="USER", help="A Matrix ID that may command it (repeat)."
)
@click.option("--timeout", "timeout_s", type=float, default=1800.0, help="Seconds per run.")
@click.option("--permission-mode", help="Claude Code's --permission-mode for its runs.")
@click.option("--allowed-tools", help="Claude Code's --allowedTools for its runs.")
@json_option
def start(
    project: str,
    name: str | None,
    allow: tuple[str, ...],
    timeout_s: float,
    permission_mode: str | None,
    allowed_tools: str | None,
    as_json: bool,
) -> None:
    if inside_claude_code():
        raise ConsentRequired(
            "a worker runs Claude Code on what others send: start it from your own terminal"
        )
    if permission_mode in SKIPS_CHECKS:
        click.echo(
            f"note: --permission-mode {permission_mode} skips Claude Code's permission checks "
            "for every command this worker runs",
            err=True,
        )
    folder_name = os.path.basename(os.path.abspath(os.path.expanduser(project)))
    chosen = (name or folder_name).lower()
    spec = WorkerSpec.checked(
        chosen,
        project,
        allow,
        timeout_s,
        permission_mode,
        allowed_tools,
        os.environ.get("CLAUDEMATRIX_CLAUDE") or "claude",
        int(time.time() * 1000),
    )
    if any(w.name == spec.name for w in load_workers()):
        raise InvalidInput(
            f"a worker named {spec.name} runs already: `claudematrix worker stop {spec.name}` "
            "first, or choose another --name"
        )
    save_worker(spec)
    up = _wait_until_up(spec.name)
    if as_json:
        emit_json(up)
        return
    click.echo(
        f"worker {spec.name} ({up.get('user_id')}) works in {spec.project}: send it a message "
        f"to run Claude Code there; `claudematrix worker logs {spec.name}` shows what it does"
    )


def _wait_until_up(name: str) -> dict[str, object]:
    deadline = time.monotonic() + _UP_TIMEOUT_S
    found: dict[str, object] = {}
    while time.monotonic() < deadline:
        running = {w["name"]: w for w in daemon.reconcile_workers()}
        found = running.get(name) or {}
        if found.get("user_id"):
            return found
        time.sleep(0.5)
    problem = found.get("problem") or "it did not come up"
    raise InvalidInput(
        f"worker {name} is registered but not working yet ({problem}): see "
        f"`claudematrix worker logs {name}`"
    )


@worker_group.command(name="list", help="The workers, and what each is doing.")
@json_option
def list_(as_json: bool) -> None:
    running = {w["name"]: w for w in daemon.reconcile_workers()}
    rows = []
    for spec in load_workers():
        state = running.get(spec.name) or {}
        rows.append(
            {
                "name": spec.name,
                "user_id": state.get("user_id"),
                "project": spec.project,
                "doing": state.get("doing") or "starting",
                "allow": list(spec.allow),
                "problem": state.get("problem"),
            }
        )
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no workers: `claudematrix worker start --project DIR`")
    for row in rows:
        line = f"{row['name']}  {row['user_id'] or '(starting)'}  {row['project']}  {row['doing']}"
        if row["problem"]:
            line += f"  ({row['problem']})"
        click.echo(line)


@worker_group.command(name="stop", help="Stop a worker (a run going now is cancelled).")
@click.argument("name")
def stop(name: str) -> None:
    if not remove_worker(name):
        known = ", ".join(w.name for w in load_workers()) or "none"
        raise InvalidInput(f"no worker is called {name!r} (workers: {known})")
    daemon.reconcile_workers()
    click.echo(f"worker {name} stopped")


@worker_group.command(name="logs", help="What a worker did (its log).")
@click.argument("name")
def logs(name: str) -> None:
    path = worker_log(name)
    if not path.exists():
        raise InvalidInput(f"no log for a worker {name!r}: `claudematrix worker list`")
    click.echo(path.read_text(errors="replace"), nl=False)
