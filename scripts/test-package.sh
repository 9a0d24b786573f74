#!/usr/bin/env bash
# The Linux package test: builds the .deb and the .rpm (Tauri bundler, from the release
# binary), checks both packages' metadata (name, workspace version, maintainer, licence,
# dependencies, desktop entry, icons), installs the .deb on this machine with apt, and
# checks the INSTALLED app:
#
#   1. install; /usr/bin/outpost-desktop starts under Xvfb with a throwaway HOME and
#      shows the first-run sign-in screen (log `ui-ready screen=first-run`, screenshot);
#   2. sign-in through the installed app's window (tauri-driver, real outpost-server):
#      it creates its encrypted database in the user's data directory;
#   3. unsynced work goes into the outbox (the `outpost` CLI on the same directory,
#      server stopped), then the package is UPGRADED to a higher version (the same
#      binary repackaged): the outbox is intact and the app starts again;
#   4. the package is REMOVED and installed again: same checks;
#   5. the server comes back: the pending outbox syncs and ends empty;
#   6. the package is removed.
#
#   scripts/test-package.sh               build the .deb if needed, then test it
#   DEB=path.deb scripts/test-package.sh  test a given .deb
#   KEEP=1                                keep the temporary directory
#
# Needs root (apt) or sudo. Screenshots and logs: target/package-test/.
# Idempotent: an `outpost` package left installed by an earlier run is removed first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CARGO=${CARGO:-cargo}
PKG=outpost
OUT=$TARGET_DIR/package-test
CLI=$TARGET_DIR/release/outpost
SERVER_BIN=$TARGET_DIR/release/outpost-server
APP=/usr/bin/outpost-desktop

