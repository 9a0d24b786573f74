-- Outpost local store, schema 6: conflict and failed-sync records carry the snapshot
-- generation that last brought them, as orders and inventory items do (`seen_gen`).
--
-- A full snapshot (the first sync, or `resync_required`) brings every record the server
-- still has open for this user. The page that completes it removes the open records it
-- did not bring: resolved elsewhere while the device could not follow the log, or a
-- previous user's. Without the generation they stayed open on the device forever
-- (issue 15 item 3). Records from before this migration count as generation 0, older
-- than any snapshot.
ALTER TABLE sync_records ADD COLUMN seen_gen INTEGER NOT NULL DEFAULT 0;
