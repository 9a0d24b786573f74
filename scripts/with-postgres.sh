#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL cluster on loopback, for the server's tests
# (they are ignored unless asked for, so ask):
#   scripts/with-postgres.sh cargo test -p outpost-server -- --include-ignored
# Installs Debian's postgresql package if it is missing, makes a cluster in a temporary
# folder owned by the postgres user (PostgreSQL refuses to run as root), starts it on
# 127.0.0.1 and a free port (TLS on, with a certificate made for the run:
# OUTPOST_TEST_PG_CA), exports OUTPOST_TEST_PG_URL, runs the command, and always stops
# and deletes the cluster.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

if [ -z "$(pg_bin)" ]; then
    echo "with-postgres: installing postgresql" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends postgresql >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends postgresql >/dev/null; }
fi
BIN="$(pg_bin)"
if [ -z "$BIN" ]; then
    echo "with-postgres: PostgreSQL binaries not found after install" >&2
    exit 1
fi

RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
    RUN_AS=(runuser -u postgres --)
fi

DIR="$(mktemp -d /tmp/outpost-pg.XXXXXX)"
chmod 755 "$DIR"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$DIR"
fi
PORT="${OUTPOST_TEST_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')}"

cleanup() {
    "${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

"${RUN_AS[@]}" "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
# TLS too (the server's `sslmode` tests, issue 19 item 9): a certificate authority made
# for this run, and the cluster's certificate for 127.0.0.1 and localhost signed by it
# (rustls, like any verifying client, refuses a CA certificate as a server's); clients
# that do not ask for TLS still connect without it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=outpost test CA" \
    -keyout "$DIR/ca.key" -out "$DIR/ca.crt" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$DIR/server.key" -out "$DIR/server.csr" >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$DIR/server.ext"
openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" -CAcreateserial \
    -days 2 -extfile "$DIR/server.ext" -out "$DIR/server.crt" >/dev/null 2>&1
chmod 600 "$DIR/server.key"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$DIR/server.key" "$DIR/server.crt"
fi
"${RUN_AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -w -l "$DIR/log" \
    -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c ssl=on -c ssl_cert_file=$DIR/server.crt -c ssl_key_file=$DIR/server.key" start >/dev/null

export OUTPOST_TEST_PG_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
# The authority a client verifies the test cluster's certificate with (`sslrootcert`).
export OUTPOST_TEST_PG_CA="$DIR/ca.crt"
echo "with-postgres: PostgreSQL on 127.0.0.1:$PORT (OUTPOST_TEST_PG_URL=$OUTPOST_TEST_PG_URL)" >&2
"$@"
