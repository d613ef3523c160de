#!/usr/bin/env bash
# Set up netscope in ./.venv (CPU-only PyTorch, pinned) and run the main job on defaults:
# the multi-task comparison on the London schools data, lecture protocol.
# Data: --data-dir / $NETSCOPE_DATA; else ../shared/data when present; else a verified
# download into ~/.cache/netscope/data.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
if [ -z "${NETSCOPE_DATA:-}" ] && [ -d ../shared/data ]; then
  export NETSCOPE_DATA="$(cd ../shared/data && pwd)"
fi
.venv/bin/netscope multitask run --dataset school "$@"