step() { printf '\n== %s\n' "$*"; }
fail() { printf '\nFAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf '   ok: %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || fail "installing a package needs root: run as root or install sudo"
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

# --- tools ---------------------------------------------------------------------------
scripts/desktop-deps.sh
for t in dpkg-deb apt-get Xvfb import convert jq node python3 WebKitWebDriver; do
  command -v "$t" >/dev/null || fail "$t is missing (scripts/desktop-deps.sh installs it)"
done
if ! command -v tauri-driver >/dev/null; then
  step "cargo install tauri-driver"
  "$CARGO" install tauri-driver --locked --version '^2'
fi

# --- the package ---------------------------------------------------------------------
if [ -z "${DEB:-}" ]; then
  step "release binaries and the .deb (Tauri bundler, no recompilation when up to date)"
  if [ ! -f ui/dist/index.html ] || [ ! -d ui/node_modules/@tauri-apps/cli ]; then scripts/build-ui.sh; fi
  "$CARGO" build --release -p outpost-desktop -p outpost-cli -p outpost-server
  ui/node_modules/.bin/tauri bundle --bundles deb,rpm
  DEB=$(ls -t "$TARGET_DIR"/release/bundle/deb/*.deb | head -1)
  RPM=$(ls -t "$TARGET_DIR"/release/bundle/rpm/*.rpm 2>/dev/null | head -1)
fi
[ -f "$DEB" ] || fail "no .deb at $DEB"
[ -x "$CLI" ] && [ -x "$SERVER_BIN" ] || fail "build the CLI and server first: cargo build --release -p outpost-cli -p outpost-server"
DEB=$(readlink -f "$DEB")
VERSION=$(dpkg-deb -f "$DEB" Version)
[ "$(dpkg-deb -f "$DEB" Package)" = "$PKG" ] || fail "$DEB is not the $PKG package"
WS_VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ "$VERSION" = "$WS_VERSION" ] || fail "package version $VERSION is not the workspace version $WS_VERSION"
ok "$DEB: $PKG $VERSION (the workspace version)"

# --- package metadata: both Linux packages say who, what, which licence, what they need ---
step "package metadata (.deb and .rpm)"
field() { dpkg-deb -f "$DEB" "$1"; }
[ -n "$(field Maintainer)" ] || fail ".deb: no Maintainer"
[ -n "$(field Description)" ] || fail ".deb: no Description"
field Depends | grep -q 'libwebkit2gtk-4.1-0' || fail ".deb: Depends lacks WebKitGTK: $(field Depends)"
# (Listings are read whole before matching: `grep -q` on a pipe would cut it short.)
copyright=$(dpkg-deb --fsys-tarfile "$DEB" | tar -xO usr/share/doc/outpost/copyright 2>/dev/null || true)
grep -q '^License: Apache-2.0' <<<"$copyright" || fail ".deb: no /usr/share/doc/outpost/copyright naming the licence"
deb_files=$(dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./||')
for f in usr/bin/outpost-desktop usr/share/applications/Outpost.desktop \
         usr/share/icons/hicolor/128x128/apps/outpost-desktop.png; do
  grep -qx "$f" <<<"$deb_files" || fail ".deb lacks /$f"
done
ok ".deb: maintainer $(field Maintainer), licence file, depends, desktop entry, icons"
if [ -n "${RPM:-}" ]; then
  command -v rpm >/dev/null || fail "rpm is missing (scripts/desktop-deps.sh installs it)"
  q() { rpm -qp --nosignature --queryformat "$1" "$RPM" 2>/dev/null; }
  [ "$(q '%{NAME}')" = "$PKG" ] || fail ".rpm: name $(q '%{NAME}'), expected $PKG"
  [ "$(q '%{VERSION}')" = "$WS_VERSION" ] || fail ".rpm: version $(q '%{VERSION}') is not $WS_VERSION"
  [ "$(q '%{LICENSE}')" = "Apache-2.0" ] || fail ".rpm: licence '$(q '%{LICENSE}')'"
  [ -n "$(q '%{SUMMARY}')" ] && [ -n "$(q '%{DESCRIPTION}')" ] || fail ".rpm: no summary or description"
  requires=$(rpm -qpR --nosignature "$RPM" 2>/dev/null)
  grep -q 'libwebkit2gtk-4.1' <<<"$requires" || fail ".rpm: requires lack WebKitGTK 4.1: $requires"
  rpm_files=$(rpm -qpl --nosignature "$RPM" 2>/dev/null)
  for f in /usr/bin/outpost-desktop /usr/share/applications/Outpost.desktop \
           /usr/share/icons/hicolor/128x128/apps/outpost-desktop.png; do
    grep -qx "$f" <<<"$rpm_files" || fail ".rpm lacks $f"
  done
  ok "$(basename "$RPM"): $(q '%{NAME} %{VERSION}-%{RELEASE}'), licence $(q '%{LICENSE}'), requires, desktop entry, icons"
fi

# --- scratch space, cleanup ------------------------------------------------------------
mkdir -p "$OUT"
rm -f "$OUT"/*.png "$OUT"/*.log
TMP=$(mktemp -d /tmp/outpost-package-test.XXXXXX)
chmod 755 "$TMP"
XVFB_PID= SERVER_PID= APP_PGID= DRIVER_PGID=
stop_group() { [ -n "${1:-}" ] && kill -TERM -- "-$1" 2>/dev/null || true; }
cleanup() {
  local rc=$?
  stop_group "$APP_PGID"; stop_group "$DRIVER_PGID"
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true
  if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "install ok installed"; then
    "${SUDO[@]}" apt-get remove -y -qq "$PKG" >/dev/null 2>&1 || true
  fi
  [ -d "$TMP/home" ] && cp -f "$TMP"/home/.local/share/org.outpost.desktop/logs/*.log "$OUT/" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
  [ "$rc" -eq 0 ] && echo "package test passed" || echo "package test FAILED (logs and screenshots in $OUT)" >&2
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- a newer package: the same binary with a higher version --------------------------
step "repackaging the same binary as a newer version"
NEW_VERSION="$VERSION+pkgtest1"
dpkg --compare-versions "$NEW_VERSION" gt "$VERSION" || fail "$NEW_VERSION is not newer than $VERSION"
dpkg-deb -R "$DEB" "$TMP/newer"
sed -i "s/^Version: .*/Version: $NEW_VERSION/" "$TMP/newer/DEBIAN/control"
DEB_NEW=$TMP/${PKG}_${NEW_VERSION}_amd64.deb
dpkg-deb -Zgzip -z1 --root-owner-group -b "$TMP/newer" "$DEB_NEW" >/dev/null
rm -rf "$TMP/newer"
ok "$DEB_NEW"

# --- a clean slate ---------------------------------------------------------------------
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q "install ok installed"; then
  step "removing the $PKG package left by an earlier run"
  "${SUDO[@]}" apt-get remove -y -qq "$PKG" >/dev/null
fi

# --- the user: a throwaway HOME, no credential store (OUTPOST_DB_KEY instead) ------------
HOME_DIR=$TMP/home
mkdir -p "$HOME_DIR"
export HOME=$HOME_DIR XDG_DATA_HOME=$HOME_DIR/.local/share XDG_CONFIG_HOME=$HOME_DIR/.config \
  XDG_CACHE_HOME=$HOME_DIR/.cache XDG_RUNTIME_DIR=$TMP/run
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_CACHE_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
unset OUTPOST_DATA_DIR OUTPOST_DB_PASSPHRASE
OUTPOST_DB_KEY=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export OUTPOST_DB_KEY DBUS_SESSION_BUS_ADDRESS= OUTPOST_PROBE_MAX_MS=1000
DATA_DIR=$XDG_DATA_HOME/outpost            # directories::ProjectDirs("", "", "Outpost")
# The log rolls daily by the UTC date (outpost-desktop.YYYY-MM-DD.log).
LOG=$XDG_DATA_HOME/org.outpost.desktop/logs/outpost-desktop.$(date -u +%F).log
cli() { "$CLI" --data-dir "$DATA_DIR" "$@"; }

# --- display and server -----------------------------------------------------------------
for n in $(seq 99 140); do [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] || { DNUM=$n; break; }; done
Xvfb ":$DNUM" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
XVFB_PID=$!
export DISPLAY=":$DNUM"
for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$DNUM" ] && break; sleep 0.1; done
[ -e "/tmp/.X11-unix/X$DNUM" ] || fail "Xvfb did not start on $DISPLAY"

SERVER_DB="sqlite:$TMP/server.db"
PORT=$(free_port)
export OUTPOST_SERVER_URL=http://127.0.0.1:$PORT
"$SERVER_BIN" seed --demo --items 200 --db "$SERVER_DB" >"$TMP/seed.log" 2>&1 || { cat "$TMP/seed.log"; fail "outpost-server seed"; }
start_server() {
  "$SERVER_BIN" serve --listen "127.0.0.1:$PORT" --db "$SERVER_DB" >>"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do curl -fsS "$OUTPOST_SERVER_URL/health" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "outpost-server did not answer on $OUTPOST_SERVER_URL (see $OUT/server.log)"
}
stop_server() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null; SERVER_PID=; }

# --- launching the installed app ---------------------------------------------------------
# Starts /usr/bin/outpost-desktop in its own process group and waits for its first
# `ui-ready` after this launch; sets SCREEN (what the UI reported) and LAST_LAUNCH (the
# log lines of this launch). Not for $(…): it sets globals.
launch() {
  local name=$1 before=0 line=
  [ -f "$LOG" ] && before=$(wc -l <"$LOG")
  setsid "$APP" >"$OUT/$name.stderr.log" 2>&1 &
  APP_PGID=$!
  for _ in $(seq 600); do
    line=$( [ -f "$LOG" ] && tail -n +"$((before + 1))" "$LOG" | grep -m1 'ui-ready' || true)
    [ -n "$line" ] && break
    kill -0 "$APP_PGID" 2>/dev/null || fail "$name: $APP exited before ui-ready (see $OUT/$name.stderr.log)"
    sleep 0.1
  done
  [ -n "$line" ] || fail "$name: no ui-ready in $LOG within 60 s"
  sleep 1
  import -display "$DISPLAY" -window root "$OUT/$name.png"
  local sd
  sd=$(convert "$OUT/$name.png" -colorspace Gray -format '%[fx:standard_deviation]' info:)
  python3 -c "import sys; sys.exit(0 if float('$sd') > 0.02 else 1)" || fail "$name: the screen is blank ($OUT/$name.png)"
  LAST_LAUNCH=$(tail -n +"$((before + 1))" "$LOG")
  SCREEN=$(sed -n 's/.*ui-ready.*screen=\([a-z-]*\).*/\1/p' <<<"$line")
}
quit_app() {
  stop_group "$APP_PGID"
  for _ in $(seq 100); do kill -0 "$APP_PGID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$APP_PGID" 2>/dev/null || true
  APP_PGID=
}

outbox_ids() { cli --json outbox list | jq -c '[.[] | .mutation_id] | sort'; }
check_outbox() {
  local now
  now=$(outbox_ids) || fail "$1: cannot read the outbox"
  [ "$now" = "$PENDING" ] || fail "$1: the outbox changed: before $PENDING, now $now"
  ok "$1: the outbox still holds the $(jq length <<<"$now") pending changes"
}
check_installed() {
  local v
  v=$(dpkg-query -W -f='${Version}' "$PKG")
  [ "$v" = "$1" ] || fail "installed $PKG $v, expected $1"
  [ -x "$APP" ] || fail "$APP is not installed"
  [ -f /usr/share/applications/Outpost.desktop ] || fail "no desktop entry"
  grep -q '^Exec=outpost-desktop' /usr/share/applications/Outpost.desktop || fail "the desktop entry does not start outpost-desktop"
  ls /usr/share/icons/hicolor/*/apps/outpost-desktop.png >/dev/null || fail "no icons"
  ok "$PKG $v installed: $APP, desktop entry, icons"
}

# === 1. install, first run ==============================================================
step "1. apt install $DEB"
"${SUDO[@]}" apt-get install -y -qq "$DEB" >"$OUT/apt-install.log" 2>&1 || { cat "$OUT/apt-install.log"; fail "apt install"; }
check_installed "$VERSION"
start_server

step "1. first launch of the installed app"
launch 10-first-run
[ "$SCREEN" = "first-run" ] || fail "first launch showed '$SCREEN', expected first-run"
grep -q "data_dir=$DATA_DIR" <<<"$LAST_LAUNCH" || fail "the app did not use $DATA_DIR: $(grep -m1 'starting' <<<"$LAST_LAUNCH")"
ok "ui-ready screen=first-run; data directory $DATA_DIR; screenshot $OUT/10-first-run.png"
quit_app

# === 2. sign in through the installed app's window =========================================
step "2. sign-in in the installed app (tauri-driver, WebDriver) against outpost-server"
DPORT=$(free_port); NPORT=$(free_port)
setsid tauri-driver --port "$DPORT" --native-port "$NPORT" >"$OUT/tauri-driver.log" 2>&1 &
DRIVER_PGID=$!
node --input-type=module - "$ROOT" "$DPORT" "$APP" "$OUT/20-signed-in.png" "$OUTPOST_SERVER_URL" <<'EOF' || fail "sign-in through the window (see $OUT/tauri-driver.log)"
import { writeFileSync } from 'node:fs';
const [root, port, app, shot, serverUrl] = process.argv.slice(2);
const { WebDriver } = await import(`${root}/ui/e2e/webdriver.mjs`);
const wd = new WebDriver(`http://127.0.0.1:${port}`);
try {
  await wd.start(app);
  const user = await wd.waitFor('[data-testid="signin-user"]', 60_000);
  const server = await wd.find('[data-testid="signin-server"]');
  const url = await wd.exec('return arguments[0].value', [{ 'element-6066-11e4-a52e-4f735466cecf': server }]);
  if (url !== serverUrl) throw new Error(`the sign-in form offers ${url}, expected ${serverUrl}`);
  await wd.type(user, 'tech1');
  await wd.type(await wd.find('[data-testid="signin-password"]'), 'outpost-demo');
  await wd.click(await wd.find('[data-testid="signin-submit"]'));
  await wd.waitUntil(`return document.querySelectorAll('[data-testid="order-row"]').length >= 1`, [], 90_000, 'the assigned orders arrive');
  writeFileSync(shot, await wd.screenshot());
  console.log('   ok: signed in as tech1; the orders arrived');
} finally {
  await wd.quit().catch(() => {});
}
EOF
stop_group "$DRIVER_PGID"; DRIVER_PGID=
sleep 1

DB=$DATA_DIR/outpost.db
[ -f "$DB" ] || fail "no database at $DB after sign-in"
[ "$(head -c 15 "$DB")" != "SQLite format 3" ] || fail "$DB is a plaintext SQLite file"
cli db check >"$OUT/db-check.log" 2>&1 || { cat "$OUT/db-check.log"; fail "outpost db check on the app's database"; }
set +e; OUTPOST_DB_KEY=$(printf '0%.0s' $(seq 64)) "$CLI" --data-dir "$DATA_DIR" orders list >/dev/null 2>&1; rc=$?; set -e
[ "$rc" -eq 4 ] || fail "a wrong key did not give the key error (exit $rc)"
ok "encrypted database $DB (no SQLite header; db check passes with the key; a wrong key is refused)"

# === 3. unsynced work, upgrade ===========================================================
step "3. unsynced work in the outbox (server stopped), then upgrade to $NEW_VERSION"
stop_server
ORDERS=$(cli --json orders list | jq -r '[.[] | select(.status == "scheduled" or .status == "in_progress" or .status == "en_route")][0:2][] | .id')
[ -n "$ORDERS" ] || fail "no open order to edit: $(cli orders list)"
NOTE="package test $(date +%s)"
for id in $ORDERS; do cli orders edit "$id" --note "$NOTE" >/dev/null; done
PENDING=$(outbox_ids)
[ "$(jq length <<<"$PENDING")" -ge 1 ] || fail "the edits left no pending change in the outbox"
ok "$(jq length <<<"$PENDING") pending changes: $PENDING"

"${SUDO[@]}" apt-get install -y -qq "$DEB_NEW" >"$OUT/apt-upgrade.log" 2>&1 || { cat "$OUT/apt-upgrade.log"; fail "apt upgrade"; }
check_installed "$NEW_VERSION"
check_outbox "after the upgrade"
launch 30-after-upgrade
[ "$SCREEN" = "orders" ] || fail "after the upgrade the app showed '$SCREEN', expected orders"
grep -q 'database opened' <<<"$LAST_LAUNCH" || fail "after the upgrade the app did not open its database"
quit_app
check_outbox "after the upgraded app ran"

# === 4. remove, reinstall ================================================================
step "4. apt remove, then install again"
"${SUDO[@]}" apt-get remove -y -qq "$PKG" >"$OUT/apt-remove.log" 2>&1 || { cat "$OUT/apt-remove.log"; fail "apt remove"; }
[ ! -e "$APP" ] || fail "$APP is still there after apt remove"
[ -f "$DB" ] || fail "apt remove deleted the user's database"
"${SUDO[@]}" apt-get install -y -qq "$DEB_NEW" >"$OUT/apt-reinstall.log" 2>&1 || { cat "$OUT/apt-reinstall.log"; fail "apt reinstall"; }
check_installed "$NEW_VERSION"
check_outbox "after remove and reinstall"
launch 40-after-reinstall
[ "$SCREEN" = "orders" ] || fail "after reinstalling the app showed '$SCREEN', expected orders"
quit_app
check_outbox "after the reinstalled app ran"

# === 5. the pending outbox still syncs ======================================================
step "5. the server is back: the pending outbox syncs"
start_server
cli sync >"$OUT/sync.log" 2>&1 || { cat "$OUT/sync.log"; fail "outpost sync"; }
[ "$(outbox_ids)" = "[]" ] || fail "the outbox is not empty after sync: $(cli outbox list)"
for id in $ORDERS; do
  cli --json orders show "$id" | jq -e --arg n "$NOTE" '(.sync_state // .order.sync_state) == "synced" and ([(.notes // .order.notes)[] | .text] | index($n))' >/dev/null \
    || fail "order $id is not synced with its note: $(cli --json orders show "$id")"
done
ok "outbox empty; the edited orders are synced with their notes"

# === 6. clean up ==========================================================================
step "6. apt remove"
"${SUDO[@]}" apt-get remove -y -qq "$PKG" >/dev/null
ok "removed"
