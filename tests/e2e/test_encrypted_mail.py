"""A person writes to a running Claude Code session from a client with encryption on.

The session is the real Claude Code CLI with the plugin installed from this repo, driven by
the scripted fake model; the person is matrix-nio used directly (tests/support/person.py),
with its own device and an encrypted DM, as Element makes them. The session's hooks announce
the person's message by its header, and the model opens it with the `read` tool.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from claudematrix.homeserver import register_account
from e2e.support.claude_cli import REPO, TOOL_PREFIX, Claude
from e2e.support.fake_model import FakeModel, Reply, Text, ToolUse, message_texts
from support import wait_until
from support.person import Person

pytestmark = pytest.mark.e2e

READ = TOOL_PREFIX + "read"
START_TIMEOUT = 240.0
STEP_TIMEOUT = 60.0


def _cli(claude: Claude, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "claudematrix", *args],
        cwd=claude.project,
        env=claude.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"claudematrix {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_a_persons_encrypted_message_is_announced_and_read(
    claude: Claude, fake_model: FakeModel, tmp_path: Path
) -> None:
    claude.install_plugin_from(REPO)
    b = str(uuid.uuid4())
    state = Path(claude.env()["CLAUDEMATRIX_HOME"])
    b_dir = state / "identities" / b
    words = f"ENCRYPTED-{uuid.uuid4().hex[:8]}: the release branch is frozen"
    subject = f"freeze {uuid.uuid4().hex[:6]}"
    opened: list[str] = []

    def open_it(body: dict[str, Any]) -> Reply:
        header = next(line for line in message_texts(body) if subject in line)
        found = re.search(r"#(\d+) ", header)
        assert found, header
        opened.append(found.group(1))
        return ToolUse(READ, {"id": found.group(1)})

    fake_model.script_for(b, open_it, Text("read it"))

    with claude.stream_session(session_id=b) as session:
        account = b_dir / "account.json"
        wait_until(account.exists, START_TIMEOUT, "B's Matrix account")
        b_id = json.loads(account.read_text())["user_id"]
        url = json.loads(_cli(claude, "--as", b, "status", "--json"))["homeserver"]
        secret = (state / "homeserver" / "registration_shared_secret").read_text().strip()
        registered = register_account(
            url, secret, f"person{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
        )
        person = Person(
            url,
            registered.user_id,
            registered.access_token,
            registered.device_id,
            tmp_path / "person-store",
        )
        _cli(claude, "--as", b, "trust", person.user_id, "--yes")

        async def write() -> None:
            try:
                room = await person.open_encrypted_dm(b_id)
                await person.wait_joined(room, b_id)
                await person.send_text(room, f"{subject}\n\n{words}")
            finally:
                await person.close()

        asyncio.run(write())
        wait_until(
            lambda: (b_dir / "store.db").exists() and _has(b_dir, words),
            STEP_TIMEOUT,
            "B to decrypt and store the person's message",
        )
        session.send("Anything new?")
        result = session.wait_result(timeout=STEP_TIMEOUT * 3)
        assert result.get("subtype") == "success", result

    first, second = ("\n".join(message_texts(t)) for t in fake_model.turns(b)[:2])
    # The header reached the model, naming the person; the body did not, until it was read.
    assert subject in first and f"<{registered.user_id}>" in first
    assert words not in first
    results = [r["text"] for r in fake_model.tool_results(b)]
    assert opened and any(words in text for text in results), results
    assert words in second


def _has(identity_dir: Path, words: str) -> bool:
    uri = f"file:{identity_dir / 'store.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        try:
            rows = conn.execute(
                "SELECT id FROM messages WHERE body LIKE ?", (f"%{words}%",)
            ).fetchall()
        except sqlite3.OperationalError:
            return False
    return bool(rows)
