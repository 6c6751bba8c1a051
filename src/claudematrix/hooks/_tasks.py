""" "What I'm working on" from Claude's own task list, for the directory.

PostToolUse of TodoWrite (the whole list each time) or TaskCreate/TaskUpdate (one task at a
time) is folded into identities/<sid>/task.json: {"task": <current>, "tasks": {...}}. The
session's MCP server watches that file's mtime and republishes its profile. Current = the
task most recently set in progress, else none.
"""

from __future__ import annotations

import os

from claudematrix.hooks import _jsonlite
from claudematrix.local.layout import TASK_FILE

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs ~7 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["TASK_TOOLS", "TASK_FILE", "record"]

TASK_TOOLS = ("TodoWrite", "TaskCreate", "TaskUpdate")
_MAX_TEXT = 200


def _text(value: object) -> str:
    return " ".join(str(value or "").split())[:_MAX_TEXT]


def _created_id(response: object) -> str:
    if isinstance(response, str):
        try:
            response = _jsonlite.loads(response)
        except ValueError:
            return ""
    task = response.get("task") if isinstance(response, dict) else None
    return str(task.get("id") or "") if isinstance(task, dict) else ""


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = _jsonlite.loads(handle.read())
    except (OSError, ValueError):
        return {"tasks": {}}
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        return {"tasks": {}}
    return data


def _fold(state: dict[str, Any], tool: str, given: dict[str, Any], response: object) -> None:
    tasks: dict[str, Any] = state["tasks"]
    if tool == "TodoWrite":
        todos = given.get("todos")
        tasks.clear()
        if not isinstance(todos, list):
            return
        for index, todo in enumerate(todos):
            if isinstance(todo, dict):
                tasks[str(index)] = {
                    "subject": _text(todo.get("content")),
                    "status": str(todo.get("status") or "pending"),
                    "since": index,
                }
        return
    serial = int(state.get("serial", 0)) + 1
    state["serial"] = serial
    if tool == "TaskCreate":
        task_id = _created_id(response) or f"new-{serial}"
        tasks[task_id] = {
            "subject": _text(given.get("subject")),
            "status": "pending",
            "since": serial,
        }
    elif tool == "TaskUpdate":
        task_id = str(given.get("taskId") or "")
        if not task_id:
            return
        status = str(given.get("status") or "")
        if status == "deleted":
            tasks.pop(task_id, None)
            return
        task = tasks.setdefault(task_id, {"subject": "", "status": "pending", "since": serial})
        if given.get("subject"):
            task["subject"] = _text(given.get("subject"))
        if status:
            task["status"] = status
            task["since"] = serial


def _current(tasks: dict[str, Any]) -> str:
    active = [
        t
        for t in tasks.values()
        if isinstance(t, dict) and t.get("status") == "in_progress" and t.get("subject")
    ]
    if not active:
        return ""
    return str(max(active, key=lambda t: int(t.get("since", 0)))["subject"])


def record(identity: str, raw: bytes) -> None:
    """Fold one PostToolUse input into task.json; anything unexpected leaves it as it was."""
    data = _jsonlite.loads(raw.decode("utf-8", "replace"))
    if not isinstance(data, dict) or data.get("agent_id"):
        return  # a subagent's private list is not what the session works on
    tool = data.get("tool_name")
    given = data.get("tool_input")
    if tool not in TASK_TOOLS or not isinstance(given, dict) or not os.path.isdir(identity):
        return
    path = identity + "/" + TASK_FILE
    state = _load(path)
    _fold(state, str(tool), given, data.get("tool_response"))
    state["task"] = _current(state["tasks"])
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(_jsonlite.dumps(state))
    os.replace(tmp, path)
