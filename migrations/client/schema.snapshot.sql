-- index document_orders_order
CREATE INDEX document_orders_order ON document_orders (order_id);

-- index inventory_by_name
CREATE INDEX inventory_by_name ON inventory (name COLLATE NOCASE);

-- index inventory_stock_by_sku
CREATE INDEX inventory_stock_by_sku ON inventory_stock (sku, van, quantity_milli);

-- index outbox_by_entity
CREATE INDEX outbox_by_entity ON outbox (entity_id, seq);

-- index outbox_sealed_by_mutation_id
CREATE UNIQUE INDEX outbox_sealed_by_mutation_id ON outbox (mutation_id)
WHERE state <> 'pending';

-- index sync_records_by_order
CREATE INDEX sync_records_by_order ON sync_records (order_id);

-- index work_orders_by_generation
CREATE INDEX work_orders_by_generation ON work_orders (seen_gen);

-- index work_orders_list
CREATE INDEX work_orders_list
    ON work_orders ((scheduled_start IS NULL), scheduled_start, number, id,
                    status, priority, assignee, search_text);

-- table attachments
CREATE TABLE attachments (
    hash        TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    media_type  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    uploaded    INTEGER NOT NULL DEFAULT 0
) STRICT;

-- table device
CREATE TABLE device (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    device_id   TEXT NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;

-- table document_orders
CREATE TABLE document_orders (
    document_id TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    PRIMARY KEY (document_id, order_id)
) STRICT;

-- table documents
CREATE TABLE documents (
    id         TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    cached     INTEGER NOT NULL DEFAULT 0,
    needed_at  TEXT NOT NULL,
    held       TEXT
) STRICT;

-- table inventory
CREATE TABLE inventory (
    sku                TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    unit               TEXT NOT NULL,
    price_cents        INTEGER NOT NULL,
    total_stock_milli  INTEGER NOT NULL,
    -- The full item as JSON (protocol::InventoryItem).
    body               TEXT NOT NULL
, seen_gen INTEGER NOT NULL DEFAULT 0) STRICT;

-- table inventory_stock
CREATE TABLE inventory_stock (
    location        TEXT NOT NULL,
    sku             TEXT NOT NULL,
    van             INTEGER NOT NULL CHECK (van IN (0, 1)),
    quantity_milli  INTEGER NOT NULL,
    PRIMARY KEY (location, sku)
) STRICT, WITHOUT ROWID;

-- table kv
CREATE TABLE kv (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
) STRICT;

-- table outbox
CREATE TABLE "outbox" (
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
, refusals INTEGER NOT NULL DEFAULT 0, set_aside_at TEXT) STRICT;

-- table sync_records
CREATE TABLE sync_records (
    entity      TEXT NOT NULL CHECK (entity IN ('conflict', 'failed_sync')),
    id          TEXT NOT NULL,
    order_id    TEXT,
    status      TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  TEXT NOT NULL, seen_gen INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (entity, id)
) STRICT;

-- table work_orders
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
, left_scope_to TEXT, seen_gen INTEGER NOT NULL DEFAULT 0, search_text TEXT NOT NULL DEFAULT '') STRICT;

-- trigger outbox_sealed_body_is_frozen
CREATE TRIGGER outbox_sealed_body_is_frozen
BEFORE UPDATE OF body ON outbox
WHEN OLD.state <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'outbox row is sealed: its body cannot change');
END;
