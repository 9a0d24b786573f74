-- Outpost server schema v5: who made a reference to a file not stored yet (issue 19
-- item 4). A push may name a file before its bytes arrive (a photo whose upload waits
-- for a better link); `attachment_claims` records that its pusher named it unseen.
-- Such a user reads the file only as a holder (by sending its bytes), never through
-- the reference: bytes someone else uploads later are not theirs to read. A claim
-- goes when its user sends the bytes.
-- Existing references to files not stored are claimed for the order's assignee (the
-- one the reference would let read them).
-- Append-only: never edit a released migration.

CREATE TABLE attachment_claims (
    hash     TEXT NOT NULL,
    username TEXT NOT NULL,
    PRIMARY KEY (hash, username)
);

INSERT INTO attachment_claims (hash, username)
    SELECT DISTINCT oa.hash, o.assignee
    FROM order_attachments oa JOIN orders o ON o.id = oa.order_id
    WHERE o.assignee IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM attachments a WHERE a.hash = oa.hash AND a.complete <> 0);
