-- Outpost local store, schema 1: the device, settings, work orders and the outbox.
-- Released migrations are never edited; add a new numbered file instead.

-- The device's identity, made once per data directory and kept across sign-ins.
CREATE TABLE device (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    device_id   TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

-- Small settings and secrets that live inside the encrypted database
-- (session tokens, the attachment data key, the pull cursor).
CREATE TABLE kv (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) STRICT;

-- Work orders as the technician sees them: the server's row with pending work applied.
CREATE TABLE work_orders (
    id               TEXT PRIMARY KEY,
    number           INTEGER,
    title            TEXT NOT NULL,
    status           TEXT NOT NULL,
    priority         TEXT NOT NULL,
    assignee         TEXT,
    scheduled_start  TEXT,
    -- The full local order as JSON (protocol::WorkOrder).
    body             TEXT NOT NULL,
    -- The last row the server sent (JSON), the base that pending work is rebased on;
    -- NULL for an order the server has not acknowledged yet.
    server_body      TEXT,
    server_version   INTEGER NOT NULL DEFAULT 0,
    updated_at       TEXT NOT NULL
) STRICT;
CREATE INDEX work_orders_by_schedule ON work_orders (status, scheduled_start);

-- The outbox: one row per recorded user action, in order.
CREATE TABLE outbox (
    seq              INTEGER PRIMARY KEY,
    mutation_id      TEXT NOT NULL UNIQUE,
    device_id        TEXT NOT NULL,
    entity           TEXT NOT NULL,
    entity_id        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    base_version     INTEGER NOT NULL,
    -- The mutation as JSON (protocol::Mutation). Frozen once the row is sealed.
    body             TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    -- pending: never sent, may coalesce; sent: sealed, waiting for an answer;
    -- failed: rejected by the server, kept for a person.
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'sent', 'failed')),
    last_error       TEXT
) STRICT;
CREATE INDEX outbox_by_entity ON outbox (entity_id, seq);

-- A sealed row (sent at least once) is resent byte for byte: its body never changes.
CREATE TRIGGER outbox_sealed_body_is_frozen
BEFORE UPDATE OF body ON outbox
WHEN OLD.state <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'outbox row is sealed: its body cannot change');
END;
