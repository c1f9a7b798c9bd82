#!/usr/bin/env bash
# Install everything the tests need into .venv, then run the linters, the type
# checker and every test. Needs only Python >= 3.11 (and, for the scale-out tests
# added later, the Redis and PostgreSQL services described in the README).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'

echo "== ruff"
.venv/bin/ruff check collab_lsp tests
.venv/bin/ruff format --check collab_lsp tests
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
