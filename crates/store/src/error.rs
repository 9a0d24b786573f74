//! Errors of the local store. Messages say what happened and what a person can do.

use outpost_protocol::ValidationErrors;

/// Why a database could not be opened. The file is left exactly as it was in each case.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no database at {0}: run `outpost init` (or sign in) first")]
    NotFound(String),
    /// The key does not decrypt the first page. Without a key check value this could
    /// also be a damaged first page; `core` tells the two apart.
    #[error("the database key is wrong: this key does not decrypt the database")]
    CannotDecrypt,
    #[error("the database file is not encrypted: Outpost refuses to use a plaintext database")]
    NotEncrypted,
    #[error("the database file is damaged ({0}); restore it from a backup or re-sync a new data directory")]
    Corrupt(String),
    #[error("the database was written by a newer version of Outpost (schema {found}, this program knows up to {supported}); install the newer version")]
    NewerSchema { found: i64, supported: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Errors while using an open store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid input: {0}")]
    Invalid(#[from] ValidationErrors),
    #[error("work order {0} is not on this device")]
    OrderNotFound(String),
    #[error("attachment {0} is not on this device")]
    AttachmentNotFound(String),
    #[error("attachment {hash} is damaged: its content does not match its name")]
    AttachmentDamaged { hash: String },
    #[error("document {0} is not on this device (not yet downloaded, kept out by the documents budget, or no longer needed by an order here): sync while online")]
    DocumentNotCached(String),
    #[error(
        "document {0} is damaged on this device: it will be downloaded again on the next sync"
    )]
    DocumentDamaged(String),
    #[error("the file is too large ({size} bytes; the limit is {limit})")]
    TooLarge { size: u64, limit: u64 },
    #[error("a database key must be 64 hex digits")]
    BadKeyFormat,
    #[error("the system's random number generator failed")]
    Random,
    #[error("encryption failed")]
    Crypto,
    #[error("the disk is full: free some space and try again (nothing was saved)")]
    DiskFull,
    /// Refused before starting: the operation needs about `needed` bytes free in `dir`.
    #[error(
        "the re-key needs about {:.1} MB free in {dir} (it writes a re-encrypted copy of the \
         database before replacing it) and only {:.1} MB is free: free some space and try \
         again; nothing was changed",
        *needed as f64 / 1e6,
        *available as f64 / 1e6
    )]
    NotEnoughSpace {
        needed: u64,
        available: u64,
        dir: String,
    },
    /// Another store has the database open (or a re-key holds it): the message says
    /// what to close.
    #[error("{0}")]
    InUse(String),
    #[error(
        "the database is damaged ({0}); restore it from a backup or re-sync a new data directory"
    )]
    Corrupt(String),
    #[error(
        "mutation {0} is already queued: the same action was recorded twice (nothing was saved)"
    )]
    DuplicateMutation(String),
    #[error("stored data could not be read: {0}")]
    Decode(String),
    #[error("database error: {0}")]
    Sql(rusqlite::Error),
    #[error("schema migration failed: {0}")]
    Migration(String),
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Sql(e),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Decode(e.to_string())
    }
}
