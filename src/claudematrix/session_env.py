"""The environment and folder a session runs in.

A CLI command or a stand-alone MCP server serves the session it runs in (`SessionEnv.current()`).
The daemon serves many sessions at once, each with the environment its shim forwarded, so
everything that depends on "which session, which project, which mode" reads it from here and
never from the daemon's own `os.environ`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["SessionEnv", "FORWARDED_PREFIXES"]

# What a shim forwards to the daemon: Claude Code's session variables and our own settings.
FORWARDED_PREFIXES = ("CLAUDE", "MCP_")


@dataclass(frozen=True)
class SessionEnv:
    environ: Mapping[str, str] = field(default_factory=dict)
    cwd: str = "/"

    @classmethod
    def current(cls) -> SessionEnv:
        try:
            cwd = os.getcwd()
        except OSError:  # the folder was removed under us
            cwd = os.environ.get("HOME", "/")
        return cls(dict(os.environ), cwd)

    def get(self, name: str, default: str = "") -> str:
        return self.environ.get(name, default)

    def __repr__(self) -> str:  # the environment may hold passwords and tokens
        return f"SessionEnv(cwd={self.cwd!r}, {len(self.environ)} variables)"
