#!/usr/bin/env bash
# `make run`: build the UI, the desktop app and the server (release), seed a local
# `outpost-server` with the demo fleet (SQLite under target/run/), start it on
# loopback, and open Outpost against it. Sign in as `tech1` (a technician) or
# `dispatcher`, password `outpost-demo`. Ctrl-C stops both.
#
# Without a display it says so and points to Xvfb; `make demo` walks the CLI instead.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
CARGO=${CARGO:-cargo}
PORT=${OUTPOST_RUN_PORT:-8080}
RUN=$TARGET_DIR/run

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  cat >&2 <<MSG
Outpost is a desktop application and there is no display here (DISPLAY is not set).
  - On a desktop, run \`make run\` from a terminal inside your session.
  - On a server or in a container, run it under a virtual display:
        apt-get install -y xvfb && xvfb-run -a make run
    (take screenshots with \`import -window root shot.png\` from imagemagick).
  - Or walk through the command-line client instead: make demo
MSG
  exit 2
fi

scripts/desktop-deps.sh
scripts/build-ui.sh
"$CARGO" build --release -p outpost-desktop -p outpost-server -p outpost-cli

mkdir -p "$RUN"
SERVER_DB="sqlite:$RUN/server.db"
"$TARGET_DIR/release/outpost-server" seed --demo --db "$SERVER_DB"
"$TARGET_DIR/release/outpost-server" serve --listen "127.0.0.1:$PORT" --db "$SERVER_DB" \
  2> "$RUN/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 $SERVER 2>/dev/null || { echo "outpost-server did not start: see $RUN/server.log" >&2; exit 1; }
  sleep 0.1
done
cat <<MSG

outpost-server is running on http://127.0.0.1:$PORT (log: $RUN/server.log).
Sign in as tech1 (technician) or dispatcher, password outpost-demo.
The app's data is in $RUN/app-data. Close the app (or Ctrl-C) to stop both.

MSG
OUTPOST_DATA_DIR=${OUTPOST_DATA_DIR:-$RUN/app-data} \
OUTPOST_SERVER_URL=http://127.0.0.1:$PORT \
  "$TARGET_DIR/release/outpost-desktop"
