#!/usr/bin/env bash
# Sets everything up, then runs the demo: agent + pump simulator + trade-center simulator +
# Mosquitto + the dual-screen UI (headless when there is no display). Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export FORECOURT_DEV=1
args=("$@")
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "[demo] no display found: running headless (screens render offscreen)"
  args+=(--headless)
fi
exec .venv/bin/forecourt demo "${args[@]}"
