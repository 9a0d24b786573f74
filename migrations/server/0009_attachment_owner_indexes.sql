-- Outpost server schema v9: a user's files found by user (issue 24). The storage quota
-- sums the files a user holds and their uploads in progress; both tables' keys lead
-- with the file's hash, so that sum read every holder of every file. These indexes
-- lead with the user.
-- Append-only: never edit a released migration.

CREATE INDEX attachment_holders_by_user ON attachment_holders (username, hash);
CREATE INDEX attachment_uploads_by_user ON attachment_uploads (username, hash);
