"""A team server on a real PostgreSQL, set up, checked and joined through the real CLI:
`claudematrix server init|start|health|token|tokens` on the team's host, `claudematrix join`
and `leave` on members' machines (each its own state dir), a person registering with a token
as any Matrix client does (raw HTTP), and PostgreSQL stopped under a burst.

One throwaway PostgreSQL cluster (tests/support/postgres.py) and one team server serve the
module; each test makes its own machines and tokens.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import free_port, wait_until
from support.daemon import stop_daemons
from support.postgres import Postgres, throwaway_postgres
from support.synapse import kill_synapses, kill_synapses_of, synapse_pids, synapse_venv

from .harness import Machine, Raw, Who, _base_env, new_tag, one_line_refusal, project_dir

pytestmark = pytest.mark.integration

SERVER_NAME = "team.test"


@dataclass
class TeamServer:
    pg: Postgres
    folder: Path
    url: str
    env: dict[str, str]

    def run(
        self, *args: str, ok: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "claudematrix", "server", *args, "--dir", str(self.folder)],
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            timeout=180,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        if ok:
            assert proc.returncode == 0, f"server {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def token(self, *args: str) -> str:
        return str(json.loads(self.run("token", *args, "--json").stdout)["token"])

    def tokens(self) -> dict[str, dict[str, Any]]:
        return {t["token"]: t for t in json.loads(self.run("tokens", "--json").stdout)}

    def admin(self) -> Raw:
        login = json.loads((self.folder / "admin.json").read_text())
        return Raw(self.url, login["access_token"], login["user_id"])


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TeamServer]:
    root = tmp_path_factory.mktemp("team")
    with throwaway_postgres() as pg:
        dsn = pg.database("synapse", secrets.token_hex(8))
        port = free_port()
        env = _base_env()
        env.update(
            {
                "CLAUDEMATRIX_SYNAPSE_VENV": str(synapse_venv()),
                "CLAUDEMATRIX_HOME": str(root / "operator-home"),
            }
        )
        url = f"http://127.0.0.1:{port}"
        server = TeamServer(pg, root / "server", url, env)
        try:
            server.run(
                "init", "--server-name", SERVER_NAME, "--public-url", url,
                "--listen", f"127.0.0.1:{port}", env={"CLAUDEMATRIX_POSTGRES": dsn},
            )  # fmt: skip
            server.run("start")
            yield server
        finally:
            with contextlib.suppress(Exception):
                server.run("stop", ok=False)
            kill_synapses_of(server.folder / "homeserver.yaml")


@dataclass
class Machines:
    """Member machines: each its own state dir (and embedded homeserver port, unused once it
    joined); every daemon and Synapse of theirs stopped at the end."""

    root: Path
    made: list[Machine] = field(default_factory=list)

    def make(self, name: str) -> Machine:
        home = self.root / name / "cmhome"
        env = _base_env()
        env.update(
            {
                "CLAUDEMATRIX_HOME": str(home),
                "CLAUDEMATRIX_PORT": str(free_port()),
                "CLAUDEMATRIX_SYNAPSE_VENV": str(synapse_venv()),
                "CLAUDEMATRIX_MACHINE_NAME": name,
            }
        )
        machine = Machine(name, home, env, "")
        self.made.append(machine)
        return machine


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[Machines]:
    made = Machines(tmp_path)
    try:
        yield made
    finally:
        for machine in made.made:
            try:
                stop_daemons(machine.home)
            finally:
                kill_synapses(machine.home)


def join(machine: Machine, team: TeamServer, token: str, *extra: str, **kwargs: Any) -> str:
    proc = machine.run("join", team.url, "--token", token, "--yes", *extra, **kwargs)
    machine.url = team.url
    return proc.stdout


def register_as_a_client_does(url: str, username: str, password: str, token: str) -> Any:
    """Registration the way Element does it: user-interactive auth, the token as one stage
    (and a dummy stage if the server asks for one). Returns (status, body) of the last step."""
    body: dict[str, Any] = {"username": username, "password": password}
    for _stage in range(4):
        request = urllib.request.Request(
            f"{url}/_matrix/client/v3/register",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                answer = json.loads(exc.read() or b"{}")
            if exc.code != 401 or "flows" not in answer or "errcode" in answer:
                return exc.code, answer
        done = set(answer.get("completed", []))
        flow = next(
            f["stages"] for f in answer["flows"] if "m.login.registration_token" in f["stages"]
        )
        stage = next(s for s in flow if s not in done)
        auth: dict[str, Any] = {"type": stage, "session": answer["session"]}
        if stage == "m.login.registration_token":
            auth["token"] = token
        body = {**body, "auth": auth}
    raise AssertionError("registration did not finish in 4 steps")


def _yaml_as_json(path: Path) -> Any:
    """homeserver.yaml read by the Synapse venv's own YAML loader (what Synapse reads)."""
    python = synapse_venv() / "bin" / "python"
    code = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
    return json.loads(subprocess.check_output([str(python), "-c", code, str(path)], text=True))


