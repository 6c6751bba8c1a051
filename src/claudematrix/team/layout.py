"""Where a team server keeps its files: everything under the one directory given as --dir.

The Synapse side (homeserver.yaml, secrets, signing key, log, pid) has the embedded
homeserver's names (claudematrix.homeserver.HomeserverPaths); beside it, what `claudematrix
server` itself keeps: the settings chosen at init and the admin login it makes tokens with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from claudematrix.homeserver import HomeserverPaths

__all__ = ["TeamDir"]


@dataclass(frozen=True)
class TeamDir:
    root: Path

    @property
    def synapse(self) -> HomeserverPaths:
        return HomeserverPaths(self.root)

    @property
    def settings_path(self) -> Path:
        """What `server init` was given (no secrets): team.json."""
        return self.root / "team.json"

    @property
    def admin_path(self) -> Path:
        """The server's own admin login (0600), made with the registration secret on first use."""
        return self.root / "admin.json"

    @property
    def admin_lock_path(self) -> Path:
        return self.root / "admin.lock"
