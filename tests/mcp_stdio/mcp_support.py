"""What the MCP tests share with their conftest: a connected session and how to call it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

from mcp import ClientSession
from mcp.types import InitializeResult, TextContent

__all__ = ["McpSession", "OpenMcp"]


@dataclass
class McpSession:
    """One running `claudematrix mcp` (one Claude Code session) and a client connected to it."""

    session_id: str
    client: ClientSession
    init: InitializeResult
    log: Path

    async def call(self, tool: str, **arguments: object) -> tuple[bool, str]:
        """(is_error, text) of one tool call."""
        result = await self.client.call_tool(tool, dict(arguments))
        texts = [c.text for c in result.content if isinstance(c, TextContent)]
        return bool(result.isError), "\n".join(texts)

    async def ok(self, tool: str, **arguments: object) -> str:
        is_error, text = await self.call(tool, **arguments)
        assert not is_error, f"{tool}({arguments}) failed: {text}\n{self.log.read_text()}"
        return text


OpenMcp = Callable[..., AbstractAsyncContextManager[McpSession]]
