-- Outpost local store, schema 8: stock per location (issue 23 item 3).
--
-- The pull carries every item's stock per location (a warehouse, each technician's
-- van), which until now lived only inside the item's JSON body. The part picker lists
-- the signed-in technician's van first with its quantity, and the Inventory screen has
-- "my van" and "warehouse" views, over up to 50,000 items: that is asked of SQL, so
-- each level is a row here. `van` is 1 for a van's location (protocol's
-- `stock::is_van`, decided by the program, not by SQL's LIKE). Written with the item
-- in the same transaction (`inventory.rs`); the migration's hook fills it for the
-- items already stored.
CREATE TABLE inventory_stock (
    location        TEXT NOT NULL,
    sku             TEXT NOT NULL,
    van             INTEGER NOT NULL CHECK (van IN (0, 1)),
    quantity_milli  INTEGER NOT NULL,
    PRIMARY KEY (location, sku)
) STRICT, WITHOUT ROWID;
-- An item's levels (replaced when the item is), and the warehouse quantity.
CREATE INDEX inventory_stock_by_sku ON inventory_stock (sku, van, quantity_milli);
