-- Outpost server schema v3: what each device last reported it has not sent (issue 15
-- item 5). A device sends the `x-outpost-unsent` header on its requests (count of
-- changes the server has not accepted, how many of them the device set aside itself,
-- the age of the oldest); the server keeps the latest figures per device and user so
-- that a fleet view can show a device holding work back. NULL until a device reports
-- (devices of releases before this one never do). `oldest_unsent_us` is the server's
-- time minus the reported age (microseconds since the Unix epoch), NULL when nothing
-- is unsent; `unsent_reported_us` is when the figures were recorded. Append-only: never
-- edit a released migration.

ALTER TABLE devices ADD COLUMN unsent_count BIGINT;
ALTER TABLE devices ADD COLUMN unsent_set_aside BIGINT;
ALTER TABLE devices ADD COLUMN oldest_unsent_us BIGINT;
ALTER TABLE devices ADD COLUMN unsent_reported_us BIGINT;
