#!/usr/bin/env bash
# The published contract against the real server: schemathesis (an OpenAPI conformance
# tester from PyPI, pinned below) reads `/openapi.json` from a live `outpost-server`
# (SQLite, demo fleet, loopback) and sends each operation generated valid and invalid
# requests with a dispatcher's token. Fails on any failed check (an undocumented
# status, a body that does not match its schema, a 5xx, an invalid input accepted, a
# valid one refused), on any error (an operation it could not test, a schema it could
# not read) and on any warning.
#
#   scripts/conformance.sh                 # what `make test` runs
#   OUTPOST_CONFORMANCE_EXAMPLES=200 scripts/conformance.sh    # a longer run
#   scripts/conformance.sh --report junit  # extra arguments go to `schemathesis run`
#   scripts/with-postgres.sh bash -c \
#     'OUTPOST_CONFORMANCE_DB=$OUTPOST_TEST_PG_URL scripts/conformance.sh'  # on PostgreSQL
#
# schemathesis lives in a virtual environment outside the clone, made on first use:
# OUTPOST_CONFORMANCE_VENV (default ~/.cache/outpost/schemathesis-VERSION).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${OUTPOST_CONFORMANCE_EXAMPLES:-25}
SEED=${OUTPOST_CONFORMANCE_SEED:-14}
CARGO=${CARGO:-cargo}
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
VENV=${OUTPOST_CONFORMANCE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/outpost/schemathesis-$SCHEMATHESIS_VERSION}
ST=$VENV/bin/schemathesis

# ---- schemathesis, pinned --------------------------------------------------------
if [ "$("$ST" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  echo "conformance: installing schemathesis $SCHEMATHESIS_VERSION into $VENV" >&2
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    echo "conformance: installing python3-venv" >&2
    export DEBIAN_FRONTEND=noninteractive
    SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \
      || { "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; }
  fi
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# ---- a live server ---------------------------------------------------------------
# The debug binary exactly as the workspace's tests build it (scripts/test.sh): cargo
# unifies features over what it builds together, so `build -p outpost-server` alone
# would make another binary in its place and the next test run would rebuild it. After
# `make test-rust` this builds nothing.
"$CARGO" test --quiet --workspace --exclude outpost-desktop --no-run
SERVER_BIN=$TARGET_DIR/debug/outpost-server

WORK=$(mktemp -d /tmp/outpost-conformance.XXXXXX)
SERVER=
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# SQLite in a temporary file, unless OUTPOST_CONFORMANCE_DB names a throwaway database
# (it gets the demo fleet and whatever schemathesis sends).
DB=${OUTPOST_CONFORMANCE_DB:-sqlite:$WORK/server.db}
echo "conformance: outpost-server on ${DB%%://*}" >&2
"$SERVER_BIN" seed --demo --items 200 --db "$DB" >/dev/null
NO_COLOR=1 OUTPOST_LOG=info "$SERVER_BIN" serve --listen 127.0.0.1:0 --db "$DB" 2>"$WORK/server.log" &
SERVER=$!
BASE=
for _ in $(seq 200); do
  BASE=$(grep -o 'listening on http://[0-9.:]*' "$WORK/server.log" | head -n 1 | sed 's/^listening on //' || true)
  [ -n "$BASE" ] && break
  kill -0 "$SERVER" 2>/dev/null || { echo "conformance: outpost-server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$BASE" ] || { echo "conformance: outpost-server did not say where it listens" >&2; exit 1; }

# Sign in as the demo dispatcher (who may call every operation), and find an order,
# store an attachment and add a document the dispatcher may read, so that the
# operations reading one by id or hash also get ids that exist.
read -r TOKEN ORDER HASH DOC < <(python3 - "$BASE" <<'PY'
import base64, hashlib, json, sys, urllib.request, uuid
base = sys.argv[1]
def call(path, body, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers)
    return json.load(urllib.request.urlopen(req, timeout=30))
token = call("/v1/auth/login", {"username": "dispatcher", "password": "outpost-demo",
                                "device_id": str(uuid.uuid4())})["access_token"]
page = call("/v1/pull", {"limit": 1}, token)
order = next(c["id"] for c in page["changes"] if c["entity"] == "work_order")
data = b"outpost conformance attachment"
digest = hashlib.sha256(data).hexdigest()
call("/v1/attachments-batch", {"files": [{"hash": digest,
     "data_base64": base64.b64encode(data).decode()}]}, token)
req = urllib.request.Request(base + "/v1/documents?name=conformance.txt&order=" + order,
                             data=b"outpost conformance document",
                             headers={"content-type": "application/octet-stream",
                                      "authorization": "Bearer " + token})
doc = json.load(urllib.request.urlopen(req, timeout=30))["id"]
print(token, order, digest, doc)
PY
) || true
[ -n "${DOC:-}" ] || { echo "conformance: could not sign in and set up test data" >&2; exit 1; }

# ---- the run ---------------------------------------------------------------------
# Every check, every warning fatal. Deterministic for a given seed, so a failure in CI
# reproduces locally with the same command. Exceptions, each because a schema cannot
# say what makes a well-formed value acceptable (the document describes the status):
# - a pull cursor is valid only if this server made it (400 `invalid_body` otherwise);
# - a chunk must start where the stored bytes end (409), end within `total` (400) and,
#   once the file is whole, hash to its name (422);
# - a document needs at least one link (a model, an asset or an order): three optional
#   query parameters of which one must be there (400 `invalid_body` otherwise);
# - `/metrics` takes its own token, not a user's, and the server here has none, so it
#   answers 401 to everything: it is left out (crates/server/tests/contract.rs holds
#   both its documented answers against a server that has one).
cat >"$WORK/schemathesis.toml" <<TOML
[warnings]
fail-on = true

[dictionaries.orders]
values = ["$ORDER", "$DOC"]

[dictionaries.attachments]
values = ["$HASH"]

[parameters]
"path.id" = { dictionary = "orders", probability = 0.5 }
"path.hash" = { dictionary = "attachments", probability = 0.5 }

[[operations]]
include-name = "POST /v1/pull"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "409"]

[[operations]]
include-name = "PUT /v1/attachments/{hash}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "409", "422"]

[[operations]]
include-name = "POST /v1/documents"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "413"]

[[operations]]
include-name = "GET /metrics"
enabled = false
TOML
set +e
# From inside the temporary folder: schemathesis keeps its state in `./.schemathesis`.
(cd "$WORK" && exec "$ST" --config-file "$WORK/schemathesis.toml" run "$BASE/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks all \
  --max-examples "$EXAMPLES" \
  --seed "$SEED" \
  --generation-database none \
  --request-timeout 20 \
  --no-color \
  "$@")
status=$?
set -e
if grep -q 'ERROR' "$WORK/server.log"; then
  echo "conformance: the server logged errors:" >&2
  grep 'ERROR' "$WORK/server.log" | head -n 20 >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "conformance: FAILED (schemathesis exit $status); the end of the server's log:" >&2
  tail -n 30 "$WORK/server.log" >&2
  exit "$status"
fi
echo "conformance: the server conforms to its OpenAPI document"
