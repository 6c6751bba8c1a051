"""A scripted fake of the Anthropic Messages API on loopback, for running the real Claude Code.

The fake replays a queue of model turns (text and/or tool_use blocks) for the session's main
conversation and records every request body, which is exactly what the model would have seen.
Requests that are not main-conversation turns (Claude Code's `HEAD /api/hello` probe,
count_tokens, and any /v1/messages call without tools) are recorded too, answered with `{}` or
plain text, and never consume a scripted turn (see `is_side_request`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "Text",
    "ToolUse",
    "Reply",
    "Responder",
    "Recorded",
    "FakeModel",
    "is_side_request",
    "session_of",
    "system_text",
    "message_texts",
    "tool_results",
]

DEFAULT_TEXT = "(fake model: nothing scripted)"
SIDE_TEXT = "ok"


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"toolu_{uuid.uuid4().hex[:24]}")


Block = Text | ToolUse
Reply = str | Block | Sequence[Block]
Responder = Callable[[dict[str, Any]], Reply]


@dataclass(frozen=True)
class Recorded:
    """One request the fake received. `body` is the parsed JSON ({} if none)."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    side: bool
    reply: tuple[Block, ...] = ()

    @property
    def session_id(self) -> str | None:
        return session_of(self.body)


def _blocks(reply: Reply) -> tuple[Block, ...]:
    if isinstance(reply, str):
        return (Text(reply),)
    if isinstance(reply, Text | ToolUse):
        return (reply,)
    return tuple(reply)


def system_text(body: dict[str, Any]) -> str:
    """The request's system prompt as one string."""
    system = body.get("system")
    if isinstance(system, str):
        return system
    if isinstance(system, list):
        return "\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    return ""


def is_side_request(body: dict[str, Any]) -> bool:
    """True for auxiliary calls, which are answered with plain text and consume no turn.

    Seen with 2.1.330 in -p and stream-json mode: only a `HEAD /api/hello` probe and the main
    conversation's POST /v1/messages, which always offers tools, also with `--model haiku`
    (so the model name is no signal). A request without tools (title, summary, classifier
    calls in other modes) cannot be a turn that a scripted tool_use could answer.
    """
    return not body.get("tools")


def session_of(body: dict[str, Any]) -> str | None:
    """The Claude Code session id a request belongs to (from metadata.user_id), if any."""
    user_id = body.get("metadata", {}).get("user_id") if isinstance(body, dict) else None
    try:
        value = json.loads(user_id) if isinstance(user_id, str) else None
    except ValueError:
        return None
    sid = value.get("session_id") if isinstance(value, dict) else None
    return str(sid) if sid else None


