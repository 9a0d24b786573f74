-- Outpost local store, schema 3: what the sync engine keeps.

-- An order that left this device's scope (reassigned, deleted) while it still had
-- unsynced work stays, marked with who holds it now, until a person decides.
ALTER TABLE work_orders ADD COLUMN left_scope_to TEXT;
-- The snapshot generation that last saw the row: after a re-prime, rows from an older
-- generation without unsynced work are removed.
ALTER TABLE work_orders ADD COLUMN seen_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE inventory ADD COLUMN seen_gen INTEGER NOT NULL DEFAULT 0;

-- Conflicts and failed syncs as the server reports them (pulled, or from a push
-- answer), for the device's own views.
CREATE TABLE sync_records (
    entity      TEXT NOT NULL CHECK (entity IN ('conflict', 'failed_sync')),
    id          TEXT NOT NULL,
    order_id    TEXT,
    status      TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (entity, id)
) STRICT;
CREATE INDEX sync_records_by_order ON sync_records (order_id);
