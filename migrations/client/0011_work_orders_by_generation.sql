-- Outpost local store, schema 11: orders by the scope generation that last brought them.
--
-- The page that ends a snapshot removes (or marks) the orders the snapshot did not
-- bring: those of an older generation. Without an index that was a read of every
-- order's whole row (the generation column sits after the body, on its overflow
-- pages), decrypting the whole table once more at the end of a dispatcher's priming
-- of 100,000 orders. With it, the sweep reads only the orders it removes.
CREATE INDEX work_orders_by_generation ON work_orders (seen_gen);
