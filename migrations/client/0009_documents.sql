-- Outpost local store, schema 8: technical documents cached for this device's orders
-- (issue 22).
--
-- `documents` mirrors the server's index (`GET /v1/documents`): one row per document
-- an open order of this device needs, in its current version. The bytes are a file
-- under `documents/` named by the keyed hash of `sha256` (Store::private_file_name),
-- encrypted in records (crates/store/src/documents.rs); `cached` is 1 once the whole
-- file is there and checked. `needed_at` is when a person last opened it (or when it
-- was first listed): the least recently needed go first when the budget is short.
-- `held` says why it is not kept: 'budget' (over the cache budget), else NULL.
-- `document_orders` says which local orders need each document.
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

CREATE TABLE document_orders (
    document_id TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    PRIMARY KEY (document_id, order_id)
) STRICT;
CREATE INDEX document_orders_order ON document_orders (order_id);
