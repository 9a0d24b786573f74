#!/usr/bin/env bash
# The fuzz targets (issue 17 item 2; fuzz/, docs/RELIABILITY.md "Fuzzing").
#
#   scripts/fuzz.sh short   `make test`: each target for OUTPOST_FUZZ_SECONDS (default 5)
#                           from the committed corpus; a crash fails. Skipped, saying
#                           so, when the fuzz build is not cached and OUTPOST_FUZZ_BUILD
#                           is not 1: a cold build is about 6 CPU-minutes (20 wall-clock
#                           minutes on a shared two-core machine), more than `make test`
#                           may grow by; `make reliability` or `scripts/fuzz.sh build`
#                           leaves it cached.
#   scripts/fuzz.sh long    `make reliability`: each target for OUTPOST_FUZZ_SECONDS
#                           (default 300); writes <target>/reliability/fuzz.json
#                           (executions and seconds per target).
#   scripts/fuzz.sh build   build the targets only.
#
# libFuzzer through cargo-fuzz on the stable toolchain: RUSTC_BOOTSTRAP=1 lets stable
# rustc take the `-Z` flags cargo-fuzz passes. `--sanitizer none`: the code under test
# is safe Rust (no `unsafe` anywhere in the workspace) plus SQLite/SQLCipher's C, so
# AddressSanitizer would mostly instrument C we do not change, at twice the build and
# run time; panics, overflow checks and debug assertions are what the targets catch.
# The build has its own target directory (OUTPOST_FUZZ_TARGET_DIR, default
# <target>/fuzz): its instrumented artifacts cannot be shared with the workspace's.
# New inputs libFuzzer finds go to a scratch corpus there, never into fuzz/corpus/;
# a crashing input is written to <fuzz target dir>/artifacts/<target>/ and printed.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-short}
target=${CARGO_TARGET_DIR:-$PWD/target}
fuzz_target_dir=${OUTPOST_FUZZ_TARGET_DIR:-$target/fuzz}
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$fuzz_target_dir/$triple/release
targets=(${OUTPOST_FUZZ_TARGETS:-push_request pull cursor attachments merge store_open})
case $mode in
  short) seconds=${OUTPOST_FUZZ_SECONDS:-5} ;;
  long) seconds=${OUTPOST_FUZZ_SECONDS:-300} ;;
  build) seconds=0 ;;
  *) echo "usage: scripts/fuzz.sh short|long|build" >&2; exit 2 ;;
esac

cached=1
for t in "${targets[@]}"; do [ -x "$bin_dir/$t" ] || cached=0; done
if [ "$mode" = short ] && [ $cached = 0 ] && [ "${OUTPOST_FUZZ_BUILD:-0}" != 1 ]; then
  echo "fuzz: SKIPPED — the fuzz build is not cached in $fuzz_target_dir (a cold build takes"
  echo "      minutes on two cores); run 'scripts/fuzz.sh build' once, or set OUTPOST_FUZZ_BUILD=1."
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "error: cargo-fuzz is missing: cargo install cargo-fuzz --locked (.ci/run installs it)" >&2
  exit 1
fi

start=$(date +%s)
RUSTC_BOOTSTRAP=1 CARGO_INCREMENTAL=0 cargo fuzz build --fuzz-dir fuzz --sanitizer none \
  --target-dir "$fuzz_target_dir"
echo "fuzz: build took $(( $(date +%s) - start )) s"
[ "$mode" = build ] && exit 0

# The store target writes a small database per case: on a RAM disk when there is one.
scratch_tmp=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && scratch_tmp=/dev/shm
rows=()
failed=()
for t in "${targets[@]}"; do
  work=$fuzz_target_dir/work/$t
  mkdir -p "$work/corpus" "$fuzz_target_dir/artifacts/$t"
  log=$work/log.txt
  t0=$(date +%s)
  set +e
  TMPDIR=$scratch_tmp "$bin_dir/$t" "$work/corpus" "fuzz/corpus/$t" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$fuzz_target_dir/artifacts/$t/" >"$log" 2>&1
  rc=$?
  set -e
  took=$(( $(date +%s) - t0 ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  units=$(find "$work/corpus" "fuzz/corpus/$t" -type f | wc -l)
  crash=0
  if [ $rc -ne 0 ]; then
    crash=1
    failed+=("$t")
    echo "fuzz: $t FAILED (exit $rc); the input is in $fuzz_target_dir/artifacts/$t/:" >&2
    grep -E "panicked|ERROR|Test unit written|SUMMARY" "$log" | head -n 20 >&2
  fi
  echo "fuzz: $t: ${execs:-0} executions in $took s (${speed:-0}/s), coverage ${cov:-0}, corpus $units, crashes $crash"
  rows+=("{\"target\": \"$t\", \"executions\": ${execs:-0}, \"seconds\": $took, \"exec_per_s\": ${speed:-0}, \"coverage_edges\": ${cov:-0}, \"corpus_units\": $units, \"crashes\": $crash}")
done

if [ "$mode" = long ]; then
  mkdir -p "$target/reliability"
  total=0
  for r in "${rows[@]}"; do
    n=$(printf '%s' "$r" | sed -n 's/.*"executions": \([0-9]*\).*/\1/p')
    total=$(( total + n ))
  done
  joined=$(IFS=,; printf '%s' "${rows[*]}")
  cat >"$target/reliability/fuzz.json" <<JSON
{
  "part": "fuzz",
  "title": "Fuzzing (issue 17 item 2)",
  "what": "libFuzzer (cargo-fuzz, stable toolchain with RUSTC_BOOTSTRAP=1, no sanitizer) on the wire decoders as the server reads requests and the device reads answers (push, pull and its cursor, attachment uploads: what is accepted must round-trip), the merge rules on generated orders and pushes (deterministic, at_base only read when needs_base says, no set dropped silently, versions, stamps and stock consistent) and the device store opened over databases whose schema and rows were changed by arbitrary SQL (a typed error, never a panic); $seconds s per target from the committed corpus (fuzz/corpus/); a crash fails the run. Lost and doubled do not apply (0)",
  "command": "OUTPOST_FUZZ_SECONDS=$seconds scripts/fuzz.sh long",
  "seed": "- (libFuzzer's own per run; the corpus is fuzz/corpus/)",
  "lost": 0,
  "doubled": 0,
  "seconds": $(( $(date +%s) - start )),
  "rows": [$joined],
  "figures": {"executions, all targets": $total, "targets": ${#targets[@]}, "crashes": ${#failed[@]}}
}
JSON
  echo "results: $target/reliability/fuzz.json"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]} (make each a #[test] next to the code it tests, then fix)" >&2
  exit 1
fi
