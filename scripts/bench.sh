#!/usr/bin/env bash
# Every benchmark, one after the other (bench/README.md): the relay (scenarios 1-4), editor
# to editor through real sidecars (5) and the sidecar's footprint (6). The full run takes
# about 12 minutes and rewrites each one's section of docs/benchmarks.md and its plots;
# --quick takes about a minute and a half and only prints (it never replaces the published
# full results). Installs the dev extra into .venv first if there is no .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[dev]'
fi
mode=()
if [ "${1:-}" = "--quick" ]; then
    mode=(--quick --no-write)
elif [ -n "${1:-}" ]; then
    echo "usage: scripts/bench.sh [--quick]" >&2
    exit 2
fi
echo "== relay: fan-out, saturation, durable chat, capacity (bench/run.py)"
.venv/bin/python bench/run.py "${mode[@]}"
echo "== editor to editor (bench/editor_latency.py)"
.venv/bin/python bench/editor_latency.py "${mode[@]}"
echo "== sidecar footprint (bench/sidecar_footprint.py)"
.venv/bin/python bench/sidecar_footprint.py "${mode[@]}"
