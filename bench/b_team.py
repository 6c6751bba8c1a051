"""Many sessions on a team server: PostgreSQL against SQLite, in one run.

Two team servers of our own in the run dir. One is made as an operator makes it (`claudematrix
server init` on a throwaway PostgreSQL cluster, bench/_postgres.py); the other is the same
config from the same settings with SQLite as its database, the only difference. A machine of
its own joins each (`claudematrix join URL --token`) and starts N sessions through their
shims, as Claude Code does; then delivery between two of them: session A's `send` tool ->
the row in B's store and B's mail.marker (what the hooks read). Samples alternate between the
servers: SQLite, PostgreSQL, SQLite, ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench._env import PYTHON, BenchError, free_port
from bench._postgres import postgres_bindir, throwaway_postgres
from bench._proc import Peer
from bench._stats import Dist, Row
from bench._watch import StoreWatch
from bench._world import Ctx
from bench.budgets import judge

__all__ = ["bench_team"]

_STEP_TIMEOUT = 30.0
_CLI_TIMEOUT = 240.0


@dataclass
class _Team:
    """A team server, the machine that joined it, and two of that machine's sessions."""

    name: str
    folder: Path
    port: int
    machine: Path
    embedded_port: int = dataclasses.field(default_factory=free_port)  # never started
    peers: list[Peer] = dataclasses.field(default_factory=list)
    sender: Peer | None = None
    recipient: str = ""
    watch: StoreWatch | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def machine_env(self) -> dict[str, str]:
        return {
            "CLAUDEMATRIX_HOME": str(self.machine),
            "CLAUDEMATRIX_PORT": str(self.embedded_port),
            "CLAUDEMATRIX_MACHINE_NAME": f"{self.name}-machine",
        }


def _cli(ctx: Ctx, env: dict[str, str], *args: str) -> str:
    return ctx.cli(env, *args, timeout=_CLI_TIMEOUT)


def _operator_env(ctx: Ctx) -> dict[str, str]:
    return {"CLAUDEMATRIX_HOME": str(ctx.env.run_dir / "operator")}


def _on_postgres(ctx: Ctx, dsn: str) -> _Team:
    team = _Team("team-pg", ctx.env.run_dir / "team-pg", free_port(), ctx.env.run_dir / "m-pg")
    _cli(
        ctx,
        {**_operator_env(ctx), "CLAUDEMATRIX_POSTGRES": dsn},
        "server", "init", "--dir", str(team.folder), "--server-name", "pg.team.test",
        "--public-url", team.url, "--listen", f"127.0.0.1:{team.port}",
    )  # fmt: skip
    return team


def _on_sqlite(ctx: Ctx) -> _Team:
    """The same settings as `server init` writes, with SQLite for the database."""
    from claudematrix.homeserver._yaml import dump_yaml
    from claudematrix.homeserver.synapse_config import ensure_secrets, log_settings
    from claudematrix.paths import ensure_dir, write_json_private, write_private
    from claudematrix.team import TeamDir, TeamSettings
    from claudematrix.team.settings import synapse_yaml_settings

    run = ctx.env.run_dir
    team = _Team("team-lite", run / "team-lite", free_port(), run / "m-lite")
    where = TeamDir(ensure_dir(team.folder))
    settings = TeamSettings(
        "lite.team.test", team.url, "127.0.0.1", team.port, synapse_venv=str(ctx.env.synapse_venv)
    )
    config = synapse_yaml_settings(settings, where, {})
    database = str(team.folder / "homeserver.db")
    config["database"] = {"name": "sqlite3", "args": {"database": database}}
    ensure_secrets(where.synapse)
    write_private(where.synapse.log_config_path, dump_yaml(log_settings()))
    write_private(where.synapse.config_path, dump_yaml(config))
    write_json_private(where.settings_path, dataclasses.asdict(settings))
    return team


def _populate(ctx: Ctx, team: _Team, sessions: int) -> None:
    """The server started, a machine joined, `sessions` sessions running on it."""
    _cli(ctx, _operator_env(ctx), "server", "start", "--dir", str(team.folder))
    token = json.loads(
        _cli(ctx, _operator_env(ctx), "server", "token", "--dir", str(team.folder), "--json")
    )["token"]
    env = team.machine_env()
    _cli(ctx, env, "join", team.url, "--token", token, "--yes")
    names = [f"{team.name}-s{i}" for i in range(sessions)]
    for name in names:
        team.peers.append(
            Peer.start(
                ctx.env,
                name,
                [PYTHON, "-m", "bench._sessionpeer"],
                {"identity": name, "trust": []},
                extra_env=env,
            )
        )
    ids = [
        peer.expect("ready", 240.0, f"session {name}")[1]
        for peer, name in zip(team.peers, names, strict=True)
    ]
    team.sender, team.recipient = team.peers[0], ids[1]
    team.watch = StoreWatch([team.machine / "identities" / names[1]])


def _delivery(team: _Team, token: str) -> float:
    assert team.sender is not None and team.watch is not None
    watch = team.watch
    team.sender.write(f"send {team.recipient} {token}")

    def visible(i: int) -> bool:
        local = watch.row_id(i, token + " ")
        return local is not None and watch.marker(i) >= local

    what = f"{token} on {team.name}"
    seen = watch.wait(visible, [0], _STEP_TIMEOUT, what, abort=team.sender.failure)
    t0 = float(team.sender.expect("sent", _STEP_TIMEOUT)[2])
    return (seen[0] - t0) * 1000


def bench_team(ctx: Ctx) -> list[Row]:
    if postgres_bindir() is None:
        raise BenchError("PostgreSQL is not installed: scripts/setup-dev.sh installs it")
    sessions, reps = (4, 20) if ctx.quick else (20, 100)
    teams: list[_Team] = []
    with throwaway_postgres() as pg:
        try:
            teams.append(_on_sqlite(ctx))
            teams.append(_on_postgres(ctx, pg.database("synapse", "bench-pw")))
            for team in teams:
                _populate(ctx, team, sessions)
            lite, on_pg = teams
            for i in range(3):  # warm-up: DMs made, keys shared, connections open
                _delivery(lite, f"tw{i}l")
                _delivery(on_pg, f"tw{i}p")
            base = Dist(f"send tool -> row + mail.marker, {sessions} sessions, SQLite", "ms")
            ours = Dist(f"send tool -> row + mail.marker, {sessions} sessions, PostgreSQL", "ms")
            for i in range(reps):
                base.samples.append(_delivery(lite, f"t{i}l"))
                ours.samples.append(_delivery(on_pg, f"t{i}p"))
            return [
                judge(
                    "team_delivery",
                    base,
                    ours,
                    title=f"Team server, {sessions} sessions: delivery on PostgreSQL vs SQLite",
                    note=f"{reps} pairs; each server its own machine of {sessions} sessions; the "
                    "same team config (server init), only the database differs",
                )
            ]
        finally:
            for team in teams:
                if team.watch is not None:
                    team.watch.close()
                ctx.stop(team.peers)
                with contextlib.suppress(BenchError, subprocess.SubprocessError):
                    _cli(ctx, team.machine_env(), "daemon", "stop")
                with contextlib.suppress(BenchError, subprocess.SubprocessError):
                    _cli(ctx, _operator_env(ctx), "server", "stop", "--dir", str(team.folder))
