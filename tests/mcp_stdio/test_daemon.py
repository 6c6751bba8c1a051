"""The machine's daemon behind the sessions' MCP shims: one daemon for every session, its
socket API, and kill -9 of the daemon or a shim with every message accounted for."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_support import McpSession, OpenMcp
from test_mcp_server import matrix_id

from claudematrix.thin import link
from integration.conftest import SharedHomeserver
from integration.conftest import own_homeserver as own_homeserver  # noqa: F401
from support import wait_until
from support.daemon import daemon_pids

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _daemon(shared: SharedHomeserver) -> int:
    pids = wait_until(lambda: daemon_pids(shared.home), 30, "the daemon to run")
    assert len(pids) == 1, pids
    return pids[0]


def _ask(home: Path, hello: bytes) -> dict[str, object]:
    """One raw request on the daemon's socket, as any local process could send it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        with link.bind_address(str(home / "daemon.sock")) as address:
            sock.connect(address)
        sock.sendall(hello)
        answer: dict[str, object] = json.loads(link.read_line(sock))
        return answer


async def _received(s: McpSession, tag: str) -> list[str]:
    text = await s.ok("search", query=tag, limit=100)
    return [line for line in text.splitlines() if tag in line]


async def _wait_received(s: McpSession, tag: str, count: int, timeout: float = 60) -> list[str]:
    with anyio.fail_after(timeout):
        while len(found := await _received(s, tag)) < count:
            await anyio.sleep(0.1)
    return found


