#!/usr/bin/env bash
# `make reliability`: the long reliability suite (issue 16), then docs/RELIABILITY.md
# from the result files its parts leave in <target>/reliability/.
#
# The kill tests (tests/tests/kill.rs) at full size: every crash point at hits 1..3,
# alone and with the other side killed; seeded kill loops on SQLite and on two
# PostgreSQL instances until OUTPOST_KILLS counted kills each (1,200 in all by default).
# A seed is printed and written with the results; OUTPOST_KILL_SEED=<seed> repeats a
# run. Other parts (fault schedules, full disks, bad answers) add their tests to
# RELIABILITY_TESTS and write their own result files: the HTTP fault schedules
# (faults), bad answers (answers), full disks (disk) and the convergence property
# (convergence, issue 17: OUTPOST_CONVERGENCE_CASES schedules, 5,000 by default;
# OUTPOST_CONVERGENCE_SEED=<seed> repeats a run) and the power cuts (powercut, issue 17
# item 3: OUTPOST_POWERCUT_CASES cuts, 1,000 by default, on FUSE shims;
# OUTPOST_POWERCUT_SEED=<seed> repeats a run) do. The fuzz targets run after them
# (scripts/fuzz.sh long: executions and time per target in fuzz.json).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
target=${CARGO_TARGET_DIR:-$PWD/target}
rm -rf "$target/reliability"

export OUTPOST_KILLS=${OUTPOST_KILLS:-600}
# The HTTP fault schedules at k = 1, 2 and 3 (tests/tests/faults.rs); the bad answers
# (answers.rs) and the full disks (disk.rs, root) have one size.
export OUTPOST_FAULTS_FULL=1
export OUTPOST_KILL_HITS=${OUTPOST_KILL_HITS:-3}
export OUTPOST_CONVERGENCE_CASES=${OUTPOST_CONVERGENCE_CASES:-5000}
export OUTPOST_POWERCUT_CASES=${OUTPOST_POWERCUT_CASES:-1000}
tests=(${RELIABILITY_TESTS:-kill faults answers disk convergence powercut})
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done

# The same package selection as scripts/test.sh, so that cargo resolves the same
# features (the binaries with their crash points) and reuses that build; PostgreSQL is
# a throwaway cluster (scripts/with-postgres.sh).
start=$(date +%s)
"$CARGO" test --workspace --exclude outpost-desktop --all-targets --no-run
scripts/with-postgres.sh "$CARGO" test --workspace --exclude outpost-desktop "${test_args[@]}" \
  -- --include-ignored --test-threads 1 --nocapture
echo "reliability tests took $(( $(date +%s) - start )) s"

# The fuzz targets (issue 17 item 2): OUTPOST_FUZZ_SECONDS per target (300 by default),
# writing fuzz.json; OUTPOST_FUZZ=0 leaves them out.
if [ "${OUTPOST_FUZZ:-1}" != 0 ]; then
  scripts/fuzz.sh long
fi

"$CARGO" xtask reliability --target "$target"
