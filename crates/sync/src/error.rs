//! Sync errors, each saying whether trying again can help.

use std::time::Duration;

use outpost_protocol::wire::ErrorCode;
use outpost_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the sync server cannot be reached ({0}); your work is saved on this device and will be sent when it can")]
    Offline(String),
    #[error("the sync server answered {status} {code}: {message}")]
    Server {
        status: u16,
        code: ErrorCode,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("the server's certificate was refused ({detail}){}", if *maybe_clock { "; this often means the computer's clock is wrong: check the date and time" } else { "" })]
    Certificate { detail: String, maybe_clock: bool },
    #[error("the server's answer was not understood: {0}")]
    BadAnswer(String),
    #[error("{0}")]
    BadServerUrl(String),
    #[error("the session expired ({0})")]
    Unauthorized(String),
    #[error("sign in again: {0} (unsynced work is kept on this device)")]
    SignInRequired(String),
    #[error("the user name or password is wrong")]
    InvalidCredentials(String),
    #[error("not signed in: run `outpost login` (or sign in in the app) first")]
    NotSignedIn,
    #[error("the server asked for a full re-sync")]
    ResyncRequired,
    #[error("{0}")]
    Locked(String),
    #[error("local store: {0}")]
    Store(#[from] StoreError),
}

impl SyncError {
    /// Whether the same work may succeed later without a person doing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            SyncError::Offline(_) | SyncError::BadAnswer(_) | SyncError::Unauthorized(_) => true,
            SyncError::Server { status, code, .. } => {
                *status >= 500 || *status == 429 || code.is_transient()
            }
            SyncError::Certificate { .. } => true,
            _ => false,
        }
    }

    /// Whether the server could not be reached at all (as opposed to answering badly).
    pub fn is_offline(&self) -> bool {
        matches!(self, SyncError::Offline(_))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