def _content_text(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
        return
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            yield str(block.get("text", ""))
        elif kind == "tool_result":
            yield from _content_text(block.get("content"))
        elif kind == "tool_use":
            yield json.dumps(block.get("input", {}), sort_keys=True)


def message_texts(body: dict[str, Any]) -> list[str]:
    """Every piece of text in a request's messages (user, assistant, tool results), in order."""
    out: list[str] = []
    for message in body.get("messages", []):
        if isinstance(message, dict):
            out.extend(_content_text(message.get("content")))
    return out


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of a request, each with `text` added (its content flattened)."""
    out: list[dict[str, Any]] = []
    for message in body.get("messages", []):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                text = "\n".join(_content_text(block.get("content")))
                out.append({**block, "text": text})
    return out


class FakeModel:
    """Scripted Messages API. Use as a context manager, or start()/stop().

    `script(*items)` queues replies for the main conversation; an item is a reply (str, Text,
    ToolUse, or a sequence of blocks) or a Responder called with the request body.
    `script_for(session_id, *items)` queues replies for one session only (two sessions on one
    fake); a session's own queue is used before the shared one. When both are empty, `default`
    answers (a reply or Responder). `side(body)` picks the requests that are answered "ok"
    without touching any script (default: `is_side_request`).
    """

    def __init__(
        self,
        default: Reply | Responder = DEFAULT_TEXT,
        side: Callable[[dict[str, Any]], bool] = is_side_request,
    ) -> None:
        self.default: Reply | Responder = default
        self.side = side
        self._queues: dict[str | None, deque[Reply | Responder]] = {None: deque()}
        self._records: list[Recorded] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FakeModel:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL for ANTHROPIC_BASE_URL."""
        assert self._server is not None, "FakeModel not started"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    # -- scripting -------------------------------------------------------------------------
    def script(self, *items: Reply | Responder) -> None:
        with self._changed:
            self._queues[None].extend(items)

    def script_for(self, session_id: str, *items: Reply | Responder) -> None:
        with self._changed:
            self._queues.setdefault(session_id, deque()).extend(items)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet (all queues)."""
        with self._changed:
            return sum(len(q) for q in self._queues.values())

    def _next_reply(self, body: dict[str, Any]) -> tuple[Block, ...]:
        with self._changed:
            own = self._queues.get(session_of(body))
            if own:
                item = own.popleft()
            elif self._queues[None]:
                item = self._queues[None].popleft()
            else:
                item = self.default
        return _blocks(item(body) if callable(item) else item)

    # -- records ---------------------------------------------------------------------------
    def _record(self, rec: Recorded) -> None:
        with self._changed:
            self._records.append(rec)
            self._changed.notify_all()

    @property
    def requests(self) -> list[Recorded]:
        """Every request received (side ones too), in arrival order."""
        with self._changed:
            return list(self._records)

    def turns(self, session_id: str | None = None) -> list[dict[str, Any]]:
        """Bodies of main-conversation requests, in order; only one session's if given."""
        return [
            r.body
            for r in self.requests
            if r.path.split("?")[0] == "/v1/messages"
            and not r.side
            and (session_id is None or session_of(r.body) == session_id)
        ]

    def seen_text(self, session_id: str | None = None) -> str:
        """All message text of the main turns (of one session if given): what the model saw."""
        return "\n".join(t for body in self.turns(session_id) for t in message_texts(body))

    def tool_results(self, session_id: str | None = None) -> list[dict[str, Any]]:
        """Distinct tool_result blocks across main turns, in order, each with `text` added."""
        seen: dict[str, dict[str, Any]] = {}
        for body in self.turns(session_id):
            for block in tool_results(body):
                seen.setdefault(str(block.get("tool_use_id")), block)
        return list(seen.values())

    def wait_for(self, predicate: Callable[[FakeModel], object], timeout: float = 30.0) -> None:
        """Block until predicate(self) is truthy, re-checking on every new request."""
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                count = len(self._records)
            if predicate(self):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"fake model: condition not met within {timeout}s")
            with self._changed:
                if len(self._records) == count:
                    self._changed.wait(remaining)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeModel
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            value = json.loads(raw) if raw else {}
        except ValueError:
            value = {"_raw": raw.decode(errors="replace")}
        return value if isinstance(value, dict) else {"_value": value}

    def _send_json(self, value: Any, status: int = 200) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _other(self) -> None:
        body = self._body() if self.command not in ("GET", "HEAD") else {}
        self.fake._record(Recorded(self.command, self.path, dict(self.headers), body, side=True))
        self._send_json({})

    do_GET = do_PUT = do_DELETE = do_PATCH = _other

    def do_HEAD(self) -> None:
        self.fake._record(Recorded("HEAD", self.path, dict(self.headers), {}, side=True))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/v1/messages/count_tokens":
            body = self._body()
            self.fake._record(Recorded("POST", self.path, dict(self.headers), body, side=True))
            self._send_json({"input_tokens": 100})
            return
        if path != "/v1/messages":
            self._other()
            return
        body = self._body()
        side = self.fake.side(body)
        blocks = (Text(SIDE_TEXT),) if side else self.fake._next_reply(body)
        self.fake._record(Recorded("POST", self.path, dict(self.headers), body, side, blocks))
        model = str(body.get("model", "claude-fake"))
        if body.get("stream"):
            self._stream(model, blocks)
        else:
            self._send_json(_message(model, blocks))

    def _stream(self, model: str, blocks: tuple[Block, ...]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        start = _message(model, ())
        start["usage"] = {"input_tokens": 100, "output_tokens": 1}
        events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
        for index, block in enumerate(blocks):
            if isinstance(block, Text):
                first: dict[str, Any] = {"type": "text", "text": ""}
                delta: dict[str, Any] = {"type": "text_delta", "text": block.text}
            else:
                first = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block.input)}
            events += [
                {"type": "content_block_start", "index": index, "content_block": first},
                {"type": "content_block_delta", "index": index, "delta": delta},
                {"type": "content_block_stop", "index": index},
            ]
        events += [
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop_reason(blocks), "stop_sequence": None},
                "usage": {"output_tokens": 10},
            },
            {"type": "message_stop"},
        ]
        for event in events:
            self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        self.wfile.flush()


def _stop_reason(blocks: tuple[Block, ...]) -> str:
    return "tool_use" if any(isinstance(b, ToolUse) for b in blocks) else "end_turn"


def _message(model: str, blocks: tuple[Block, ...]) -> dict[str, Any]:
    content = [
        {"type": "text", "text": b.text}
        if isinstance(b, Text)
        else {"type": "tool_use", "id": b.id, "name": b.name, "input": b.input}
        for b in blocks
    ]
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(blocks) if blocks else None,
        "stop_sequence": None,
        "usage": {"input_tokens": 100, "output_tokens": 10},
    }
