"""The baseline: the Matrix client-server API spoken raw, over http.client, nothing else.

Imported by the bench for set-up (registering users, making rooms), and run as a child
process (`python -I bench/_rawpeer.py`) for the timed parts, in one of two roles given as a
JSON line on stdin:

- recv: long-polls /sync (30 s) and prints `got <token> <t>` for every message received,
  t being time.monotonic() when the response was parsed (CLOCK_MONOTONIC is one clock for
  every process on Linux, so the bench compares it with the sender's).
- send: reads commands on stdin, `send <room> <token>` and `burst <room> <n> <tag>`, and
  prints `sent <token> <t0> <t1>` / `burst <tag> <t0> <t1>` (t0 before the request, t1 after
  the answer).
- listening-send: the same sender, which also keeps a long-poll of its own open on a second
  connection, as any client that can receive does (its own events filtered out, renewed
  every 120 s; a session's sync in the daemon also comes back after every 16 of its own
  events, claudematrix.matrix.client.OWN_EVENTS_PER_MARK, which this one does not). Context
  for the budgets: the plain sender syncs nothing, so the homeserver has no sync of the
  sender's to wake per message.

Both exit when stdin closes. Standard library only, so nothing here is "our code".
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

__all__ = ["Raw", "RawError", "register", "FILLER", "SYNC_FILTER", "answer_send_command"]

# Similar to what sessions send: a subject-sized line and a paragraph.
FILLER = (
    "Could you review the tokenizer change on branch parser-fix? Tests pass here; the "
    "only open question is the error message for unterminated strings."
)
# The same filter shape as our client's (claudematrix.matrix.client.SYNC_FILTER).
SYNC_FILTER: dict[str, Any] = {
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
    "room": {
        "timeline": {"limit": 100, "types": ["m.room.message", "m.room.member"]},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
}


class RawError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


class Raw:
    """One keep-alive HTTP connection to the homeserver, as one user (or anonymous)."""

    def __init__(
        self, base_url: str, token: str | None = None, user_id: str = "", timeout: float = 90
    ) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base_url = base_url
        self.token = token
        self.user_id = user_id
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self._conn.request(method, path, body=data, headers=headers)
                resp = self._conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                self.close()  # a keep-alive connection the server closed: once more, afresh
                if attempt == 2:
                    raise
        parsed = json.loads(raw) if raw else {}
        if resp.status >= 400:
            raise RawError(resp.status, parsed)
        return parsed if isinstance(parsed, dict) else {}

    # --- the few calls the baselines need ------------------------------------------------

    def create_room(self, invite: list[str] | None = None, *, direct: bool = False) -> str:
        body: dict[str, Any] = {
            "preset": "trusted_private_chat" if direct else "private_chat",
            "invite": invite or [],
            "is_direct": direct,
            "initial_state": [
                {
                    "type": "m.room.history_visibility",
                    "content": {"history_visibility": "shared"},
                }
            ],
        }
        return str(self.call("POST", "/_matrix/client/v3/createRoom", body)["room_id"])

    def invite(self, room: str, user: str) -> None:
        self.call("POST", f"/_matrix/client/v3/rooms/{_q(room)}/invite", {"user_id": user})

    def join(self, room: str) -> None:
        self.call("POST", f"/_matrix/client/v3/join/{_q(room)}", {})

    def joined_members(self, room: str) -> dict[str, Any]:
        return self.call("GET", f"/_matrix/client/v3/rooms/{_q(room)}/joined_members")

    def send(self, room: str, text: str) -> str:
        path = f"/_matrix/client/v3/rooms/{_q(room)}/send/m.room.message/{secrets.token_hex(8)}"
        return str(self.call("PUT", path, {"msgtype": "m.text", "body": text})["event_id"])

    def sync(self, since: str | None, timeout_ms: int) -> dict[str, Any]:
        query = {"timeout": str(timeout_ms), "filter": json.dumps(SYNC_FILTER)}
        if since:
            query["since"] = since
        return self.call("GET", "/_matrix/client/v3/sync?" + urllib.parse.urlencode(query))


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def register(base_url: str, shared_secret: str, localpart: str) -> Raw:
    """A new user through Synapse's shared-secret admin registration; logged in."""
    anon = Raw(base_url)
    try:
        nonce = str(anon.call("GET", "/_synapse/admin/v1/register")["nonce"])
        password = secrets.token_urlsafe(16)
        mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode())
            mac.update(b"\x00")
        mac.update(b"notadmin")
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": False,
            "mac": mac.hexdigest(),
        }
        got = anon.call("POST", "/_synapse/admin/v1/register", body)
    finally:
        anon.close()
    return Raw(base_url, str(got["access_token"]), str(got["user_id"]))


