#!/usr/bin/env bash
# The test command of the README: installs what the tests need, then runs every tier
# (unit, MCP, integration against a real Synapse, e2e through the real Claude Code CLI)
# and the quick benchmark smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-dev.sh
export CLAUDEMATRIX_SYNAPSE_VENV="$PWD/.cache/synapse-venv"
.venv/bin/ruff check src tests bench scripts
.venv/bin/ruff format --check src tests bench scripts
.venv/bin/mypy
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
