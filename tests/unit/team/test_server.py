"""`server init|status` on folders that are not (or already are) a team server."""

from __future__ import annotations

from pathlib import Path

import pytest

from claudematrix.errors import ConfigError
from claudematrix.team import TeamDir, TeamSettings, init, status

SETTINGS = TeamSettings("example.org", "https://m.example.org", "127.0.0.1", 8008)


def test_init_does_not_write_over_a_team_server(tmp_path: Path) -> None:
    (tmp_path / "team.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds a team server"):
        init(tmp_path, SETTINGS, "postgresql://x@127.0.0.1/db")


def test_status_of_a_folder_that_is_no_team_server_says_to_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="claudematrix server init"):
        status(TeamDir(tmp_path))