# --- the team's host ---------------------------------------------------------------------


def test_init_writes_a_locked_down_production_config(team: TeamServer) -> None:
    assert stat.S_IMODE(team.folder.stat().st_mode) == 0o700
    for name in ("homeserver.yaml", "signing.key", "registration_shared_secret",
                 "macaroon_secret_key", "form_secret", "admin.json"):  # fmt: skip
        assert stat.S_IMODE((team.folder / name).stat().st_mode) == 0o600, name
    config = _yaml_as_json(team.folder / "homeserver.yaml")
    assert config["server_name"] == SERVER_NAME
    assert config["database"]["name"] == "psycopg2"
    assert config["database"]["args"]["dbname"] == "synapse"
    assert (config["enable_registration"], config["registration_requires_token"]) == (True, True)
    assert config["enable_media_repo"] is False and config["url_preview_enabled"] is False
    assert config["federation_domain_whitelist"] == []
    (listener,) = config["listeners"]
    assert listener["bind_addresses"] == ["127.0.0.1"] and listener["x_forwarded"] is True
    assert [r["names"] for r in listener["resources"]] == [["client"]]  # no federation
    assert config["rc_message"]["per_second"] > 0  # limited, not unlimited
    assert config["rc_registration"]["burst_count"] < 1000
    assert Path(config["log_config"]).is_file()
    # From outside: no registration without a token, no federation, no media.
    status, answer = register_as_a_client_does(team.url, f"x{new_tag()}", "pw-123456", "")
    assert status in (401, 403), answer
    for path in ("/_matrix/key/v2/server", "/_matrix/media/v3/config"):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(team.url + path, timeout=10).close()


def test_init_refuses_a_database_without_c_collation(team: TeamServer, tmp_path: Path) -> None:
    name = f"wrong_{new_tag()}"
    dsn = team.pg.database(name, "pw", collate="C.UTF-8")
    folder = tmp_path / "second"
    proc = subprocess.run(
        [sys.executable, "-m", "claudematrix", "server", "init", "--dir", str(folder),
         "--server-name", "other.test", "--public-url", "https://other.test",
         "--postgres", dsn],
        capture_output=True, text=True, env=team.env, timeout=120,
    )  # fmt: skip
    line = one_line_refusal(proc)
    assert "LC_COLLATE is 'C.UTF-8'" in line and "CREATE DATABASE" in line, line
    assert not (folder / "homeserver.yaml").exists()
    assert "pw@" not in line  # the DSN's password is not echoed


def test_health_reads_well_when_all_is_well(team: TeamServer) -> None:
    proc = team.run("health")
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * 5, proc.stdout
    report = json.loads(team.run("health", "--json").stdout)
    assert report["healthy"] is True
    assert [c["name"] for c in report["checks"]] == [
        "homeserver", "database", "schema", "disk", "registration",
    ]  # fmt: skip
    status = json.loads(team.run("status", "--json").stdout)
    assert status["running"] and status["server_name"] == SERVER_NAME


