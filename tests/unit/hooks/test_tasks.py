"""claudematrix.hooks._tasks: Claude's task-list tools fold into task.json ("what I'm
working on")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.hooks import Ran, World, payload, run_hook


def _tool(name: str, given: dict[str, Any], response: Any = None, **extra: Any) -> dict[str, Any]:
    return payload(
        "post-tool-use", tool_name=name, tool_input=given, tool_response=response or {}, **extra
    )


def _create(task_id: str, subject: str) -> Ran:
    """Claude creates a task (TaskCreate answers with its id)."""
    given = {"subject": subject, "description": "d"}
    return run_hook(
        "post-tool-use",
        _tool("TaskCreate", given, {"task": {"id": task_id, "subject": subject}}),
    )


def _task(world: World) -> str:
    return str(json.loads((world.dir / "task.json").read_text())["task"])


def test_task_tools_track_the_task_in_progress(world: World) -> None:
    assert _create("7", "Write the parser").code == 0
    assert _task(world) == ""  # created, not started
    _create("8", "Ship it")
    run_hook("post-tool-use", _tool("TaskUpdate", {"taskId": "7", "status": "in_progress"}))
    assert _task(world) == "Write the parser"
    run_hook("post-tool-use", _tool("TaskUpdate", {"taskId": "8", "status": "in_progress"}))
    assert _task(world) == "Ship it"  # the one most recently started
    run_hook("post-tool-use", _tool("TaskUpdate", {"taskId": "8", "status": "completed"}))
    assert _task(world) == "Write the parser"
    run_hook("post-tool-use", _tool("TaskUpdate", {"taskId": "7", "status": "deleted"}))
    assert _task(world) == ""
    assert (world.dir / "task.json").stat().st_mode & 0o777 == 0o600


def test_todowrite_replaces_the_list(world: World) -> None:
    todos = [
        {"content": "Read the spec", "status": "completed", "activeForm": "Reading"},
        {"content": "Fix   the\nbug", "status": "in_progress", "activeForm": "Fixing"},
        {"content": "Write tests", "status": "pending", "activeForm": "Writing"},
    ]
    run_hook("post-tool-use", _tool("TodoWrite", {"todos": todos}))
    assert _task(world) == "Fix the bug"  # one line, whitespace folded
    run_hook("post-tool-use", _tool("TodoWrite", {"todos": todos[:1]}))
    assert _task(world) == ""


def test_task_tools_of_a_subagent_or_other_tools_change_nothing(world: World) -> None:
    _create("1", "mine")
    run_hook("post-tool-use", _tool("TaskUpdate", {"taskId": "1", "status": "in_progress"}))
    run_hook(
        "post-tool-use",
        _tool("TaskUpdate", {"taskId": "1", "subject": "theirs"}, agent_id="agent-1"),
    )
    bash = _tool("Bash", {"command": 'echo "TaskUpdate"'})  # mentions it, is not it
    assert run_hook("post-tool-use", bash).code == 0
    assert _task(world) == "mine"


@pytest.mark.parametrize("given", [{"todos": "not a list"}, {"taskId": ""}, {}])
def test_odd_task_inputs_fail_open(world: World, given: dict[str, Any]) -> None:
    for tool in ("TodoWrite", "TaskUpdate", "TaskCreate"):
        ran = run_hook("post-tool-use", _tool(tool, given))
        assert (ran.code, ran.stdout, ran.stderr) == (0, "", "")
