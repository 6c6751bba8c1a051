"""The adversarial tier: a hostile same-machine session, a hostile remote account and a
stranger, each with its own access token and plain HTTP (tests/integration/harness.py's Raw,
never our client code), against the real shared Synapse.

What each test checks is seen from two sides: the attacker's own raw view (what it can read
or do on the homeserver) and what reaches Claude (hook output, MCP tool results, CLI output).
"""

from __future__ import annotations

import secrets

import pytest

# Fixtures of other tiers: a Synapse of a test's own, and the real Claude Code CLI against
# the scripted fake model.
from e2e.conftest import claude as claude  # noqa: F401
from e2e.conftest import claude_bin as claude_bin  # noqa: F401
from e2e.conftest import fake_model as fake_model  # noqa: F401
from integration.conftest import SharedHomeserver
from integration.conftest import own_homeserver as own_homeserver  # noqa: F401
from integration.harness import Raw, stranger_on

pytestmark = pytest.mark.adversarial


@pytest.fixture
def stranger(shared_homeserver: SharedHomeserver) -> Raw:
    return stranger_on(shared_homeserver, f"stranger-{secrets.token_hex(4)}")