def test_run_serves_in_the_foreground_as_a_service_manager_wants(team: TeamServer) -> None:
    """`server run` (what the systemd unit starts) is Synapse itself, in the foreground: it
    answers, and a SIGTERM (systemctl stop) ends it."""
    assert "team server stopped" in team.run("stop").stdout
    foreground = subprocess.Popen(
        [sys.executable, "-m", "claudematrix", "server", "run", "--dir", str(team.folder)],
        env=team.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: team.run("health", ok=False).returncode == 0, 60, "run to serve")
        status = json.loads(team.run("status", "--json").stdout)
        assert status["running"] and status["pid"] == foreground.pid  # exec'd: one process
        foreground.terminate()
        assert foreground.wait(30) is not None
        assert json.loads(team.run("status", "--json").stdout)["running"] is False
    finally:
        if foreground.poll() is None:
            foreground.kill()
        team.run("start")


def test_tokens_count_their_uses_expire_and_can_be_revoked(
    team: TeamServer, machines: Machines
) -> None:
    fresh = machines.make("newcomer")

    once = team.token("--uses", "1")
    status, body = register_as_a_client_does(team.url, f"p{new_tag()}", "pw-123456", once)
    assert status == 200 and body["user_id"].endswith(":" + SERVER_NAME), body
    status, _ = register_as_a_client_does(team.url, f"p{new_tag()}", "pw-123456", once)
    assert status in (401, 403)
    listed = team.tokens()[once]
    assert (listed["completed"], listed["state"]) == (1, "used up"), listed
    line = one_line_refusal(fresh.run("join", team.url, "--token", once, "--yes", ok=False))
    assert "not valid" in line and "used up" in line, line

    hourly = team.token("--expires", "1h")
    expiry = team.tokens()[hourly]["expiry_ms"] / 1000
    assert time.time() + 3500 < expiry < time.time() + 3700
    # An hour is long for a test: the operator's admin API moves the expiry to seconds away.
    soon = int((time.time() + 2) * 1000)
    path = f"/_synapse/admin/v1/registration_tokens/{hourly}"
    team.admin().call("PUT", path, {"expiry_time": soon})
    wait_until(lambda: team.tokens()[hourly]["state"] == "expired", 30, "the token to expire")
    line = one_line_refusal(fresh.run("join", team.url, "--token", hourly, "--yes", ok=False))
    assert "not valid" in line, line

    revoked = team.token()
    assert "revoked" in team.run("tokens", "--revoke", revoked).stdout
    assert revoked not in team.tokens()
    line = one_line_refusal(fresh.run("join", team.url, "--token", revoked, "--yes", ok=False))
    assert "not valid" in line, line
    assert not (fresh.home / "config.json").exists() or "homeserver" not in json.loads(
        (fresh.home / "config.json").read_text()
    )  # nothing changed on the machine
    line = one_line_refusal(team.run("tokens", "--revoke", revoked, ok=False))
    assert "no registration token" in line


# --- members' machines -------------------------------------------------------------------


def test_a_machine_whose_token_ran_out_says_so_and_takes_a_new_one(
    team: TeamServer, machines: Machines, tmp_path: Path
) -> None:
    box = machines.make("box")
    join(box, team, team.token("--uses", "2"))  # the machine account, then one session
    project = project_dir(tmp_path, "p")
    Who(box, "first", project).start()
    line = one_line_refusal(Who(box, "second", project).run("whoami", ok=False))
    assert "used up, revoked or expired" in line and "claudematrix join" in line, line
    said = join(box, team, team.token())
    assert "already on" in said, said
    assert Who(box, "second", project).start().user_id.endswith(":" + SERVER_NAME)


def _lobby_alias(machine: Machine) -> str:
    machine_id = json.loads((machine.home / "config.json").read_text())["machine_id"]
    return f"#cm-lobby-{machine_id}:{SERVER_NAME}"


