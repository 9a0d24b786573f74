#!/usr/bin/env bash
# The desktop app's tests: installs what is missing (apt packages for the Tauri build
# and the real-window tests, the UI's npm packages, tauri-driver), builds the UI and
# the release binaries once, then runs Vitest and the end-to-end tests in a real window
# under Xvfb through WebDriver. (The bindings' staleness checks and the logic behind
# the shell are tested with the workspace: scripts/test.sh.)
#
#   scripts/test-desktop.sh            everything
#   SKIP_E2E=1 scripts/test-desktop.sh without the real-window test
#
# The binary is target/release/outpost-desktop (or $CARGO_TARGET_DIR/release/...), the
# same one `tauri build` makes (custom-protocol is a default feature); screenshots go
# to target/e2e-screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CARGO=${CARGO:-cargo}

step() { printf '\n== %s\n' "$*"; }

# --- system packages (WebKit build, Xvfb, WebKitWebDriver, …), Node ------------------
scripts/desktop-deps.sh

# --- UI packages, tauri-driver -----------------------------------------------------
if ! command -v tauri-driver >/dev/null; then
  step "cargo install tauri-driver"
  "$CARGO" install tauri-driver --locked --version '^2'
fi

# --- build once --------------------------------------------------------------------
step "UI packages, type check and build"
scripts/build-ui.sh --check
# The desktop, and the CLI and the server for the e2e tests' server and dispatcher, in
# ONE invocation: cargo unifies features over the packages it builds, so building them
# apart (or testing the desktop alone) compiles the shared dependencies a second time.
# scripts/test-package.sh builds the same three, which is then a no-op. The shell has
# no unit tests of its own: its logic lives in outpost-core, tested with the workspace.
step "release build of outpost-desktop, outpost-cli and outpost-server"
start=$(date +%s)
"$CARGO" build --release -p outpost-desktop -p outpost-cli -p outpost-server
echo "built in $(( $(date +%s) - start )) s"
BIN=$TARGET_DIR/release/outpost-desktop

# Test hooks exist only in test builds: the release binaries just built hold none
# (crates/cli/tests/release_build.rs reads them; ignored in the workspace's run, which
# has no release build). The same package selection as scripts/test.sh, so that cargo
# resolves the same features and reuses that run's debug build: only this one test
# target is compiled.
step "no test hook in the release binaries"
"$CARGO" test --workspace --exclude outpost-desktop --test release_build -- --ignored

# --- tests -------------------------------------------------------------------------
# (The generated TypeScript's staleness test runs with the workspace's tests:
# `cargo test -p outpost-core bindings`.)
step "Vitest"
(cd ui && npx vitest run)

if [ -n "${SKIP_E2E:-}" ]; then
  echo "SKIP_E2E set: not running the real-window test"
  exit 0
fi
step "end-to-end in a real window (Xvfb + tauri-driver + WebKitWebDriver)"
. scripts/xvfb.sh
start=$(date +%s)
OUTPOST_DESKTOP_BIN=$BIN node --test --test-concurrency=1 ui/e2e/
echo "e2e in $(( $(date +%s) - start )) s; screenshots in $ROOT/target/e2e-screenshots/"
