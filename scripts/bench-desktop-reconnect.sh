#!/usr/bin/env bash
# The desktop's reconnect (issue 24 item 4; ui/e2e/reconnect.bench.mjs): a device that
# created and completed 1,000 orders offline, open in the desktop app on the order list
# when its link returns: search latency during the sync and without one, what the sync
# indicator shows, the sync's duration in the app. Prints `bench-result:` lines for
# docs/benchmarks.md. Expects what scripts/test-desktop.sh installs (tauri-driver,
# WebKitWebDriver, Xvfb).
#   scripts/bench-desktop-reconnect.sh            1,000 orders, BENCH_ROUNDS (3) rounds
#   scripts/bench-desktop-reconnect.sh --quick    20 orders, one round (smoke size)
# E2E_DRIVER_PORT=N picks tauri-driver's port (default 4444; WebKitWebDriver takes N+1)
# when another real-window run holds it.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
[ "${1:-}" = --quick ] && quick=(--quick)
cargo=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# The UI's packages from the lockfile, then its build (a stale node_modules fails).
scripts/build-ui.sh
"$cargo" build --release -p outpost-desktop -p outpost-server --bins
# The server's database and the device's offline day, left on disk for the window.
export BENCH_RECONNECT_DIR=$TARGET_DIR/bench-reconnect-desktop
"$cargo" bench -p outpost-tests --bench reconnect -- "${quick[@]}"
. scripts/xvfb.sh
OUTPOST_DESKTOP_BIN=$TARGET_DIR/release/outpost-desktop node ui/e2e/reconnect.bench.mjs "${quick[@]}"
