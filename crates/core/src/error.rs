//! Errors at the use-case boundary: each says what happened and what to do, and maps to
//! a stable code (for the UI and `--json`) and a process exit code (for the CLI).

use outpost_protocol::ValidationErrors;
use outpost_store::{OpenError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0} is not an Outpost data directory yet: run `outpost init` first")]
    NotInitialized(String),
    #[error("{0} already holds an Outpost database; nothing was changed")]
    AlreadyInitialized(String),
    #[error("{0}")]
    WrongKey(String),
    #[error("{0}")]
    KeyMissing(String),
    #[error("{0}")]
    NoCredentialStore(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    NewerSchema(String),
    #[error("{0}")]
    NotEncrypted(String),
    #[error("the input is not valid, so nothing was saved")]
    Invalid(ValidationErrors),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadInput(String),
    #[error("the disk is full: free some space and try again (nothing was saved)")]
    DiskFull,
    /// Not enough free space for an operation that needs a known amount (a re-key).
    #[error("{0}")]
    NoSpace(String),
    /// Another Outpost process (or connection) has the database open.
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    Store(StoreError),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Sync(outpost_sync::SyncError),
    /// A dispatcher's command asked for by someone signed in as a technician.
    #[error("{0}")]
    DispatchersOnly(String),
    #[error("{0} change(s) have not reached the server yet: connect and let them sync (or have a dispatcher resolve them) before signing out")]
    UnsyncedWork(usize),
}

impl CoreError {
    /// A stable code for the UI and machine-readable output.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::NotInitialized(_) => "not_initialized",
            CoreError::AlreadyInitialized(_) => "already_initialized",
            CoreError::WrongKey(_) => "wrong_key",
            CoreError::KeyMissing(_) => "key_missing",
            CoreError::NoCredentialStore(_) => "no_credential_store",
            CoreError::Corrupt(_) => "corrupt",
            CoreError::NewerSchema(_) => "newer_schema",
            CoreError::NotEncrypted(_) => "not_encrypted",
            CoreError::Invalid(_) => "invalid",
            CoreError::NotFound(_) => "not_found",
            CoreError::BadInput(_) => "bad_input",
            CoreError::DiskFull | CoreError::NoSpace(_) => "disk_full",
            CoreError::InUse(_) => "in_use",
            CoreError::Store(_) => "store",
            CoreError::Io(_) => "io",
            CoreError::UnsyncedWork(_) => "unsynced_work",
            CoreError::DispatchersOnly(_) => "dispatchers_only",
            CoreError::Sync(e) => match e {
                outpost_sync::SyncError::Offline(_) => "offline",
                outpost_sync::SyncError::SignInRequired(_) => "sign_in_required",
                outpost_sync::SyncError::InvalidCredentials(_) => "invalid_credentials",
                outpost_sync::SyncError::NotSignedIn => "not_signed_in",
                outpost_sync::SyncError::Locked(_) => "locked",
                outpost_sync::SyncError::BadServerUrl(_) => "bad_server_url",
                outpost_sync::SyncError::Certificate { .. } => "certificate",
                _ => "sync_failed",
            },
        }
    }

    /// The CLI's exit code (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            CoreError::Invalid(_) | CoreError::BadInput(_) | CoreError::DispatchersOnly(_) => 3,
            CoreError::WrongKey(_) | CoreError::KeyMissing(_) | CoreError::NoCredentialStore(_) => {
                4
            }
            CoreError::Corrupt(_) | CoreError::NewerSchema(_) | CoreError::NotEncrypted(_) => 5,
            CoreError::NotFound(_) | CoreError::NotInitialized(_) => 6,
            CoreError::Sync(outpost_sync::SyncError::BadServerUrl(_)) => 3,
            CoreError::Sync(
                outpost_sync::SyncError::SignInRequired(_)
                | outpost_sync::SyncError::InvalidCredentials(_)
                | outpost_sync::SyncError::NotSignedIn,
            ) => 8,
            CoreError::Sync(outpost_sync::SyncError::Locked(_)) | CoreError::InUse(_) => 9,
            CoreError::Sync(_) => 7,
            _ => 1,
        }
    }

    /// Field errors, when the problem is invalid input.
    pub fn field_errors(&self) -> Option<&ValidationErrors> {
        match self {
            CoreError::Invalid(v) => Some(v),
            CoreError::Store(StoreError::Invalid(v)) => Some(v),
            _ => None,
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotEnoughSpace { .. } => CoreError::NoSpace(e.to_string()),
            StoreError::Invalid(v) => CoreError::Invalid(v),
            StoreError::OrderNotFound(id) => {
                CoreError::NotFound(format!("work order {id} is not on this device"))
            }
            StoreError::AttachmentNotFound(h) => {
                CoreError::NotFound(format!("attachment {h} is not on this device"))
            }
            e @ StoreError::DocumentNotCached(_) => CoreError::NotFound(e.to_string()),
            StoreError::DiskFull => CoreError::DiskFull,
            StoreError::InUse(m) => CoreError::InUse(m),
            StoreError::Corrupt(m) => CoreError::Corrupt(format!(
                "the database is damaged ({m}); restore it from a backup or sign in on a new data directory"
            )),
            other => CoreError::Store(other),
        }
    }
}

impl From<OpenError> for CoreError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::NotFound(p) => CoreError::NotInitialized(p),
            OpenError::CannotDecrypt => CoreError::WrongKey(e.to_string()),
            OpenError::NotEncrypted => CoreError::NotEncrypted(e.to_string()),
            OpenError::Corrupt(_) => CoreError::Corrupt(e.to_string()),
            OpenError::NewerSchema { .. } => CoreError::NewerSchema(e.to_string()),
            OpenError::Store(s) => s.into(),
        }
    }
}

impl From<ValidationErrors> for CoreError {
    fn from(v: ValidationErrors) -> Self {
        CoreError::Invalid(v)
    }
}
