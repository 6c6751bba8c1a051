"""`claudematrix mcp` through a real MCP client session: tools, instructions, mail, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from queue import Empty, Queue

import anyio
import pytest
from mcp_support import McpSession, OpenMcp

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

TOOLS = {"whoami", "contacts", "send", "inbox", "read", "search"}
# The MCP tool names are part of the contract (README, "Use it in Claude Code").
SPEC_TOOLS = TOOLS | {"set_status", "set_mode", "trust"}
UNTRUSTED = re.compile(r"untrusted|data, not instructions", re.I)


def matrix_id(whoami_text: str) -> str:
    match = re.search(r"Matrix ID: (@\S+)", whoami_text)
    assert match, whoami_text
    return match.group(1)


async def wait_for_header(s: McpSession, needle: str, timeout: float = 30) -> str:
    """Poll the inbox tool until a header line containing `needle` shows up."""
    deadline = time.monotonic() + timeout
    while True:
        text = await s.ok("inbox")
        lines = [line for line in text.splitlines() if needle in line]
        if lines:
            assert len(lines) == 1, text
            return str(lines[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"no header with {needle!r} in {timeout} s; inbox: {text}")
        await anyio.sleep(0.05)


def header_id(header: str) -> str:
    match = re.match(r"#(\d+) ", header)
    assert match, header
    return match.group(1)


async def test_tools_and_instructions(open_mcp: OpenMcp) -> None:
    with anyio.fail_after(60):
        async with open_mcp() as s:
            tools = {t.name: t for t in (await s.client.list_tools()).tools}
            assert set(tools) >= SPEC_TOOLS
            for name in SPEC_TOOLS:
                description = tools[name].description or ""
                assert "Matrix" in description, (name, description)  # ClaudeMatrix or Matrix
            send_schema = tools["send"].inputSchema
            assert set(send_schema.get("required", [])) == {"to", "text"}
            assert {"subject", "label", "reply_to"} <= set(send_schema["properties"])
            assert "SendMessage" in (tools["send"].description or "")
            assert UNTRUSTED.search(tools["read"].description or "")

            instructions = s.init.instructions or ""
            assert "ClaudeMatrix" in instructions and "Matrix" in instructions
            assert re.search(r"not\s+Claude\s+Code's\s+built-in\s+SendMessage", instructions)
            assert UNTRUSTED.search(instructions)
            assert s.init.serverInfo.name == "claudematrix"


async def test_two_sessions_message_each_other(open_mcp: OpenMcp) -> None:
    tag = uuid.uuid4().hex[:8]
    subject, body = f"Review {tag}", f"Please review the tokenizer change {tag}."
    with anyio.fail_after(120):
        async with open_mcp() as a, open_mcp() as b:
            a_whoami, b_whoami = await a.ok("whoami"), await b.ok("whoami")
            a_id, b_id = matrix_id(a_whoami), matrix_id(b_whoami)
            assert a_id.startswith(f"@cc-{a.session_id[:8]}")
            assert "Mode: private" in a_whoami
            assert "Unread ClaudeMatrix messages: 0" in b_whoami

            contacts = await a.ok("contacts")
            line = next((x for x in contacts.splitlines() if f"<{b_id}>" in x), None)
            assert line is not None and "same machine" in line, contacts

            sent = await a.ok("send", to=b_id, text=body, subject=subject)
            assert sent.startswith("Sent #") and b_id in sent and "label private" in sent

            header = await wait_for_header(b, subject)
            assert f"<{a_id}>" in header and "(same machine)" in header
            assert "[private]" in header and header.endswith("unread")
            assert body not in header  # headers only
            assert "Unread ClaudeMatrix messages: 1" in await b.ok("whoami")

            opened = await b.ok("read", id=header_id(header))
            assert f"was written by {a_id}" in opened
            assert UNTRUSTED.search(opened)
            fenced = re.search(
                r"<message ([0-9a-f]{12})>\nFrom: .*\nSubject: .*\n\n(.*)\n</message \1>",
                opened,
                re.S,
            )
            assert fenced and fenced.group(2) == body
            assert (await b.ok("inbox")) == "No unread ClaudeMatrix messages."
            assert subject in await b.ok("inbox", include_read=True)
            # "#12" is accepted as well as "12".
            assert body in await b.ok("read", id="#" + header_id(header))

            reply = await b.ok(
                "send",
                to=a_id,
                text="Looks good.",
                subject=f"Re: {subject}",
                reply_to=header_id(header),
                label="trusted",
            )
            assert "label trusted" in reply
            back = await wait_for_header(a, f"Re: {subject}")
            assert f"<{b_id}>" in back and "[trusted]" in back
            assert "Looks good." in await a.ok("read", id=header_id(back))

            found = await a.ok("search", query=tag)
            assert subject in found and f"Re: {subject}" in found  # sent and received
            assert body not in found
            assert await a.ok("search", query="nothing-like-this-" + tag) == "No matches."


async def test_sessions_in_one_project_see_each_other_as_same_project(
    open_mcp: OpenMcp,
) -> None:
    project = "shared-" + uuid.uuid4().hex[:8]
    with anyio.fail_after(90):
        async with open_mcp(project=project) as a, open_mcp(project=project) as b:
            b_id = matrix_id(await b.ok("whoami"))
            a_id = matrix_id(await a.ok("whoami"))
            subject = f"same project {project}"
            assert "(same project)" in await a.ok("send", to=b_id, text="hi", subject=subject)
            header = await wait_for_header(b, subject)
            assert f"<{a_id}>" in header and "(same project)" in header


ERROR_CASES: list[tuple[str, dict[str, object], str]] = [
    ("send", {"to": "nobody-xyz-123", "text": "hi"}, "no contact matches"),
    ("send", {"to": "@ghost-xyz-123:localhost", "text": "hi"}, "no Matrix user"),
    ("send", {"to": "@Bad", "text": "hi"}, "not a valid Matrix user ID"),
    ("send", {"to": "@x:localhost", "text": "   "}, "empty"),
    ("send", {"to": "@x:localhost", "text": "hi", "label": "galactic"}, "unknown label"),
    ("send", {"to": "@x:localhost", "text": "hi", "reply_to": "424242"}, "no message"),
    ("send", {"to": "@x:localhost", "text": "x" * 70_000}, "60 KiB"),
    ("read", {"id": "424242"}, "no message"),
    ("read", {"id": "$nope"}, "no message"),
    ("search", {"query": "  "}, "empty"),
]


async def test_tool_errors_are_one_line(open_mcp: OpenMcp) -> None:
    with anyio.fail_after(90):
        async with open_mcp() as s:
            for tool, arguments, expected in ERROR_CASES:
                case = f"{tool}({str(arguments)[:80]})"
                is_error, text = await s.call(tool, **arguments)
                assert is_error, (case, text)
                assert "\n" not in text.strip(), (case, text)
                assert expected in text, (case, text)
                assert "Traceback" not in text, (case, text)
            # The server is still fine after all that.
            assert "Matrix ID: @" in await s.ok("whoami")


async def test_secret_label_to_another_session_is_refused(open_mcp: OpenMcp) -> None:
    with anyio.fail_after(60):
        async with open_mcp() as a, open_mcp() as b:
            b_id = matrix_id(await b.ok("whoami"))
            is_error, text = await a.call("send", to=b_id, text="token=abc", label="secret")
            assert is_error and "refused" in text and "\n" not in text.strip()
            assert await a.ok("search", query="abc") == "No matches."


def test_stdout_carries_only_json_rpc(
    mcp_env: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    """Raw stdio: every line the server writes to stdout is a JSON-RPC 2.0 message."""
    log = tmp_path / "raw-mcp.log"
    with open(log, "w") as errlog:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claudematrix", "mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            env=mcp_env(str(uuid.uuid4())),
            text=True,
        )
    lines: Queue[str | None] = Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw-test", "version": "0"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "whoami", "arguments": {}},
        },
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "inbox", "arguments": {}},
        },
    ]
    seen: dict[int, dict[str, object]] = {}
    try:
        assert proc.stdin is not None
        for request in requests:
            proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        while set(seen) != {1, 2, 3, 4}:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except Empty:
                raise AssertionError(
                    f"no complete answers; got {seen}\n{log.read_text()}"
                ) from None
            assert line is not None, f"server exited early:\n{log.read_text()}"
            message = json.loads(line)  # anything else on stdout fails here
            assert message.get("jsonrpc") == "2.0", line
            if "id" in message:
                seen[int(message["id"])] = message
        assert "Matrix ID: @" in json.dumps(seen[3])
        proc.stdin.close()  # the client goes away: the server must exit by itself
        proc.wait(timeout=15)
        while (rest := lines.get(timeout=5)) is not None:
            assert json.loads(rest).get("jsonrpc") == "2.0", rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
