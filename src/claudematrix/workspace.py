"""What a session is working in: project and git branch, found without running git."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from claudematrix.session_env import SessionEnv

__all__ = ["Workspace", "detect_workspace"]


@dataclass(frozen=True)
class Workspace:
    project: str
    project_dir: str
    branch: str
    host: str


def _repository(start: Path) -> tuple[Path, Path] | None:
    """(the checkout's top folder, its git dir) for the checkout holding `start`."""
    for folder in (start, *start.parents):
        candidate = folder / ".git"
        if candidate.is_dir():
            return folder, candidate
        if candidate.is_file():  # a worktree: "gitdir: <path>"
            text = candidate.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):
                return folder, (folder / text.split(":", 1)[1].strip()).resolve()
    return None


def _branch(git_dir: Path | None) -> str:
    if git_dir is None:
        return ""
    try:
        head = (git_dir / "HEAD").read_text(errors="replace").strip()
    except OSError:
        return ""
    if head.startswith("ref: refs/heads/"):
        return head[len("ref: refs/heads/") :]
    return head[:8]  # detached HEAD: a short commit id


def detect_workspace(project_dir: str | None = None, env: SessionEnv | None = None) -> Workspace:
    """The workspace of `project_dir`, else of the session (default: this process)."""
    if project_dir is None:
        session = env or SessionEnv.current()
        project_dir = session.get("CLAUDE_PROJECT_DIR") or session.cwd
    base = Path(project_dir).resolve()
    found = _repository(base)
    root, git_dir = found if found is not None else (base, None)
    return Workspace(
        project=root.name or str(root),
        project_dir=str(root),
        branch=_branch(git_dir),
        host=socket.gethostname(),
    )
