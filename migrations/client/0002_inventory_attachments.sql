-- Outpost local store, schema 2: the inventory cache and attachment metadata.

CREATE TABLE inventory (
    sku                TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    unit               TEXT NOT NULL,
    price_cents        INTEGER NOT NULL,
    total_stock_milli  INTEGER NOT NULL,
    -- The full item as JSON (protocol::InventoryItem).
    body               TEXT NOT NULL
) STRICT;
CREATE INDEX inventory_by_name ON inventory (name COLLATE NOCASE);

-- Attachment files live under attachments/ in the data directory, encrypted with the
-- data key kept in kv; this table is their index. Files are named by the SHA-256 of
-- their plaintext.
CREATE TABLE attachments (
    hash        TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    media_type  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    uploaded    INTEGER NOT NULL DEFAULT 0
) STRICT;
