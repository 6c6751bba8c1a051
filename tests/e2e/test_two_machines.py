"""A Claude Code session on one machine mails a session on another, over Matrix federation.

Two "machines": two throwaway Claude Code installations, each with its own state dir and its
own embedded Synapse, federating from 127.0.0.1 and 127.0.0.2. The person pairs them with the
`claudematrix` CLI (card, add, add) and lets the session on beta welcome the one on alpha
(`trust`). Then alpha's session sends with the MCP `send` tool, as its model asks; beta's
session, on its next prompt, is shown the header by its hooks, naming where the sender is:
on the paired machine alpha. Real `claude -p` (the pinned CLI) and the scripted fake model.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from e2e.support.claude_cli import REPO, TOOL_PREFIX, Claude, PrintResult
from e2e.support.fake_model import FakeModel, ToolUse, message_texts
from support import free_port, wait_until

pytestmark = pytest.mark.e2e

WHOAMI, SEND = TOOL_PREFIX + "whoami", TOOL_PREFIX + "send"
MATRIX_ID = re.compile(r"(@cc-[a-z0-9._=/+-]+:127\.0\.0\.[12]:\d+)")
SESSION_TIMEOUT = 240.0  # a session's first tool call may wait for its homeserver
STEP_TIMEOUT = 90.0


@pytest.fixture
def machines(
    claude_bin: Path, fake_model: FakeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Claude, Claude]]:
    monkeypatch.setenv("CLAUDEMATRIX_PLUGIN_VENV", str(REPO / ".venv"))
    made = []
    for name, address in (("alpha", "127.0.0.1"), ("beta", "127.0.0.2")):
        home, project = tmp_path / name / "home", tmp_path / name / "project"
        home.mkdir(parents=True)
        project.mkdir(parents=True)
        claude = Claude(binary=claude_bin, home=home, project=project, model_url=fake_model.url)
        claude.env_extra.update(
            {
                "CLAUDEMATRIX_HOME": str(home / ".claudematrix"),
                "CLAUDEMATRIX_PORT": str(free_port()),
                "CLAUDEMATRIX_FEDERATION": f"{address}:{free_port()}",
                "CLAUDEMATRIX_MACHINE_NAME": name,
            }
        )
        made.append(claude)
    try:
        yield made[0], made[1]
    finally:
        for claude in made:
            claude.stop_all()


def _cli(claude: Claude, *args: str) -> str:
    proc = claude.claudematrix(*args, timeout=180)
    assert proc.returncode == 0, f"claudematrix {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _resume(claude: Claude, session_id: str, prompt: str) -> PrintResult:
    result = claude.resume(session_id, prompt, timeout=SESSION_TIMEOUT)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def _whoami(claude: Claude, fake: FakeModel, session_id: str) -> str:
    fake.script_for(session_id, ToolUse(WHOAMI), "that is me")
    result = claude.run_print("Who am I?", session_id=session_id, timeout=SESSION_TIMEOUT)
    assert result.returncode == 0, result.stderr
    found = MATRIX_ID.search(fake.seen_text(session_id))
    assert found, fake.seen_text(session_id)
    return found.group(1)


def _incoming_subjects(claude: Claude, session_id: str) -> set[str]:
    db = Path(claude.env()["CLAUDEMATRIX_HOME"]) / "identities" / session_id / "store.db"
    if not db.exists():
        return set()
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        try:
            rows = conn.execute("SELECT subject FROM messages WHERE direction = 'in'").fetchall()
        except sqlite3.OperationalError:
            return set()
    return {str(r[0]) for r in rows}


def test_a_session_on_one_machine_mails_a_session_on_another(
    machines: tuple[Claude, Claude], fake_model: FakeModel
) -> None:
    alpha, beta = machines
    for claude in machines:
        claude.install_plugin_from(REPO)
        _cli(claude, "up")
    card_alpha, card_beta = _cli(alpha, "machine", "card"), _cli(beta, "machine", "card")
    assert "paired with beta" in _cli(alpha, "machine", "add", card_beta.strip(), "--yes")
    assert "paired with alpha" in _cli(beta, "machine", "add", card_alpha.strip(), "--yes")

    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    a_id, b_id = _whoami(alpha, fake_model, a), _whoami(beta, fake_model, b)
    assert a_id.split(":", 1)[1] == alpha.env_extra["CLAUDEMATRIX_FEDERATION"]
    _cli(beta, "--as", b, "trust", a_id, "--yes")  # the person lets alpha's session in

    token = uuid.uuid4().hex[:8]
    subject, words = f"cross {token}", f"BODY-{token}: the fix is on branch x-{token}"
    send = ToolUse(SEND, {"to": b_id, "text": words, "subject": subject, "label": "public"})
    fake_model.script_for(a, send, "sent")
    _resume(alpha, a, "Tell the session on beta.")
    sent = [r for r in fake_model.tool_results(a) if r.get("tool_use_id") == send.id]
    assert sent and not sent[0].get("is_error") and "Sent #" in sent[0]["text"], sent

    # B's session is not running between its turns: what fetches its mail is its next run, or
    # (here) a command of its identity, which the daemon serves with a sync.
    def arrived() -> bool:
        _cli(beta, "--as", b, "inbox", "--json")
        return subject in _incoming_subjects(beta, b)

    wait_until(arrived, STEP_TIMEOUT, "the mail on beta")
    fake_model.script_for(b, "noted")
    _resume(beta, b, "Anything new?")
    shown = "\n".join(message_texts(fake_model.turns(b)[-1]))
    header = [ln for ln in shown.splitlines() if f"<{a_id}>" in ln and subject in ln]
    assert header, shown
    assert "(trusted remote (alpha))" in header[0], header[0]
    assert words not in shown  # the header, never the body
