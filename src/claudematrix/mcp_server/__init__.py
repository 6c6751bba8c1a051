"""The MCP stdio server a Claude Code session runs: server.py speaks the protocol, tools.py
holds the tools as plain functions of a Service, runtime.py keeps the connection, sync and
presence running under supervision."""

from claudematrix.mcp_server.server import INSTRUCTIONS, build_server, serve

__all__ = ["build_server", "serve", "INSTRUCTIONS"]