# --- child process roles -----------------------------------------------------------------


def _exit_on_eof() -> None:
    def watch() -> None:
        while sys.stdin.buffer.readline():
            pass
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _recv(client: Raw) -> None:
    since = client.sync(None, 0).get("next_batch")
    _out("ready")
    _exit_on_eof()
    while True:
        resp = client.sync(since, 30_000)
        t = time.monotonic()
        since = resp.get("next_batch", since)
        for room in (resp.get("rooms") or {}).get("join", {}).values():
            for event in (room.get("timeline") or {}).get("events", []):
                if event.get("type") == "m.room.message":
                    body = str((event.get("content") or {}).get("body", ""))
                    _out(f"got {body.split(' ', 1)[0]} {t!r}")


def answer_send_command(cmd: list[str], send: Callable[[str, str], object]) -> None:
    """The senders' line protocol, for the raw sender and the session alike: `send <to>
    <token>` prints `sent <token> <t0> <t1>`; `burst <to> <n> <tag>` sends n, one after
    another, and prints `burst <tag> <t0> <t1>` (time.monotonic() around it all)."""
    if cmd[0] == "send":
        to, token = cmd[1], cmd[2]
        t0 = time.monotonic()
        send(to, f"{token} {FILLER}")
        t1 = time.monotonic()
        _out(f"sent {token} {t0!r} {t1!r}")
    elif cmd[0] == "burst":
        to, count, tag = cmd[1], int(cmd[2]), cmd[3]
        t0 = time.monotonic()
        for i in range(count):
            send(to, f"{tag}-{i} {FILLER}")
        t1 = time.monotonic()
        _out(f"burst {tag} {t0!r} {t1!r}")


# How long a listening sender's long-poll waits: the daemon's (service/session.py).
_LISTEN_POLL_MS = 120_000


def _listen(client: Raw) -> None:
    """Long-poll /sync forever as the sender, its own events filtered out; read nothing."""
    room = SYNC_FILTER["room"]
    timeline = {**room["timeline"], "not_senders": [client.user_id]}
    own_filter = json.dumps({**SYNC_FILTER, "room": {**room, "timeline": timeline}})
    query = {"timeout": "0", "filter": own_filter}
    since = client.call("GET", "/_matrix/client/v3/sync?" + urllib.parse.urlencode(query))
    token = since.get("next_batch")
    while True:
        query = {"timeout": str(_LISTEN_POLL_MS), "filter": own_filter, "since": str(token)}
        resp = client.call("GET", "/_matrix/client/v3/sync?" + urllib.parse.urlencode(query))
        token = resp.get("next_batch", token)


def _send(client: Raw, *, listening: bool = False) -> None:
    if listening:
        poller = Raw(client.base_url, client.token, client.user_id, _LISTEN_POLL_MS / 1000 + 30)
        threading.Thread(target=_listen, args=(poller,), daemon=True).start()
    _out("ready")
    for line in sys.stdin:
        cmd = line.split()
        if cmd:
            answer_send_command(cmd, client.send)


def main() -> None:
    spec = json.loads(sys.stdin.readline())
    client = Raw(spec["url"], spec["token"], spec["user"])
    if spec["role"] == "recv":
        _recv(client)
    else:
        _send(client, listening=spec["role"] == "listening-send")


if __name__ == "__main__":
    main()
