#!/usr/bin/env bash
# The main job on a fresh machine: installs ClaudeMatrix into .venv, then `claudematrix demo`
# installs and starts the embedded homeserver (Synapse) and has two sessions exchange mail.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e . >&2
exec .venv/bin/claudematrix demo "$@"
