//! Errors of the server: an [`ApiError`] is an answer for the client (HTTP status and
//! a stable [`ErrorCode`]); a store error is logged in full and answered as a bare
//! `internal` 500, so no SQL, path or secret ever reaches a client.

use outpost_protocol::validate::FieldError;
use outpost_protocol::wire::{ErrorBody, ErrorCode};

/// An error answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    pub fn with_fields(mut self, fields: Vec<FieldError>) -> Self {
        self.body.field_errors = fields;
        self
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::new(400, code, message)
    }

    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::new(401, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, ErrorCode::NotFound, message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {}", .0.body.code, .0.body.message)]
    Api(ApiError),
    /// A storage failure: logged, answered as `internal`.
    #[error("storage: {0}")]
    Store(String),
    /// The store is unreachable: answered as `unavailable` (retryable).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database's disk is full (SQLite's `SQLITE_FULL`, PostgreSQL's `53100`): logged
    /// as such for the administrator, answered as `unavailable` with a message that
    /// says so (retryable: the device keeps the work and sends it once space is freed).
    #[error("the database's disk is full: {0}")]
    DiskFull(String),
}

impl Error {
    pub fn store(msg: impl Into<String>) -> Self {
        Error::Store(msg.into())
    }

    pub fn api(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Api(ApiError::new(status, code, message))
    }
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error::Api(e)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, _) = &e {
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) {
                return Error::Unavailable(e.to_string());
            }
            if f.code == rusqlite::ErrorCode::DiskFull {
                return Error::DiskFull(e.to_string());
            }
        }
        Error::Store(e.to_string())
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() {
            return Error::Unavailable(e.to_string());
        }
        match e.as_db_error() {
            Some(db) if *db.code() == tokio_postgres::error::SqlState::DISK_FULL => {
                Error::DiskFull(db.message().to_owned())
            }
            Some(db) => Error::Store(format!("{}: {}", db.code().code(), db.message())),
            None => Error::Unavailable(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Store(format!("stored JSON: {e}"))
    }
}
