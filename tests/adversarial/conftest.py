"""The adversarial tier: a hostile same-machine session, a hostile remote account and a
stranger, each with its own access token and plain HTTP (tests/integration/harness.py's Raw,
never our client code), against the real shared Synapse.

What each test checks is seen from two sides: the attacker's own raw view (what it can read
or do on the homeserver) and what reaches Claude (hook output, MCP tool results, CLI output).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from claudematrix.homeserver import register_account
from integration.conftest import SharedHomeserver
from integration.conftest import own_homeserver as own_homeserver  # noqa: F401 (a fixture)
from integration.harness import Machine, Raw, machine_one, machine_two

pytestmark = pytest.mark.adversarial


@pytest.fixture
def m1(shared_homeserver: SharedHomeserver) -> Machine:
    return machine_one(shared_homeserver)


@pytest.fixture
def m2(shared_homeserver: SharedHomeserver, tmp_path: Path) -> Machine:
    return machine_two(shared_homeserver, tmp_path / "machine2")


def stranger_on(shared: SharedHomeserver, localpart: str) -> Raw:
    """An account on the homeserver that belongs to no ClaudeMatrix machine at all."""
    secret = (shared.home / "homeserver" / "registration_shared_secret").read_text().strip()
    account = register_account(shared.url, secret, localpart, secrets.token_urlsafe(16))
    return Raw(shared.url, account.access_token, account.user_id)


@pytest.fixture
def stranger(shared_homeserver: SharedHomeserver) -> Raw:
    return stranger_on(shared_homeserver, f"stranger-{secrets.token_hex(4)}")


# The real Claude Code CLI against the scripted fake model (tests/e2e/conftest.py).
from e2e.conftest import claude as claude  # noqa: E402, F401
from e2e.conftest import claude_bin as claude_bin  # noqa: E402, F401
from e2e.conftest import fake_model as fake_model  # noqa: E402, F401
