-- Outpost server schema v6: what the fleet view shows per device (issue 21 item 1).
-- `last_seen_us` is written when tokens are issued (sign-in, refresh); these record
-- the last push and the last pull page the server answered for the device (kept within
-- about a minute: `fleet.rs` writes them at most once a minute per device and kind),
-- and the app version its requests named (`User-Agent: outpost/<version>`). NULL until
-- the device pushes or pulls under a server of this version. Append-only: never edit a
-- released migration.

ALTER TABLE devices ADD COLUMN last_push_us BIGINT;
ALTER TABLE devices ADD COLUMN last_pull_us BIGINT;
ALTER TABLE devices ADD COLUMN app_version TEXT;