async def test_sessions_share_one_daemon_which_serves_them_all(
    open_mcp: OpenMcp, shared_homeserver: SharedHomeserver
) -> None:
    with anyio.fail_after(120):
        async with open_mcp() as a, open_mcp() as b:
            a_id = matrix_id(await a.ok("whoami"))
            b_id = matrix_id(await b.ok("whoami"))
            assert a_id != b_id
            pid = _daemon(shared_homeserver)
            state = _ask(shared_homeserver.home, b'{"protocol": 1, "want": "status"}\n')
            assert state["ok"] and state["pid"] == pid
            held = {h["identity"] for h in state["identities"]}  # type: ignore[attr-defined]
            assert {a.session_id, b.session_id} <= held
    home = shared_homeserver.home
    assert stat.S_IMODE(os.stat(home / "daemon.sock").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700


async def test_the_socket_refuses_what_is_not_the_protocol(
    open_mcp: OpenMcp, shared_homeserver: SharedHomeserver
) -> None:
    home = shared_homeserver.home
    async with open_mcp() as s:
        await s.ok("whoami")
        pid = _daemon(shared_homeserver)
        for hello, says in [
            (b"GET / HTTP/1.0\n", "no hello"),
            (b'{"protocol": 99, "want": "status"}\n', "protocol 1"),
            (b'{"protocol": 1, "want": "rm -rf"}\n', "unknown request"),
            (b'{"protocol": 1, "want": "mcp", "as": "../../etc"}\n', "session name"),
        ]:
            answer = _ask(home, hello)
            assert answer["ok"] is False and says in str(answer["error"]), (hello, answer)
        # The daemon and the session's tools carry on.
        assert _daemon(shared_homeserver) == pid
        await s.ok("whoami")


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
async def test_another_user_is_refused_even_where_the_files_would_let_them_in(
    open_mcp: OpenMcp, shared_homeserver: SharedHomeserver
) -> None:
    """The socket is 0600 in a 0700 dir; were those ever loosened, the daemon still checks
    each peer's uid (SO_PEERCRED) before it reads a word."""
    home = shared_homeserver.home
    async with open_mcp() as s:
        await s.ok("whoami")
        sock_path = home / "daemon.sock"
        # Another user cannot reach into the test's dirs: give them a door of their own (a
        # hard link to the same socket), and loosen the socket's mode (shared by both names).
        door_dir = Path(tempfile.mkdtemp(dir="/tmp"))
        door = door_dir / "door.sock"
        os.link(sock_path, door)
        os.chmod(door_dir, 0o711)
        os.chmod(sock_path, 0o666)
        try:
            probe = (  # it reads at once: the daemon answers before reading anything
                "import json, os, socket, sys\n"
                "os.setgid(65534); os.setuid(65534)\n"
                "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                "print(s.makefile().readline())\n"
            )
            out = subprocess.run(
                [sys.executable, "-I", "-c", probe, str(door)],
                capture_output=True,
                text=True,
                timeout=30,
            )
        finally:
            os.chmod(sock_path, 0o600)
            shutil.rmtree(door_dir)
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert answer == {"ok": False, "error": "not the daemon's user"}


async def test_kill_9_of_the_daemon_during_a_burst_loses_and_duplicates_nothing(
    open_mcp: OpenMcp, shared_homeserver: SharedHomeserver
) -> None:
    """Sends go on while the daemon is killed (three times, each while a send is in flight):
    every send answers, and the other session has each message exactly once."""
    tag = uuid.uuid4().hex[:8]
    total = 12
    with anyio.fail_after(240):
        async with open_mcp() as a, open_mcp() as b:
            b_id = matrix_id(await b.ok("whoami"))
            await a.ok("whoami")
            killed = []
            for i in range(total):
                send = a.ok("send", to=b_id, text="burst", subject=f"{tag} message {i}")
                if i % 4 != 1:
                    await send
                    continue
                pid = _daemon(shared_homeserver)
                async with anyio.create_task_group() as group:

                    async def sending(send: object = send) -> None:
                        await send  # type: ignore[misc]

                    group.start_soon(sending)
                    # Not a wait for a condition: a few turns of the loop put the request on
                    # its way to the daemon, which then dies while it handles it.
                    for _ in range(10):
                        await anyio.lowlevel.checkpoint()
                    os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            assert len(set(killed)) == 3  # a new daemon each time
            await _wait_received(b, tag, total)
            # A last message: the room's order is total, so once it is in, so is any copy.
            await a.ok("send", to=b_id, text="burst", subject=f"{tag} last")
            await _wait_received(b, f"{tag} last", 1)
            found = [line for line in await _received(b, tag) if "last" not in line]
            bodies = sorted(int(re.findall(r"message (\d+)", line)[0]) for line in found)
            assert bodies == list(range(total)), found


async def test_kill_9_of_a_shim_leaves_the_others_working_and_its_sends_single(
    open_mcp: OpenMcp, shared_homeserver: SharedHomeserver, mcp_env: object
) -> None:
    tag = uuid.uuid4().hex[:8]
    with anyio.fail_after(180):
        async with open_mcp() as b:
            b_id = matrix_id(await b.ok("whoami"))
            session = str(uuid.uuid4())
            async with open_mcp(session_id=session) as a:
                await a.ok("send", to=b_id, text="x", subject=f"{tag} before")
                shims = _shim_pids(session)
                assert len(shims) == 1, shims
                os.kill(shims[0], signal.SIGKILL)
            # The same session again (Claude Code reconnecting its MCP server): it works,
            # and nothing it sent before was sent twice.
            async with open_mcp(session_id=session) as again:
                await again.ok("send", to=b_id, text="x", subject=f"{tag} after")
            found = await _wait_received(b, tag, 2)
            assert len(found) == 2, found
            await b.ok("whoami")


def _shim_pids(session_id: str) -> list[int]:
    found = []
    wanted = f"CLAUDE_CODE_SESSION_ID={session_id}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        proc = Path("/proc") / entry
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[-2:] == [b"mcp", b""] and wanted in environ:
            found.append(int(entry))
    return found


async def test_kill_9_of_the_homeserver_during_sends_loses_and_duplicates_nothing(
    own_homeserver: Callable[[], object], tmp_path: Path
) -> None:
    """The embedded homeserver killed between sends: each send after it answers or says its
    message is queued; the daemon starts the homeserver again and delivers what waited, and
    the other session has every message exactly once."""
    tag = uuid.uuid4().hex[:8]
    config = own_homeserver()
    home = config.home  # type: ignore[attr-defined]

    @asynccontextmanager
    async def session(name: str) -> AsyncIterator[McpSession]:
        project = tmp_path / "projects" / name
        project.mkdir(parents=True)
        env = {**os.environ, "CLAUDE_CODE_SESSION_ID": name, "CLAUDE_PROJECT_DIR": str(project)}
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "claudematrix", "mcp"], env=env
        )
        log = tmp_path / f"mcp-{name}.log"
        with open(log, "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as client,
            ):
                yield McpSession(name, client, await client.initialize(), log)

    with anyio.fail_after(300):
        async with session(str(uuid.uuid4())) as a, session(str(uuid.uuid4())) as b:
            b_id = matrix_id(await b.ok("whoami"))
            await a.ok("whoami")
            for i in range(3):
                await a.ok("send", to=b_id, text="x", subject=f"{tag} message {i}")
            pid = int((home / "homeserver" / "homeserver.pid").read_text().strip())
            os.kill(pid, signal.SIGKILL)
            for i in range(3, 6):
                is_error, text = await a.call(
                    "send", to=b_id, text="x", subject=f"{tag} message {i}"
                )
                assert not is_error or "queued" in text, text
            found = await _wait_received(b, tag, 6, timeout=180)
            bodies = sorted(int(re.findall(r"message (\d+)", line)[0]) for line in found)
            assert bodies == list(range(6)), found
            await a.ok("send", to=b_id, text="x", subject=f"{tag} last")
            await _wait_received(b, f"{tag} last", 1)
            assert len([line for line in await _received(b, tag) if "last" not in line]) == 6
