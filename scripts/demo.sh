#!/usr/bin/env bash
# A walk through the `outpost` CLI on a fresh demo data directory: list orders, edit
# one, complete one, show the outbox. The demo's key is kept in a file beside the
# data so that the walk-through runs anywhere; real installations keep it in the OS
# credential store (see README).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${CARGO_TARGET_DIR:-target}/release/outpost
demo=${CARGO_TARGET_DIR:-target}/demo
rm -rf "$demo"
mkdir -p "$demo"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$demo/demo.key"
export OUTPOST_DATA_DIR="$demo/data"
OUTPOST_DB_KEY=$(cat "$demo/demo.key")
export OUTPOST_DB_KEY

step() { printf '\n\033[1m$ outpost %s\033[0m\n' "$*"; "$bin" "$@"; }

step init --user tech1
step demo load
step orders list
first=$("$bin" --json orders list | sed -n 's/^    "id": "\(.*\)",$/\1/p' | head -n 1)
step orders edit "$first" --status in_progress --note "Arrived on site, power isolated" \
  --check safety --part SEAL-22=1
step orders edit "$first" --check test --note "Pressure test passed"
# A signature as a technician's pad would produce it (a tiny PNG).
printf '\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00\x00\x0d\x49\x48\x44\x52\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90\x77\x53\xde\x00\x00\x00\x0c\x49\x44\x41\x54\x78\x9c\x63\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00\x00\x49\x45\x4e\x44\xae\x42\x60\x82' > "$demo/signature.png"
step orders complete "$first" --signature "$demo/signature.png" --signer "Kari Nordmann"
step orders create --title "Follow-up: replace corroded valve" --customer "Nordvik Bakery"
step orders list
step outbox list
step db check
printf '\nThe demo data is in %s (key in %s). Try: %s --data-dir %s orders show %s\n' \
  "$OUTPOST_DATA_DIR" "$demo/demo.key" "$bin" "$OUTPOST_DATA_DIR" "$first"
