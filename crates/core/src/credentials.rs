//! The OS credential store, behind a small trait so tests can share state between
//! handles (keyring's own mock gives each entry its own memory).
//!
//! Entries are named by the database's own random id, so two data directories never
//! share or overwrite a key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

const SERVICE: &str = "outpost";

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("{0}")]
    Unavailable(String),
}

/// Where secrets live outside the database.
pub trait CredentialStore: Send + Sync {
    fn get(&self, name: &str) -> Result<Option<Zeroizing<String>>, CredentialError>;
    fn set(&self, name: &str, secret: &str) -> Result<(), CredentialError>;
    fn delete(&self, name: &str) -> Result<(), CredentialError>;
    /// A short description for messages ("Secret Service", "memory").
    fn describe(&self) -> &'static str;
}

/// The entry that holds the current key of database `db_id`.
pub fn current_key_entry(db_id: &str) -> String {
    format!("db-key:{db_id}")
}

/// The entry that holds a new key while a re-key is under way.
pub fn staged_key_entry(db_id: &str) -> String {
    format!("db-key-staged:{db_id}")
}

/// The platform's credential store through the keyring crate.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsCredentialStore;

fn entry(name: &str) -> Result<keyring::Entry, CredentialError> {
    keyring::Entry::new(SERVICE, name).map_err(|e| CredentialError::Unavailable(e.to_string()))
}

impl CredentialStore for OsCredentialStore {
    fn get(&self, name: &str) -> Result<Option<Zeroizing<String>>, CredentialError> {
        match entry(name)?.get_password() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(CredentialError::Unavailable(e.to_string())),
        }
    }

    fn set(&self, name: &str, secret: &str) -> Result<(), CredentialError> {
        entry(name)?
            .set_password(secret)
            .map_err(|e| CredentialError::Unavailable(e.to_string()))
    }

    fn delete(&self, name: &str) -> Result<(), CredentialError> {
        match entry(name)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(CredentialError::Unavailable(e.to_string())),
        }
    }

    fn describe(&self) -> &'static str {
        if cfg!(target_os = "macos") {
            "the macOS Keychain"
        } else if cfg!(target_os = "windows") {
            "the Windows Credential Manager"
        } else {
            "the Secret Service (GNOME Keyring, KWallet)"
        }
    }
}

/// An in-memory store shared by all its clones: for tests, and for embedders that
/// manage keys themselves.
#[derive(Debug, Default, Clone)]
pub struct MemoryCredentialStore {
    entries: Arc<Mutex<HashMap<String, String>>>,
    unavailable: bool,
}

impl MemoryCredentialStore {
    /// A store that answers like a machine without any credential store.
    pub fn unavailable() -> Self {
        MemoryCredentialStore {
            entries: Arc::default(),
            unavailable: true,
        }
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    fn check(&self) -> Result<(), CredentialError> {
        if self.unavailable {
            Err(CredentialError::Unavailable(
                "no credential store on this machine".into(),
            ))
        } else {
            Ok(())
        }
    }
}

impl CredentialStore for MemoryCredentialStore {
    fn get(&self, name: &str) -> Result<Option<Zeroizing<String>>, CredentialError> {
        self.check()?;
        let map = self
            .entries
            .lock()
            .map_err(|_| CredentialError::Unavailable("poisoned".into()))?;
        Ok(map.get(name).map(|s| Zeroizing::new(s.clone())))
    }

    fn set(&self, name: &str, secret: &str) -> Result<(), CredentialError> {
        self.check()?;
        let mut map = self
            .entries
            .lock()
            .map_err(|_| CredentialError::Unavailable("poisoned".into()))?;
        map.insert(name.to_owned(), secret.to_owned());
        Ok(())
    }

    fn delete(&self, name: &str) -> Result<(), CredentialError> {
        self.check()?;
        let mut map = self
            .entries
            .lock()
            .map_err(|_| CredentialError::Unavailable("poisoned".into()))?;
        map.remove(name);
        Ok(())
    }

    fn describe(&self) -> &'static str {
        "the in-memory credential store"
    }
}
