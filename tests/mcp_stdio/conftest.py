"""MCP fixtures: `claudematrix mcp` driven through a real MCP stdio client session.

The servers use the shared Synapse of every tier (tests/conftest.py), so these
tests need a Synapse install like the integration tests do.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_support import McpSession, OpenMcp

from integration.conftest import SharedHomeserver


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def server_env(shared: SharedHomeserver, session_id: str, project: Path) -> dict[str, str]:
    project.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **shared.env,
        "CLAUDE_CODE_SESSION_ID": session_id,
        "CLAUDE_PROJECT_DIR": str(project),
    }
    env.pop("CLAUDEMATRIX_HOMESERVER", None)
    return env


@pytest.fixture
def mcp_env(
    shared_homeserver: SharedHomeserver,  # noqa: F811
    tmp_path: Path,
) -> Callable[..., dict[str, str]]:
    """The environment of a session's MCP server; each session works in its own project
    folder (so two sessions are "same machine") unless given one with `project=`."""

    def env(session_id: str, project: str | None = None) -> dict[str, str]:
        folder = tmp_path / "projects" / (project or session_id)
        return server_env(shared_homeserver, session_id, folder)

    return env


@pytest.fixture
def open_mcp(mcp_env: Callable[..., dict[str, str]], tmp_path: Path) -> Iterator[OpenMcp]:
    """`async with open_mcp() as s:` starts a server for a new session id and initializes it.

    Leaving the block closes its stdin; the SDK then waits, terminates and kills as needed.
    """

    @asynccontextmanager
    async def open_session(
        session_id: str | None = None, project: str | None = None
    ) -> AsyncIterator[McpSession]:
        sid = session_id or str(uuid.uuid4())
        log = tmp_path / f"mcp-{sid}.log"
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "claudematrix", "mcp"],
            env=mcp_env(sid, project),
        )
        with open(log, "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as client,
            ):
                init = await client.initialize()
                yield McpSession(sid, client, init, log)

    yield open_session