def test_two_machines_join_keep_history_and_mail_under_the_rings(
    team: TeamServer, machines: Machines, tmp_path: Path
) -> None:
    token = team.token("--uses", "20")
    one, two = machines.make("one"), machines.make("two")
    shared = project_dir(tmp_path, "shared")
    one.url = f"http://127.0.0.1:{one.env['CLAUDEMATRIX_PORT']}"
    one.run("up")  # machine one starts on its embedded homeserver, as every install does
    alpha, beta = Who(one, "alpha", shared).start(), Who(one, "beta", shared).start()
    tag = new_tag()
    alpha.run("send", beta.user_id, "from the embedded days", "--subject", f"{tag} before")
    wait_until(lambda: any(tag in m["subject"] for m in beta.inbox()), 60, "the first mail")

    said = join(one, team, token)
    assert f"{alpha.user_id} is now @cc-alpha:{SERVER_NAME}" in said, said
    assert synapse_pids(one.home) == []  # the embedded homeserver is stopped and stays so
    alpha.start()
    beta.start()
    assert alpha.user_id.endswith(":" + SERVER_NAME)
    (old,) = [m for m in beta.inbox() if m["subject"] == f"{tag} before"]
    assert old["from"] == alpha.user_id  # the history followed the rename
    assert "external" in one.run("homeserver", "status").stdout

    join(two, team, token)
    gamma = Who(two, "gamma", project_dir(tmp_path, "elsewhere")).start()
    twin = Who(two, "twin", shared).start()  # the same path, on another machine

    seen = alpha.contacts()
    assert seen[beta.user_id]["where"] == "same project"
    assert gamma.user_id not in seen and twin.user_id not in seen  # private, and remote
    assert alpha.user_id not in gamma.contacts() and alpha.user_id not in twin.contacts()

    # gamma, hostile, with its own token and plain HTTP: machine one's lobby stays shut.
    raw = gamma.raw()
    lobby = raw.resolve(_lobby_alias(one))
    assert lobby is not None
    assert raw.attempt("POST", f"/_matrix/client/v3/join/{raw.q(lobby)}", {})[0] == 403
    assert raw.attempt("GET", f"/_matrix/client/v3/rooms/{raw.q(lobby)}/messages")[0] == 403
    assert lobby not in raw.joined_rooms()

    # Private mail stays on its machine; trusted mail crosses to a trusted remote session.
    line = one_line_refusal(alpha.run("send", gamma.user_id, "x", "--label", "private", ok=False))
    assert "labelled private" in line and "remote" in line, line
    alpha.run("trust", gamma.user_id, "--yes")
    gamma.run("trust", alpha.user_id, "--yes")
    alpha.run("send", gamma.user_id, "across", "--subject", f"{tag} across", "--label", "trusted")
    got = wait_until(
        lambda: [m for m in gamma.inbox() if m["subject"] == f"{tag} across"], 60, "gamma's mail"
    )
    assert got[0]["where"] == "trusted remote", got

    # And back: `leave` returns machine one to its own homeserver, history kept.
    said = one.run("leave", "--yes").stdout
    assert f"@cc-alpha:{SERVER_NAME} is now @cc-alpha:localhost" in said, said
    one.url = f"http://127.0.0.1:{one.env['CLAUDEMATRIX_PORT']}"
    alpha.start()
    beta.start()
    assert alpha.user_id == "@cc-alpha:localhost"  # its embedded account, not a new one
    alpha.run("send", beta.user_id, "home again", "--subject", f"{tag} home")
    wait_until(
        lambda: {f"{tag} before", f"{tag} home"} <= {m["subject"] for m in beta.inbox()},
        60,
        "mail on the embedded homeserver again",
    )


