#!/usr/bin/env bash
# Install collab-lsp into .venv and run a relay on 127.0.0.1 with SQLite, with a
# demo session created; prints the host's token and ready-to-paste join lines.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/collab-relay demo "$@"
