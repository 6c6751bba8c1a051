"""An MCP server session over a daemon connection: JSON-RPC, one message per line, exactly
as on stdio (the shim forwards the lines unchanged)."""

from __future__ import annotations

import asyncio
import contextlib

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.fastmcp import FastMCP
from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCMessage

__all__ = ["serve_connection", "LINE_LIMIT"]

LINE_LIMIT = 64 * 1024 * 1024  # a message is at most a few MiB; never cut one in two


async def serve_connection(
    server: FastMCP, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one MCP session until the other end closes or the connection breaks."""
    inbound_send: MemoryObjectSendStream[SessionMessage | Exception]
    inbound: MemoryObjectReceiveStream[SessionMessage | Exception]
    outbound: MemoryObjectSendStream[SessionMessage]
    outbound_recv: MemoryObjectReceiveStream[SessionMessage]
    inbound_send, inbound = anyio.create_memory_object_stream(0)
    outbound, outbound_recv = anyio.create_memory_object_stream(0)

    async def read_lines() -> None:
        async with inbound_send:
            with contextlib.suppress(ConnectionError):
                while line := await reader.readline():
                    try:
                        message = JSONRPCMessage.model_validate_json(line)
                    except ValueError as exc:  # the SDK answers a malformed line itself
                        await inbound_send.send(exc)
                        continue
                    await inbound_send.send(SessionMessage(message))

    async def write_lines() -> None:
        async with outbound_recv:
            async for item in outbound_recv:
                text = item.message.model_dump_json(by_alias=True, exclude_none=True)
                writer.write(text.encode() + b"\n")
                await writer.drain()

    lowlevel = server._mcp_server  # FastMCP serves stdio/HTTP only; this is its own core
    async with anyio.create_task_group() as group:
        group.start_soon(read_lines)
        group.start_soon(write_lines)
        await lowlevel.run(inbound, outbound, lowlevel.create_initialization_options())
        group.cancel_scope.cancel()