def test_a_person_registers_with_a_token_and_reaches_the_sessions(
    team: TeamServer, machines: Machines, tmp_path: Path
) -> None:
    person, password = f"ann{new_tag()}", "ann-pw-" + secrets.token_hex(4)
    status, body = register_as_a_client_does(team.url, person, password, team.token("--uses", "1"))
    assert status == 200, body
    person_id = body["user_id"]
    ann = Raw(team.url, body["access_token"], person_id)

    laptop = machines.make("laptop")
    token = team.token("--uses", "10")
    wrong = laptop.run(
        "join", team.url, "--token", token, "--user", person, "--yes",
        env={"CLAUDEMATRIX_PASSWORD": "not-it"}, ok=False,
    )  # fmt: skip
    assert "did not take that password" in one_line_refusal(wrong)
    stored = laptop.home / "config.json"
    assert not stored.exists() or "homeserver" not in json.loads(stored.read_text())
    said = join(laptop, team, token, "--user", person, env={"CLAUDEMATRIX_PASSWORD": password})
    assert f"you are {person_id} there" in said, said
    assert json.loads(laptop.run("whoami", "--json").stdout)["user_id"] == person_id
    assert password not in (laptop.home / "config.json").read_text()
    assert password not in (laptop.home / "identities" / "owner" / "account.json").read_text()

    worker = Who(laptop, "worker", project_dir(tmp_path, "p")).start()
    worker.run("send", "owner", "done with the build", "--subject", "build")

    def invited() -> list[str]:
        return list(ann.sync().get("rooms", {}).get("invite", {}))

    (room,) = wait_until(invited, 60, "the session's DM invite to its person")
    ann.join(room)

    def from_the_session() -> list[dict[str, Any]]:
        return [
            e
            for e in ann.history(room)
            if e["sender"] == worker.user_id and e["type"] in ("m.room.message", "m.room.encrypted")
        ]

    (message,) = wait_until(from_the_session, 60, "the session's message in the person's DM")
    if message["type"] == "m.room.message":  # a person with no encryption device reads it
        assert "done with the build" in message["content"]["body"]

    # Leaving, the owner is the person's own local account again, not one named after ann.
    laptop.run("leave", "--yes")
    local_owner = json.loads(laptop.run("whoami", "--json").stdout)["user_id"]
    assert local_owner.endswith(":localhost") and person not in local_owner, local_owner


def test_postgres_stopped_health_says_so_and_nothing_is_lost(
    team: TeamServer, machines: Machines, tmp_path: Path
) -> None:
    box = machines.make("box")
    join(box, team, team.token("--uses", "10"))
    project = project_dir(tmp_path, "p")
    sender, reader = Who(box, "sender", project).start(), Who(box, "reader", project).start()
    tag = new_tag()
    sender.run("send", reader.user_id, "warm-up", "--subject", f"{tag} warm")
    outcomes: dict[int, str] = {}

    def burst() -> None:
        for i in range(24):
            proc = sender.run(
                "send", reader.user_id, f"n{i}", "--subject", f"{tag} {i:02d}", ok=False
            )
            outcomes[i] = "sent" if proc.returncode == 0 else proc.stderr.strip()

    thread = threading.Thread(target=burst)
    thread.start()
    try:
        wait_until(lambda: len(outcomes) >= 6, 120, "the burst under way")
        team.pg.stop("fast")
        health = team.run("health", ok=False)
        assert health.returncode == 1
        (db_line,) = [line for line in health.stdout.splitlines() if " database:" in line]
        assert db_line.startswith("PROBLEM") and "PostgreSQL unreachable" in db_line, db_line
        wait_until(lambda: len(outcomes) >= 12, 180, "sends while the database is down")
    finally:
        if team.pg.pid() is None:
            team.pg.start()
        thread.join(300)
    assert team.run("health").returncode == 0

    # Every send either went out, or was queued and goes out now, or said in one line that it
    # did not: nothing silently lost, nothing twice.
    for i, outcome in outcomes.items():
        assert outcome == "sent" or len(outcome.splitlines()) == 1, (i, outcome)
    promised = {
        f"{tag} {i:02d}"
        for i, outcome in outcomes.items()
        if outcome == "sent" or "queued" in outcome
    }
    sender.run("send", reader.user_id, "after", "--subject", f"{tag} after")  # flushes the queue

    def arrived() -> list[str]:
        return [m["subject"] for m in reader.inbox() if m["subject"].startswith(f"{tag} ")]

    try:
        wait_until(lambda: promised | {f"{tag} after"} <= set(arrived()), 120, "promised mail")
    except AssertionError:
        missing = sorted(promised | {f"{tag} after"} - set(arrived()))
        raise AssertionError(f"missing {missing}; what the sends said: {outcomes}") from None
    got = arrived()
    assert len(got) == len(set(got)), sorted(got)  # none twice
    assert any(outcome != "sent" for outcome in outcomes.values()), outcomes  # the outage hit
