#!/usr/bin/env bash
# The whole test suite. Runs inside a private D-Bus session with a fresh, unlocked
# GNOME keyring so that the credential-store tests use the real Secret Service; the
# keyring's files live in a temporary directory, never in the user's own keyring.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${OUTPOST_TEST_IN_DBUS:-}" ]; then
  exec dbus-run-session -- env OUTPOST_TEST_IN_DBUS=1 "$0" "$@"
fi

keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
# shellcheck disable=SC2046
export $(printf 'outpost-test\n' | XDG_DATA_HOME="$keyring_home" gnome-keyring-daemon --components=secrets --daemonize --unlock)

# Tests that need PostgreSQL, the Secret Service or root are `#[ignore = "needs …"]`,
# so a plain `cargo test` lists them as ignored with the reason. Here every one runs
# (`--include-ignored`): PostgreSQL and the keyring are provided, root is CI's, and a
# test whose requirement is missing fails, saying what it needs (README, "Tests").
# The release-binary checks (`the_release_*`, crates/cli/tests/release_build.rs) are the
# one exception: they read the release binaries, which scripts/test-desktop.sh builds
# next and then runs them against.
test_args=("$@")
case " ${test_args[*]-} " in
  *" -- "*) test_args+=(--include-ignored --skip the_release_) ;;
  *) test_args+=(-- --include-ignored --skip the_release_) ;;
esac

# The previous release's client, for the compatibility test (tests/tests/compat.rs):
# built once into a cache directory, then reused; its absence fails the test here.
OUTPOST_PREV_OUTPOST=$(scripts/prev-release.sh)
export OUTPOST_PREV_OUTPOST

# The convergence property (tests/tests/convergence.rs) runs its 250 cases from a fixed
# seed here, so that `make test` passes or fails the same way on every run; the long
# run (`make reliability`, 5,000 cases) draws a new seed each time to find new schedules.
export OUTPOST_CONVERGENCE_SEED=${OUTPOST_CONVERGENCE_SEED:-11548538239819132006}
# The power cuts (tests/tests/powercut.rs, issue 17 item 3: FUSE, root) likewise: 6 cuts
# from a fixed seed here (a few seconds); `make reliability` runs more from a new seed.
export OUTPOST_POWERCUT_SEED=${OUTPOST_POWERCUT_SEED:-7800471196421027011}

# The server's suite runs on both backends: a throwaway PostgreSQL on loopback is
# installed if needed, started, and removed afterwards (scripts/with-postgres.sh).
scripts/with-postgres.sh cargo test --workspace --exclude outpost-desktop --all-targets "${test_args[@]}"
