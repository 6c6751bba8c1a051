"""After installing from the local marketplace, `claude mcp list` shows our server connected."""

from __future__ import annotations

import pytest

from e2e.support.claude_cli import PLUGIN_ID, REPO, Claude

pytestmark = pytest.mark.e2e

SERVER_LINE = "plugin:claudematrix:claudematrix:"


def _server_line(listing: str) -> str:
    lines = [line for line in listing.splitlines() if line.startswith(SERVER_LINE)]
    assert len(lines) == 1, listing
    return lines[0]


def test_mcp_list_shows_server_connected(claude: Claude) -> None:
    claude.marketplace_add(REPO)
    claude.plugin_install(PLUGIN_ID)

    line = _server_line(claude.mcp_list())

    assert "scripts/launch.py mcp" in line
    assert "✔ Connected" in line, line
