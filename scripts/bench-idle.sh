#!/usr/bin/env bash
# The desktop app's idle cost (issue 25 item 3): the release app signed in against a
# local server, online, with nothing to do, for IDLE_MINUTES (default 10), under Xvfb.
# Prints the average CPU of its processes, their context switches per minute and the
# engine's requests per hour (ui/e2e/idle.bench.mjs says how each is measured).
# IDLE_HIDDEN=1: the window closed into the tray first; this starts a D-Bus session
# bus, a window manager (openbox: wmctrl closes through it) and an XEmbed tray host (trayer) on
# the display: `apt-get install trayer openbox wmctrl xdotool dbus`.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
scripts/desktop-deps.sh
command -v tauri-driver >/dev/null || cargo install tauri-driver --locked --version '^2'
(cd ui && npm run --silent build)
cargo build --release -p outpost-desktop -p outpost-cli -p outpost-server
. scripts/xvfb.sh
HELPERS=()
cleanup() {
  for p in "${HELPERS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true
}
trap cleanup EXIT
RUN=()
if [ "${IDLE_HIDDEN:-}" = 1 ]; then
  for tool in openbox trayer wmctrl xdotool dbus-run-session; do
    command -v "$tool" >/dev/null || { echo "IDLE_HIDDEN=1 needs $tool" >&2; exit 1; }
  done
  openbox >/dev/null 2>&1 & HELPERS+=($!)
  trayer --edge top --align right --widthtype request --height 24 >/dev/null 2>&1 & HELPERS+=($!)
  sleep 1
  RUN=(dbus-run-session --)
fi
OUTPOST_DESKTOP_BIN=$TARGET_DIR/release/outpost-desktop "${RUN[@]}" node ui/e2e/idle.bench.mjs
