-- Outpost server schema v6: the stock-move ledger (issue 23). Every change of an item's
-- stock at one location, with its time on the server, so that an inventory export from
-- the company's business system (ERP) can be applied exactly: the export's quantity is
-- the truth as of the time it was taken, and the parts used after that time (moves of
-- kind 'part' recorded after it) are subtracted again (docs/server.md, "Inventory from
-- the business system"). `inventory export` reads the parts used from here too.
-- kind: 'part' (a parts line of an order, pushed by a device or decided in a
-- resolution: delta_milli < 0 for parts used, > 0 for parts given back) or 'import'
-- (the correction an import made). order_id and technician (the order's assignee,
-- whose van the rule takes parts from) are set for 'part'. recorded_us is the server's
-- time, device_us the device's time of the change.
-- Append-only: never edit a released migration.

CREATE TABLE stock_moves (
    id          TEXT PRIMARY KEY,
    sku         TEXT NOT NULL,
    location    TEXT NOT NULL,
    delta_milli BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    order_id    TEXT,
    technician  TEXT,
    mutation_id TEXT,
    device_us   BIGINT,
    recorded_us BIGINT NOT NULL
);
CREATE INDEX stock_moves_item ON stock_moves (sku, location, recorded_us);
CREATE INDEX stock_moves_recorded ON stock_moves (recorded_us);
