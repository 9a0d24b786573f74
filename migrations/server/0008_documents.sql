-- Outpost server schema v8: technical documents (issue 22). An administrator adds a
-- file (`outpost-server documents add`) and links it to equipment models, asset tags or
-- orders; a device caches the documents its open orders need.
-- documents: one row per document; `id` stays when a new file replaces it (`version`
-- counts the files, `sha256` and `size` are the current file's). `removed` (0/1) keeps
-- the row of a removed document, whose bytes are gone.
-- document_links: kind 'model' (an order's equipment.model), 'asset' (its
-- equipment.asset_tag) or 'order' (an order id); target is matched exactly.
-- document_blobs: the bytes by SHA-256. `data` holds small files; NULL means the file
-- `<documents dir>/<first two hex digits>/<sha256>` holds them (large files, kept out
-- of the database's rows).
-- Append-only: never edit a released migration.

CREATE TABLE documents (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    added_us   BIGINT NOT NULL,
    removed    BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE document_links (
    document_id TEXT NOT NULL,
    kind        TEXT NOT NULL,
    target      TEXT NOT NULL,
    PRIMARY KEY (document_id, kind, target)
);
CREATE INDEX document_links_target ON document_links (kind, target);

CREATE TABLE document_blobs (
    sha256 TEXT PRIMARY KEY,
    size   BIGINT NOT NULL,
    data   {{BINARY_TYPE}}
);
