-- Outpost local store, schema 7: what the device itself set aside (issue 15 items 4, 5).
--
-- A push refused as a whole (413 from a proxy, 400 from a server that cannot parse one
-- of its mutations, an answer that never matches) is split until the mutation that
-- causes it is alone. `refusals` counts how often that mutation was then refused on its
-- own; after a bounded number it is set aside: `state = 'failed'` with the reason, like
-- a refusal by the server, and `set_aside_at` says when the device did it. The same
-- holds for a completion whose photo or signature file is missing or damaged here. A
-- set-aside mutation never reached the server (which keeps no failed-sync record of it),
-- so the device reports how many it holds on each request.
ALTER TABLE outbox ADD COLUMN refusals INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN set_aside_at TEXT;
