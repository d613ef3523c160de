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
# The live page's browser test drives Debian's Chromium; install it when we may (as root).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      chromium chromium-driver >/dev/null) || echo "setup: could not install chromium; the browser test will be skipped" >&2
  else
    echo "setup: for the browser test, install Debian's chromium and chromium-driver" >&2
  fi
fi
if [ -z "${NETSCOPE_DATA:-}" ] && [ -d ../shared/data ]; then
  export NETSCOPE_DATA="$(cd ../shared/data && pwd)"
fi
# Fill the verified cache from the local copy, so every later command (and Python) finds
# the data without --data-dir or NETSCOPE_DATA; no network needed.
if [ -n "${NETSCOPE_DATA:-}" ]; then
  .venv/bin/netscope data fetch --from "$NETSCOPE_DATA"
fi
.venv/bin/netscope multitask run --dataset school "$@"
