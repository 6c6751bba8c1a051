"""One `claude -p` run with streaming JSON output, in its own process group, read as it goes.

What the stream carries (Claude Code 2.1.33x, seen): a `system`/`init` line with the session
id, `assistant` lines whose content blocks are text or tool_use, `user` lines with tool
results, and a final `result` line (subtype success or error_..., duration_ms, total_cost_usd,
result). Anything else is skipped; a line that is not JSON is kept as the run's own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunSettings", "Progress", "ClaudeRun", "claude_command", "end_process_group"]

_GRACE_S = 5.0
_LINE_LIMIT = 16 * 1024 * 1024
# The environment of the run: never the caller's Claude Code session's own variables.
_NOT_INHERITED = ("CLAUDECODE", "CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_ENTRYPOINT")


@dataclass(frozen=True)
class RunSettings:
    claude: str  # the Claude Code CLI to run
    project: Path
    permission_mode: str | None = None
    allowed_tools: str | None = None


@dataclass
class Progress:
    """What a run has said so far."""

    session_id: str | None = None
    text: str = ""  # the latest assistant text
    tools: list[str] = field(default_factory=list)  # "Bash: echo hi", in order
    outcome: str | None = None  # done, failed (from the result line)
    result: str = ""
    duration_ms: int | None = None
    cost_usd: float | None = None
    stray: list[str] = field(default_factory=list)  # lines that were not JSON, and stderr

    def take(self, line: dict[str, Any]) -> None:
        kind = line.get("type")
        if isinstance(line.get("session_id"), str):
            self.session_id = line["session_id"]
        if kind == "assistant":
            for block in (line.get("message") or {}).get("content") or []:
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "text" and isinstance(block.get("text"), str):
                    self.text = block["text"]
                elif block.get("type") == "tool_use":
                    self.tools.append(_tool_line(block))
        elif kind == "result":
            self.outcome = "failed" if line.get("is_error") else "done"
            if line.get("subtype") not in (None, "success"):
                self.outcome = "failed"
            self.result = str(line.get("result") or "")
            duration = line.get("duration_ms")
            self.duration_ms = int(duration) if isinstance(duration, (int, float)) else None
            cost = line.get("total_cost_usd")
            self.cost_usd = float(cost) if isinstance(cost, (int, float)) else None


def _tool_line(block: dict[str, Any]) -> str:
    name = str(block.get("name") or "tool")
    given = block.get("input")
    args: dict[str, Any] = given if isinstance(given, dict) else {}
    detail = args.get("command") or args.get("file_path") or args.get("pattern") or ""
    if not detail and args:
        detail = json.dumps(args, ensure_ascii=False)
    detail = " ".join(str(detail).split())
    return f"{name}: {detail[:200]}" if detail else name


def claude_command(
    settings: RunSettings, prompt: str, *, resume: str | None, session_id: str | None
) -> list[str]:
    """The command line of a run: a room's first command starts a session (`session_id`),
    later ones resume it. Permissions widen only where the person said so."""
    argv = [settings.claude, "-p", prompt, "--output-format", "stream-json", "--verbose"]
    if resume:
        argv += ["--resume", resume]
    elif session_id:
        argv += ["--session-id", session_id]
    if settings.permission_mode:
        argv += ["--permission-mode", settings.permission_mode]
    if settings.allowed_tools:
        argv += ["--allowedTools", settings.allowed_tools]
    return argv


class ClaudeRun:
    """Start with `start`, then `follow` until it ends; `stop` ends it early (the whole
    process group: SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self, argv: list[str], project: Path) -> None:
        self.argv = argv
        self.project = project
        self.progress = Progress()
        self.process: asyncio.subprocess.Process | None = None
        self.stopped_as: str | None = None  # "cancelled" or "timed out", once stopped

    async def start(self) -> int | None:
        """Start it; returns its process group (None: it was stopped before it started)."""
        if self.stopped_as:
            return None
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.project,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            limit=_LINE_LIMIT,
        )
        return self.process.pid

    async def follow(self, changed: Callable[[], None]) -> str:
        """Read the run to its end, calling `changed` after each line that moved it on.
        Returns the outcome: done, failed, cancelled or timed out."""
        process = self.process
        if process is None:
            return self.stopped_as or "failed"
        assert process.stdout is not None and process.stderr is not None
        errors = asyncio.create_task(process.stderr.read())
        async for raw in process.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                parsed = json.loads(line)
            except ValueError:
                self.progress.stray.append(line)
                continue
            if isinstance(parsed, dict):
                self.progress.take(parsed)
                changed()
        code = await process.wait()
        stderr = (await errors).decode(errors="replace").strip()
        if stderr:
            self.progress.stray.append(stderr)
        if self.stopped_as:
            return self.stopped_as
        if self.progress.outcome:
            return self.progress.outcome
        return "done" if code == 0 else "failed"

    async def stop(self, why: str) -> None:
        """End the run: its whole process group, politely first."""
        process = self.process
        if process is not None and process.returncode is not None:
            return
        self.stopped_as = why
        if process is None:  # not started yet: it never will be
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), _GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def end_process_group(group: int) -> bool:
    """End what is left of a run whose worker died (-9) while it ran; False if it is gone
    (or its number now belongs to something else than a Claude Code run)."""
    try:
        with open(f"/proc/{group}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    if not any(b"claude" in part for part in argv[:3]) or b"stream-json" not in argv:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
        return True
    return False
