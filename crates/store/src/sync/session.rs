//! The signed-in session: who is signed in, on which server, with which tokens.
//!
//! It is kept inside the encrypted database, so a machine without a credential store
//! signs in like any other, and its `Debug` hides the tokens. Left out on purpose:
//! getting, refreshing and revoking tokens is the sync engine's (it talks to the
//! server); this file only keeps them.

use chrono::{DateTime, Utc};
use outpost_protocol::Role;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{kv_delete, kv_get, kv_set, KV_SESSION};
use crate::db::Store;
use crate::error::StoreError;

/// A signed-in session. Kept inside the encrypted database so a machine without a
/// credential store signs in like any other. `Debug` hides the tokens.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub server_url: String,
    pub username: String,
    pub role: Role,
    pub device_id: Uuid,
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    /// Set when the server said the tokens will never work again (revoked device,
    /// disabled user): the person must sign in again; unsynced work is kept.
    #[serde(default)]
    pub needs_sign_in: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server_url", &self.server_url)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("device_id", &self.device_id)
            .field("access_expires_at", &self.access_expires_at)
            .field("needs_sign_in", &self.needs_sign_in)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub fn session(&self) -> Result<Option<Session>, StoreError> {
        kv_get(&self.conn, KV_SESSION)?
            .map(|s| serde_json::from_str(&s).map_err(StoreError::from))
            .transpose()
    }

    pub fn set_session(&mut self, session: &Session) -> Result<(), StoreError> {
        kv_set(&self.conn, KV_SESSION, &serde_json::to_string(session)?)
    }

    pub fn clear_session(&mut self) -> Result<(), StoreError> {
        kv_delete(&self.conn, KV_SESSION)
    }
}
