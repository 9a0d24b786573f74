-- Outpost server schema v4: who may use an attachment's bytes (issue 19 item 4).
-- A partial upload belongs to its uploader: `attachment_uploads` and
-- `attachment_upload_chunks` hold each user's upload in progress apart, so another user
-- can neither append to, overwrite nor delete it. `attachment_holders` lists, per file,
-- the users who sent its verified bytes (whoever references a file in a push must have
-- sent them or be able to read the file already; an uploader sends the bytes even when
-- the server has them). `attachments` and `attachment_chunks` keep complete files only.
-- Uploads in progress move to their uploader; complete files' uploaders become holders.
-- Append-only: never edit a released migration.

CREATE TABLE attachment_uploads (
    hash       TEXT NOT NULL,
    username   TEXT NOT NULL,
    total      BIGINT NOT NULL,
    received   BIGINT NOT NULL,
    created_us BIGINT NOT NULL,
    PRIMARY KEY (hash, username)
);

CREATE TABLE attachment_upload_chunks (
    hash         TEXT NOT NULL,
    username     TEXT NOT NULL,
    offset_bytes BIGINT NOT NULL,
    data         {{BINARY_TYPE}} NOT NULL,
    PRIMARY KEY (hash, username, offset_bytes)
);

CREATE TABLE attachment_holders (
    hash     TEXT NOT NULL,
    username TEXT NOT NULL,
    PRIMARY KEY (hash, username)
);

INSERT INTO attachment_holders (hash, username)
    SELECT hash, uploaded_by FROM attachments WHERE complete <> 0;
INSERT INTO attachment_uploads (hash, username, total, received, created_us)
    SELECT hash, uploaded_by, total, received, created_us FROM attachments
    WHERE complete = 0 AND total IS NOT NULL;
INSERT INTO attachment_upload_chunks (hash, username, offset_bytes, data)
    SELECT c.hash, a.uploaded_by, c.offset_bytes, c.data
    FROM attachment_chunks c JOIN attachments a ON a.hash = c.hash
    WHERE a.complete = 0 AND a.total IS NOT NULL;
DELETE FROM attachment_chunks WHERE hash IN (SELECT hash FROM attachments WHERE complete = 0);
DELETE FROM attachments WHERE complete = 0;
