#!/usr/bin/env bash
# Install everything the tests need, then run the linters, the type checkers and
# every test. Needs Python >= 3.11, Node >= 20 with npm, and root (or sudo) for the
# Debian packages of the VS Code end-to-end test (chromium, libkrb5-dev, pkg-config).
# Heavy downloads (Node 24, code-server) are cached in ~/.cache/collab-lsp.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# tests/scaleout: nginx (they run deploy/nginx/collab-relay.conf in front of relays) and
# the redis-server binary (the outage tests start a private one)
missing=""
[ -x /usr/sbin/nginx ] || missing="$missing nginx"
command -v redis-server >/dev/null || missing="$missing redis-server"
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

echo "== VS Code extension: type check and unit tests"
if [ ! -d editor_clients/vscode/node_modules ]; then
    (cd editor_clients/vscode && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd editor_clients/vscode && npm run --silent typecheck && npm test --silent >/dev/null)

echo "== ruff"
.venv/bin/ruff check collab_lsp tests
.venv/bin/ruff format --check collab_lsp tests
echo "== mypy"
.venv/bin/mypy
echo "== Neovim 0.10 and 0.11 for tests/neovim (cached in ~/.cache/collab-lsp)"
./scripts/setup-neovim.sh
export COLLAB_TEST_NVIM_REQUIRE=0.10,0.11  # here a missing version fails, never skips
echo "== pytest"
.venv/bin/python -m pytest "$@"
