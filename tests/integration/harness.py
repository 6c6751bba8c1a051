"""The harness of the privacy, directory and adversarial tests: ClaudeMatrix identities driven
through the real `claudematrix` CLI as subprocesses, and a plain Matrix client (raw HTTP).

"Machine 1" is the shared homeserver's own state dir; "machine 2" is a second state dir that
uses the same Synapse as an external homeserver, so its identities are remote to machine 1's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcp.types as types
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from claudematrix.homeserver import register_account
from integration.conftest import SharedHomeserver

# Variables of the developer's shell (or of a Claude Code session running the tests) that
# would change who the CLI acts as or how it asks for confirmation.
_STRIP = (
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDECODE",
    "CLAUDE_PROJECT_DIR",
    "CLAUDEMATRIX_HOMESERVER",
    "CLAUDEMATRIX_REGISTRATION_SHARED_SECRET",
    "CLAUDEMATRIX_REGISTRATION_TOKEN",
    "CLAUDEMATRIX_HEARTBEAT_S",
    "CLAUDEMATRIX_HIDE_AFTER_DAYS",
    "CLAUDEMATRIX_SESSION_NAME",
    "CLAUDEMATRIX_MODE",
    "CLAUDEMATRIX_PLUGIN_MODE",
)


def new_tag() -> str:
    return uuid.uuid4().hex[:6]


@dataclass
class Machine:
    """One ClaudeMatrix state dir (a "machine") and the environment its CLI runs with."""

    label: str
    home: Path
    env: dict[str, str]
    url: str

    def run(
        self,
        *args: str,
        as_: str | None = None,
        project: Path | None = None,
        env: dict[str, str] | None = None,
        ok: bool = True,
        stdin: str | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        full_env = dict(self.env)
        if project is not None:
            full_env["CLAUDE_PROJECT_DIR"] = str(project)
        full_env.update(env or {})
        argv = [sys.executable, "-m", "claudematrix"]
        if as_ is not None:
            argv += ["--as", as_]
        proc = subprocess.run(
            [*argv, *args],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=timeout,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        if ok:
            assert proc.returncode == 0, (
                f"[{self.label}] claudematrix {' '.join(args)} as {as_ or 'owner'} failed "
                f"({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    for var in _STRIP:
        env.pop(var, None)
    return env


def machine_one(shared: SharedHomeserver) -> Machine:
    return Machine("machine 1", shared.home, {**_base_env(), **shared.env}, shared.url)


def machine_two(shared: SharedHomeserver, home: Path) -> Machine:
    """Another machine: its own state dir, the shared Synapse as an external homeserver."""
    secret = (shared.home / "homeserver" / "registration_shared_secret").read_text().strip()
    env = _base_env()
    env.pop("CLAUDEMATRIX_PORT", None)
    env.update(
        {
            "CLAUDEMATRIX_HOME": str(home),
            "CLAUDEMATRIX_HOMESERVER": shared.url,
            "CLAUDEMATRIX_REGISTRATION_SHARED_SECRET": secret,
            "CLAUDEMATRIX_SYNAPSE_VENV": shared.env["CLAUDEMATRIX_SYNAPSE_VENV"],
        }
    )
    return Machine("machine 2", home, env, shared.url)


def stranger_on(shared: SharedHomeserver, localpart: str) -> Raw:
    """An account on the homeserver that belongs to no ClaudeMatrix machine at all."""
    secret = (shared.home / "homeserver" / "registration_shared_secret").read_text().strip()
    account = register_account(shared.url, secret, localpart, secrets.token_urlsafe(16))
    return Raw(shared.url, account.access_token, account.user_id)


def project_dir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir(parents=True, exist_ok=True)
    return path


class Raw:
    """A plain Matrix client: urllib and an access token, nothing of ClaudeMatrix."""

    def __init__(self, url: str, token: str, user_id: str) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.user_id = user_id

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def attempt(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """Like `call`, but an error status is an answer, not an exception."""
        try:
            return 200, self.call(method, path, body)
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
            try:
                return exc.code, json.loads(raw or b"{}")
            except ValueError:
                return exc.code, {}

    def put_state(self, room: str, event_type: str, key: str, content: dict[str, Any]) -> int:
        path = f"/_matrix/client/v3/rooms/{self.q(room)}/state/{event_type}/{self.q(key)}"
        return self.attempt("PUT", path, content)[0]

    def send_message(self, room: str, content: dict[str, Any]) -> str:
        txn = uuid.uuid4().hex
        path = f"/_matrix/client/v3/rooms/{self.q(room)}/send/m.room.message/{txn}"
        return str(self.call("PUT", path, content)["event_id"])

    def invite(self, room: str, user: str) -> int:
        path = f"/_matrix/client/v3/rooms/{self.q(room)}/invite"
        return self.attempt("POST", path, {"user_id": user})[0]

    def create_room(self, **body: Any) -> str:
        return str(self.call("POST", "/_matrix/client/v3/createRoom", body)["room_id"])

    def sync(self, since: str | None = None, timeout_ms: int = 0) -> dict[str, Any]:
        query = f"timeout={timeout_ms}" + (f"&since={self.q(since)}" if since else "")
        return dict(self.call("GET", f"/_matrix/client/v3/sync?{query}"))

    @staticmethod
    def q(text: str) -> str:
        return urllib.parse.quote(text, safe="")

    def joined_rooms(self) -> list[str]:
        return list(self.call("GET", "/_matrix/client/v3/joined_rooms")["joined_rooms"])

    def resolve(self, alias: str) -> str | None:
        try:
            found = self.call("GET", f"/_matrix/client/v3/directory/room/{self.q(alias)}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return str(found["room_id"])

    def join(self, room: str) -> str:
        return str(self.call("POST", f"/_matrix/client/v3/join/{self.q(room)}", {})["room_id"])

    def state(self, room: str) -> list[dict[str, Any]]:
        return list(self.call("GET", f"/_matrix/client/v3/rooms/{self.q(room)}/state"))

    def history(self, room: str) -> list[dict[str, Any]]:
        """Every event of the room this user may see, newest first."""
        events: list[dict[str, Any]] = []
        token = ""
        for _ in range(100):
            query = "dir=b&limit=200" + (f"&from={self.q(token)}" if token else "")
            page = self.call("GET", f"/_matrix/client/v3/rooms/{self.q(room)}/messages?{query}")
            events += page.get("chunk", [])
            if not page.get("chunk") or not page.get("end"):
                break
            token = page["end"]
        return events

    def membership(self, room: str, user: str) -> str | None:
        path = f"/_matrix/client/v3/rooms/{self.q(room)}/state/m.room.member/{self.q(user)}"
        try:
            return str(self.call("GET", path).get("membership"))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


@dataclass
class Who:
    """One identity on one machine, in one project; `name` None is the person (owner)."""

    machine: Machine
    name: str | None
    project: Path
    user_id: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **kwargs.pop("env", {})}
        return self.machine.run(*args, as_=self.name, project=self.project, env=env, **kwargs)

    def json(self, *args: str, **kwargs: Any) -> Any:
        return json.loads(self.run(*args, "--json", **kwargs).stdout)

    def start(self) -> Who:
        """Create the account, join the machine rooms (whoami connects)."""
        me = self.json("whoami")
        assert str(me["user_id"]).startswith("@"), me
        self.user_id = str(me["user_id"])
        return self

    @property
    def dir(self) -> Path:
        return self.machine.home / "identities" / (self.name or "owner")

    def raw(self) -> Raw:
        account = json.loads((self.dir / "account.json").read_text())
        return Raw(self.machine.url, account["access_token"], account["user_id"])

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read this identity's store directly (read-only)."""
        uri = f"file:{self.dir / 'store.db'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as conn:
            return list(conn.execute(sql, params).fetchall())

    def trusted(self) -> set[str]:
        return {r[0] for r in self.rows("SELECT user_id FROM trust")}

    def mode(self) -> str:
        return str(self.json("whoami")["mode"])

    def contacts(self, *args: str, **kwargs: Any) -> dict[str, dict[str, Any]]:
        return {c["user_id"]: c for c in self.json("contacts", *args, **kwargs)}

    def inbox(self) -> list[dict[str, Any]]:
        return list(self.json("inbox", "--all"))

    def requests(self) -> list[dict[str, Any]]:
        return list(self.json("requests"))


