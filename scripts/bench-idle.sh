#!/usr/bin/env bash
# The desktop app's idle cost (issue 25 item 3): the release app signed in against a
# local server, online, with nothing to do, for IDLE_MINUTES (default 10), under Xvfb.
# Prints the average CPU of its processes, their context switches per minute and the
# engine's requests per hour (ui/e2e/idle.bench.mjs says how each is measured).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
scripts/desktop-deps.sh
command -v tauri-driver >/dev/null || cargo install tauri-driver --locked --version '^2'
(cd ui && npm run --silent build)
cargo build --release -p outpost-desktop -p outpost-cli -p outpost-server
XVFB_PID=
if [ -z "${DISPLAY:-}" ]; then
  for n in $(seq 99 120); do [ -e "/tmp/.X11-unix/X$n" ] || { DISPLAY_NUM=$n; break; }; done
  Xvfb ":$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
  XVFB_PID=$!
  export DISPLAY=":$DISPLAY_NUM"
  for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] && break; sleep 0.1; done
fi
trap '[ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true' EXIT
OUTPOST_DESKTOP_BIN=$TARGET_DIR/release/outpost-desktop node ui/e2e/idle.bench.mjs
