#!/usr/bin/env bash
# `make bench`: every benchmark, the PouchDB baseline in the same run, then the "Latest
# run" block of docs/benchmarks.md written from what they printed (`bench-result:`
# lines; `cargo xtask bench-report` describes them). The log is kept in
# <target>/bench/bench.log.
#
#   scripts/bench.sh            the figures (release builds; about 15 minutes on 2 cores)
#   scripts/bench.sh --quick    `make bench-quick`: every benchmark and the baseline at
#                               smoke sizes (debug builds, as `cargo test --benches`),
#                               the report written to <target>/bench/report-quick.md,
#                               never to docs/ (CI runs this). The desktop's
#                               reconnect (a release build of the app, a real window)
#                               is not in it: scripts/bench-desktop-reconnect.sh --quick
#                               runs it at 20 orders by hand.
#
# Run it on a quiet machine: the report records the load average at the start and end.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
[ "${1:-}" = --quick ] && quick=1
cargo=${CARGO:-cargo}
out=${CARGO_TARGET_DIR:-$PWD/target}/bench
mkdir -p "$out"
if [ $quick = 1 ]; then log=$out/bench-quick.log; else log=$out/bench.log; fi
: > "$log"

meta() { echo "bench-meta: $1" >> "$log"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
step() {
  echo "+ $*" | tee -a "$log"
  "$@" 2>&1 | tee -a "$log"
}

meta "{\"started\": $(date +%s), \"load\": \"$(load)\"}"
(cd bench/pouchdb && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
if [ $quick = 1 ]; then
  step "$cargo" build --bins
  step "$cargo" test -p outpost-store --benches
  step "$cargo" test -p outpost-tests --bench sync --bench reconnect --bench desk
  step scripts/with-postgres.sh "$cargo" test -p outpost-server --benches -- --include-ignored
  step node bench/pouchdb/baseline.mjs --quick --out "$out/pouchdb-quick.json"
else
  step "$cargo" bench -p outpost-store --bench write_path
  step "$cargo" bench -p outpost-store --bench order_list
  step "$cargo" build --release --bins
  step "$cargo" bench -p outpost-tests --bench sync
  step "$cargo" bench -p outpost-tests --bench desk
  step "$cargo" bench -p outpost-tests --bench reconnect
  step scripts/with-postgres.sh "$cargo" bench -p outpost-server
  # The desktop's reconnect (issue 24 item 4): the real window, so only where the
  # real-window tools are (scripts/test-desktop.sh installs them).
  if command -v tauri-driver >/dev/null && { [ -n "${DISPLAY:-}" ] || command -v Xvfb >/dev/null; }; then
    step scripts/bench-desktop-reconnect.sh
  else
    echo "desktop reconnect skipped: tauri-driver or Xvfb missing (scripts/desktop-deps.sh)" | tee -a "$log"
  fi
  step node bench/pouchdb/baseline.mjs --out "$out/pouchdb.json"
fi
meta "{\"finished\": $(date +%s), \"finished_at\": \"$(date -u '+%Y-%m-%d %H:%M UTC')\", \"load_end\": \"$(load)\"}"
if [ $quick = 1 ]; then
  : > "$out/report-quick.md"
  "$cargo" xtask bench-report --log "$log" --out "$out/report-quick.md"
else
  "$cargo" xtask bench-report --log "$log"
fi
