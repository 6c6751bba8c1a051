#!/usr/bin/env bash
# Installs everything the tests need, idempotently: the dev venv, a shared Synapse install,
# and the pinned Claude Code CLI. Output goes to stderr; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
SYNAPSE_VERSION="$(sed -n 's/^SYNAPSE_VERSION = "\(.*\)"/\1/p' src/claudematrix/homeserver/install.py)"
POSTGRES_DRIVER="$(sed -n 's/^POSTGRES_DRIVER = "\(.*\)"/\1/p' src/claudematrix/homeserver/install.py)"
# Written once, in the e2e harness that runs it.
CLAUDE_CODE_VERSION="$(sed -n 's/^CLAUDE_CODE_VERSION = "\(.*\)"/\1/p' tests/e2e/support/claude_cli.py)"
mkdir -p .cache

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "setup: installing claudematrix and test tools into .venv" >&2
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,bench]' >&2
  touch "$stamp"
fi

if [ ! -x .cache/synapse-venv/bin/python ] || \
   ! .cache/synapse-venv/bin/python -c "import synapse" 2>/dev/null; then
  echo "setup: installing Synapse $SYNAPSE_VERSION into .cache/synapse-venv" >&2
  rm -rf .cache/synapse-venv
  "$PYTHON" -m venv .cache/synapse-venv
  .cache/synapse-venv/bin/python -m pip install -q --disable-pip-version-check \
    "matrix-synapse==$SYNAPSE_VERSION" >&2
fi
# The team server's tests run Synapse on PostgreSQL: its driver, as `claudematrix server`
# installs it (claudematrix.homeserver.install.POSTGRES_DRIVER).
if ! .cache/synapse-venv/bin/python -c "import psycopg2" 2>/dev/null; then
  echo "setup: installing $POSTGRES_DRIVER into .cache/synapse-venv" >&2
  .cache/synapse-venv/bin/python -m pip install -q --disable-pip-version-check \
    "$POSTGRES_DRIVER" >&2
fi

# PostgreSQL itself (Debian's package): the tests make throwaway clusters with its initdb.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  echo "setup: installing PostgreSQL (Debian package postgresql)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 || {
    $SUDO apt-get update -q >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
  }
fi

if [ ! -f ".cache/claude-code/node_modules/@anthropic-ai/claude-code/package.json" ] || \
   ! grep -q "\"version\": \"$CLAUDE_CODE_VERSION\"" \
     .cache/claude-code/node_modules/@anthropic-ai/claude-code/package.json; then
  echo "setup: installing Claude Code $CLAUDE_CODE_VERSION from npm" >&2
  mkdir -p .cache/claude-code
  (cd .cache/claude-code && npm install --no-fund --no-audit --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >&2)
fi
echo "setup: ready" >&2
