#!/usr/bin/env bash
# The desktop app's tests: installs what is missing (apt packages for the Tauri build
# and the real-window tests, the UI's npm packages, tauri-driver), builds the UI and
# the release binary once, then runs the binding check, the shell's unit tests,
# Vitest, and the end-to-end test in a real window under Xvfb through WebDriver.
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

# --- system packages ---------------------------------------------------------------
pkgs=(build-essential pkg-config file libssl-dev libdbus-1-dev
      libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
      xvfb xauth webkit2gtk-driver imagemagick xdotool)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=(sudo); else
      echo "error: missing packages need root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v node >/dev/null || { echo "error: Node.js (20.19 or later) is needed for the UI" >&2; exit 1; }

# --- UI packages, tauri-driver -----------------------------------------------------
step "npm ci (ui)"
(cd ui && npm ci --no-audit --no-fund --loglevel=error)
if ! command -v tauri-driver >/dev/null; then
  step "cargo install tauri-driver"
  "$CARGO" install tauri-driver --locked --version '^2'
fi

# --- build once --------------------------------------------------------------------
step "UI type check and build"
(cd ui && npm run --silent check && npm run --silent build)
step "release build of outpost-desktop"
start=$(date +%s)
"$CARGO" build --release -p outpost-desktop
echo "built in $(( $(date +%s) - start )) s"
BIN=$TARGET_DIR/release/outpost-desktop
# The CLI, for the e2e test's cross-check of the outbox (cheap: shares the build).
"$CARGO" build --release -p outpost-cli

# --- tests -------------------------------------------------------------------------
step "generated TypeScript is up to date; core view tests"
"$CARGO" test --release -p outpost-core --lib views
step "shell unit tests"
"$CARGO" test --release -p outpost-desktop
step "Vitest"
(cd ui && npx vitest run)

if [ -n "${SKIP_E2E:-}" ]; then
  echo "SKIP_E2E set: not running the real-window test"
  exit 0
fi
step "end-to-end in a real window (Xvfb + tauri-driver + WebKitWebDriver)"
XVFB_PID=
if [ -z "${DISPLAY:-}" ]; then
  for n in $(seq 99 120); do [ -e "/tmp/.X11-unix/X$n" ] || { DISPLAY_NUM=$n; break; }; done
  Xvfb ":$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
  XVFB_PID=$!
  export DISPLAY=":$DISPLAY_NUM"
  for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] && break; sleep 0.1; done
fi
trap '[ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true' EXIT
start=$(date +%s)
OUTPOST_DESKTOP_BIN=$BIN node --test ui/e2e/
echo "e2e in $(( $(date +%s) - start )) s; screenshots in $ROOT/target/e2e-screenshots/"
