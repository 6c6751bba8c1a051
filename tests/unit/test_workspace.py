"""claudematrix.workspace: the project and git branch a session works in, read from the
files git keeps (never by running git), including worktrees and a detached HEAD."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from claudematrix.workspace import detect_workspace


def _repo(root: Path, head: str) -> Path:
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text(head + "\n")
    return root


def test_project_and_branch_of_a_repository(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "parser", "ref: refs/heads/fix/tokenizer")
    ws = detect_workspace(str(repo))
    assert (ws.project, ws.project_dir, ws.branch) == ("parser", str(repo), "fix/tokenizer")
    assert ws.host == socket.gethostname()


def test_a_folder_inside_the_repository_belongs_to_its_project(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "parser", "ref: refs/heads/main")
    inner = repo / "src" / "lexer"
    inner.mkdir(parents=True)
    ws = detect_workspace(str(inner))
    assert (ws.project, ws.project_dir, ws.branch) == ("parser", str(repo), "main")


def test_a_detached_head_shows_a_short_commit(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "parser", "0123456789abcdef0123456789abcdef01234567")
    assert detect_workspace(str(repo)).branch == "01234567"


def test_a_worktree_reads_its_own_head(tmp_path: Path) -> None:
    main = _repo(tmp_path / "parser", "ref: refs/heads/main")
    private = main / ".git" / "worktrees" / "parser-review"
    private.mkdir(parents=True)
    (private / "HEAD").write_text("ref: refs/heads/review\n")
    tree = tmp_path / "parser-review"
    tree.mkdir()
    (tree / ".git").write_text(f"gitdir: {private}\n")
    ws = detect_workspace(str(tree))
    assert (ws.project, ws.project_dir, ws.branch) == ("parser-review", str(tree), "review")
    inside = tree / "src" / "lexer"
    inside.mkdir(parents=True)
    ws = detect_workspace(str(inside))  # a subfolder of a worktree: still that worktree
    assert (ws.project, ws.project_dir, ws.branch) == ("parser-review", str(tree), "review")


def test_outside_a_repository_there_is_no_branch(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    ws = detect_workspace(str(folder))
    assert (ws.project, ws.project_dir, ws.branch) == ("notes", str(folder), "")


def test_the_project_dir_comes_from_claude_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo(tmp_path / "parser", "ref: refs/heads/main")
    monkeypatch.setenv("CLAUDE_PROJECT_DIR", str(repo))
    monkeypatch.chdir(tmp_path)
    assert detect_workspace().project == "parser"
    monkeypatch.delenv("CLAUDE_PROJECT_DIR")
    assert detect_workspace().project == tmp_path.name  # else the working directory
