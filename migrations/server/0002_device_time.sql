-- Outpost server schema v2: the device's clock beside the server's receive time.
-- Every applied change (the change log) and every idempotency record keeps the time
-- the device says the person acted (`device_us`, microseconds since the Unix epoch,
-- from the mutation's device_time) beside the server's own receive time (`created_us`).
-- NULL for rows written before this migration and for changes no device made (seeds,
-- administration). Append-only: never edit a released migration.

ALTER TABLE changes ADD COLUMN device_us BIGINT;
ALTER TABLE idempotency ADD COLUMN device_us BIGINT;