def subjects_from(inbox: list[dict[str, Any]], sender: str, tag: str) -> set[str]:
    return {m["subject"] for m in inbox if m["from"] == sender and tag in m["subject"]}


def everything_visible_to(raw: Raw) -> str:
    """All events of every room this user is joined to, as one JSON text."""
    return json.dumps([raw.history(room) for room in raw.joined_rooms()])


def start_all(*whos: Who) -> None:
    """Start identities concurrently (as sessions do): accounts made, machine rooms joined."""
    with ThreadPoolExecutor(max_workers=len(whos)) as pool:
        list(pool.map(Who.start, whos))


def one_line_refusal(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0, proc.stdout
    assert proc.stdout.strip() == "", proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


PROFILE_EVENT = "com.claudematrix.profile"
PRESENCE_EVENT = "com.claudematrix.presence"
PUBLIC_ROOM = "#claudematrix-public:localhost"


def machine_rooms(m: Machine, raw: Raw, project: Path) -> tuple[str, str]:
    """The lobby and the project room of `project` on machine `m`, found by their aliases."""
    machine_id = json.loads((m.home / "config.json").read_text())["machine_id"]
    digest = hashlib.sha256(str(project.resolve()).encode()).hexdigest()[:10]
    lobby = raw.resolve(f"#cm-lobby-{machine_id}:localhost")
    room = raw.resolve(f"#cm-proj-{machine_id}-{digest}:localhost")
    assert lobby and room, (lobby, room)
    return lobby, room


@contextlib.asynccontextmanager
async def mcp_session(
    who: Who, log: Path, elicit: Any = None, env: dict[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """An MCP stdio client talking to `claudematrix mcp` as `who`."""
    full_env = {**who.machine.env, "CLAUDE_PROJECT_DIR": str(who.project), **(env or {})}
    args = ["-m", "claudematrix"] + (["--as", who.name] if who.name else []) + ["mcp"]
    params = StdioServerParameters(command=sys.executable, args=args, env=full_env)
    with log.open("a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            kwargs = {"elicitation_callback": elicit} if elicit is not None else {}
            async with ClientSession(read, write, **kwargs) as session:
                await session.initialize()
                yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> tuple[bool, str]:
    result = await session.call_tool(tool, arguments)
    text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
    return bool(result.isError), text
