#!/usr/bin/env bash
# Desktop benchmark (see ui/e2e/bench.mjs): start to first rendered list with 10,000
# orders, search latency, idle PSS of the app beside an empty Tauri window built from
# the same dependencies. Expects what scripts/test-desktop.sh installs.
#   BENCH_ORDERS=10000 BENCH_RUNS=3 BENCH_IDLE_MS=8000 scripts/bench-desktop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
(cd ui && npm run --silent build)
cargo build --release -p outpost-desktop --bin outpost-desktop --example empty_window
# The desk's 500 open items (issue 20), in a data directory the window opens.
export BENCH_DESK_DIR=$TARGET_DIR/bench-desk
cargo bench -p outpost-tests --bench desk
. scripts/xvfb.sh
OUTPOST_DESKTOP_BIN=$TARGET_DIR/release/outpost-desktop \
EMPTY_WINDOW_BIN=$TARGET_DIR/release/examples/empty_window \
  node ui/e2e/bench.mjs
