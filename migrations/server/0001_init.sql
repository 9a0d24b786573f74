-- Outpost server schema v1, one file for SQLite and PostgreSQL. Append-only: never edit a
-- released migration. Byte strings are typed with the placeholder BINARY_TYPE in double
-- braces, which each backend replaces when it loads the file (BLOB on SQLite, BYTEA on
-- PostgreSQL); see crates/server/src/db/migrations.rs.
-- Times are microseconds since the Unix epoch (BIGINT) unless named *_at (RFC 3339).
-- Booleans are 0/1 integers so that the same SQL runs on both backends.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    disabled      BIGINT NOT NULL DEFAULT 0,
    created_us    BIGINT NOT NULL
);

-- A device as used by one user. Tokens issued before revoked_before_us stop working.
CREATE TABLE devices (
    device_id         TEXT NOT NULL,
    username          TEXT NOT NULL,
    revoked_before_us BIGINT NOT NULL DEFAULT 0,
    first_seen_us     BIGINT NOT NULL,
    last_seen_us      BIGINT NOT NULL,
    PRIMARY KEY (device_id, username)
);

CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    secret_hex TEXT NOT NULL,
    created_us BIGINT NOT NULL
);

-- Refresh tokens are stored hashed (SHA-256); the token itself is never kept.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    username    TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    issued_us   BIGINT NOT NULL,
    expires_us  BIGINT NOT NULL,
    replaced_by TEXT,
    replaced_us BIGINT,
    revoked     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (device_id, username);

CREATE TABLE orders (
    id         TEXT PRIMARY KEY,
    number     BIGINT,
    version    BIGINT NOT NULL,
    assignee   TEXT,
    body       TEXT NOT NULL,
    stamps     TEXT NOT NULL,
    updated_us BIGINT NOT NULL
);
CREATE INDEX orders_assignee ON orders (assignee, id);

-- Every version of every order: the base a later mutation was made on.
CREATE TABLE order_history (
    order_id TEXT NOT NULL,
    version  BIGINT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (order_id, version)
);

CREATE TABLE inventory (
    sku     TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    body    TEXT NOT NULL
);

CREATE TABLE stock_alerts (
    sku         TEXT NOT NULL,
    location    TEXT NOT NULL,
    name        TEXT NOT NULL,
    quantity_milli BIGINT NOT NULL,
    PRIMARY KEY (sku, location)
);

-- The change log. audience: 'all' (everyone), 'scoped' (staff, scope_user and
-- scope_user2), 'user' (scope_user only: a left_scope row).
CREATE TABLE changes (
    seq          BIGINT PRIMARY KEY,
    entity       TEXT NOT NULL,
    entity_id    TEXT NOT NULL,
    version      BIGINT NOT NULL,
    body         TEXT NOT NULL,
    mutation_ids TEXT NOT NULL,
    audience     TEXT NOT NULL,
    scope_user   TEXT,
    scope_user2  TEXT,
    created_us   BIGINT NOT NULL
);
CREATE INDEX changes_scope_user ON changes (scope_user, seq);
CREATE INDEX changes_scope_user2 ON changes (scope_user2, seq);
CREATE INDEX changes_created ON changes (created_us);

CREATE TABLE idempotency (
    username    TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    mutation_id TEXT NOT NULL,
    body_hash   TEXT NOT NULL,
    result      TEXT NOT NULL,
    created_us  BIGINT NOT NULL,
    PRIMARY KEY (username, device_id, mutation_id)
);
CREATE INDEX idempotency_created ON idempotency (created_us);

CREATE TABLE conflicts (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL,
    status     TEXT NOT NULL,
    assignee   TEXT,
    username   TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE INDEX conflicts_status ON conflicts (status, id);

CREATE TABLE failed_syncs (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL,
    status     TEXT NOT NULL,
    assignee   TEXT,
    username   TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_us BIGINT NOT NULL
);
CREATE INDEX failed_syncs_status ON failed_syncs (status, id);

CREATE TABLE attachments (
    hash        TEXT PRIMARY KEY,
    total       BIGINT,
    received    BIGINT NOT NULL,
    complete    BIGINT NOT NULL DEFAULT 0,
    uploaded_by TEXT NOT NULL,
    created_us  BIGINT NOT NULL
);

CREATE TABLE attachment_chunks (
    hash         TEXT NOT NULL,
    offset_bytes BIGINT NOT NULL,
    data         {{BINARY_TYPE}} NOT NULL,
    PRIMARY KEY (hash, offset_bytes)
);

CREATE TABLE order_attachments (
    hash     TEXT NOT NULL,
    order_id TEXT NOT NULL,
    PRIMARY KEY (hash, order_id)
);
