"""One `claude -p` run: its command line, and what its stream-json output says."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from claudematrix.worker.claude_run import ClaudeRun, Progress, RunSettings, claude_command


def test_a_rooms_first_command_starts_a_session_and_later_ones_resume_it() -> None:
    plain = RunSettings("claude", Path("/p"))
    first = claude_command(plain, "do it", resume=None, session_id="s-1")
    assert first == [
        "claude", "-p", "do it", "--output-format", "stream-json", "--verbose",
        "--session-id", "s-1",
    ]  # fmt: skip
    later = claude_command(plain, "more", resume="s-1", session_id=None)
    assert "--resume" in later and "--session-id" not in later
    assert "--permission-mode" not in later and "--allowedTools" not in later
    wide = RunSettings("claude", Path("/p"), "acceptEdits", "Bash(make:*)")
    args = claude_command(wide, "x", resume="s-1", session_id=None)
    assert args[-4:] == ["--permission-mode", "acceptEdits", "--allowedTools", "Bash(make:*)"]


def test_the_stream_gives_session_text_tools_and_result() -> None:
    progress = Progress()
    progress.take({"type": "system", "subtype": "init", "session_id": "abc"})
    progress.take(
        {
            "type": "assistant",
            "message": {
                "content": [
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "name": "Bash", "input": {"command": "ls  -la\n"}},
                    "junk",
                ]
            },
        }
    )
    progress.take({"type": "assistant", "message": None})
    progress.take(
        {"type": "result", "subtype": "success", "is_error": False, "result": "Done.",
         "duration_ms": 1200, "total_cost_usd": 0.01}
    )  # fmt: skip
    assert (progress.session_id, progress.text, progress.tools) == (
        "abc",
        "Looking.",
        ["Bash: ls -la"],
    )
    assert (progress.outcome, progress.result, progress.cost_usd) == ("done", "Done.", 0.01)
    failed = Progress()
    failed.take({"type": "result", "subtype": "error_max_turns", "is_error": False})
    assert failed.outcome == "failed"


def test_a_run_reads_its_stream_and_a_stop_ends_its_process_group(tmp_path: Path) -> None:
    lines = [{"type": "system", "session_id": "s"}, {"type": "result", "result": "ok"}]
    script = "import json, sys\n" + "".join(
        f"print(json.dumps({line!r}), flush=True)\n" for line in lines
    )
    fast = ClaudeRun([sys.executable, "-c", script], tmp_path)
    seen: list[int] = []

    async def go() -> str:
        await fast.start()
        return await fast.follow(lambda: seen.append(1))

    assert asyncio.run(go()) == "done" and len(seen) == 2
    assert fast.progress.result == "ok"

    slow = ClaudeRun(
        [sys.executable, "-c", "import time; print('not json'); time.sleep(60)"], tmp_path
    )

    async def stopped() -> str:
        await slow.start()
        follow = asyncio.create_task(slow.follow(lambda: None))
        deadline = asyncio.get_running_loop().time() + 10
        while not slow.progress.stray:  # it is running and has spoken
            assert asyncio.get_running_loop().time() < deadline, "the run said nothing"
            await asyncio.sleep(0.01)
        await slow.stop("cancelled")
        return await follow

    assert asyncio.run(stopped()) == "cancelled"
    assert slow.process is not None and slow.process.returncode is not None
    assert "not json" in slow.progress.stray


def test_a_run_stopped_before_it_starts_never_starts(tmp_path: Path) -> None:
    run = ClaudeRun([sys.executable, "-c", "print(1)"], tmp_path)

    async def go() -> tuple[int | None, str]:
        await run.stop("cancelled")
        return await run.start(), await run.follow(lambda: None)

    assert asyncio.run(go()) == (None, "cancelled")
    assert json.dumps(run.progress.tools) == "[]"
