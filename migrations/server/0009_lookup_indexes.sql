-- Outpost server schema v9: indexes for lookups that read whole tables (issue 24: the
-- reconnect's profile). The storage quota sums the files a user holds and their uploads
-- in progress, and both tables' keys lead with the file's hash; an order's files are
-- replaced by order, and `order_attachments`' key leads with the hash too. Each of those
-- read every row of its table per call, so a push or a batch upload got slower as the
-- server's data grew. These indexes lead with the user and the order.
-- Append-only: never edit a released migration.

CREATE INDEX attachment_holders_by_user ON attachment_holders (username, hash);
CREATE INDEX attachment_uploads_by_user ON attachment_uploads (username, hash);
CREATE INDEX order_attachments_by_order ON order_attachments (order_id);
