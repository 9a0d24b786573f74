-- Outpost local store, schema 5: the outbox's mutation-id index holds sealed rows only.
--
-- A mutation id matters to the server (idempotency key, acknowledgements, failed syncs)
-- only once its row has been sent, and a row is sealed before its request leaves. Until
-- then the device finds a row by `seq` or through its order (`outbox_by_entity`). So
-- the unique index on `mutation_id` now covers rows whose state is not 'pending': an
-- action that appends a row enters two B-trees of the outbox instead of three (one
-- page fewer to encrypt and write per action; docs/benchmarks.md), and a row enters the
-- index when it is sealed, in the sending transaction. A pending row's id is checked
-- against its order's rows when it is recorded (outbox.rs).
--
-- SQLite cannot drop a column's UNIQUE constraint: the table is rebuilt with the same
-- columns, rows and `seq` values, then its index and trigger are made again.

CREATE TABLE outbox_v4 (
    seq              INTEGER PRIMARY KEY,
    mutation_id      TEXT NOT NULL,
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

INSERT INTO outbox_v4 (seq, mutation_id, device_id, entity, entity_id, kind, base_version,
                       body, created_at, attempts, next_attempt_at, state, last_error)
SELECT seq, mutation_id, device_id, entity, entity_id, kind, base_version,
       body, created_at, attempts, next_attempt_at, state, last_error
FROM outbox;

DROP TABLE outbox;
ALTER TABLE outbox_v4 RENAME TO outbox;

CREATE INDEX outbox_by_entity ON outbox (entity_id, seq);

-- Queries that look a row up by mutation id must say `state <> 'pending'` for SQLite to
-- use this index (a partial index serves only queries whose WHERE implies its own).
CREATE UNIQUE INDEX outbox_sealed_by_mutation_id ON outbox (mutation_id)
WHERE state <> 'pending';

-- A sealed row (sent at least once) is resent byte for byte: its body never changes.
CREATE TRIGGER outbox_sealed_body_is_frozen
BEFORE UPDATE OF body ON outbox
WHEN OLD.state <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'outbox row is sealed: its body cannot change');
END;
