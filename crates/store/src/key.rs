//! The 256-bit database key: made by a CSPRNG, parsed from hex, derived from a
//! passphrase. Never printed, zeroized when dropped.

use std::num::NonZeroU32;

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::StoreError;

/// A raw SQLCipher key. `Debug` shows nothing of it; the bytes are wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DbKey([u8; 32]);

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(<redacted>)")
    }
}

impl DbKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Result<DbKey, StoreError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::Random)?;
        Ok(DbKey(bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> DbKey {
        DbKey(bytes)
    }

    /// Parse 64 hex digits (the form of `OUTPOST_DB_KEY`).
    pub fn from_hex(text: &str) -> Result<DbKey, StoreError> {
        let text = Zeroizing::new(text.trim().to_owned());
        if text.len() != 64 {
            return Err(StoreError::BadKeyFormat);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut bytes).map_err(|_| StoreError::BadKeyFormat)?;
        Ok(DbKey(bytes))
    }

    /// The key as 64 hex digits, in a buffer wiped on drop.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }

    /// Derive a key from a passphrase and a stored random salt with PBKDF2-HMAC-SHA256:
    /// how key files of format 1 made the database key (`core` converts them to a
    /// wrapped random key; new passphrases go through Argon2id there).
    pub fn from_passphrase(passphrase: &str, salt: &[u8], iterations: u32) -> DbKey {
        let mut bytes = [0u8; 32];
        let iterations = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            salt,
            passphrase.as_bytes(),
            &mut bytes,
        );
        DbKey(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The raw key, in a buffer wiped on drop (for wrapping it under a passphrase).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0)
    }

    /// The key as SQLCipher's raw-key literal (`x'…'`), for binding as a parameter
    /// (`ATTACH … KEY ?`), in a buffer wiped on drop.
    pub(crate) fn raw_key_literal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", self.to_hex().as_str()))
    }

    /// The SQL that sets this key on a connection, in a buffer wiped on drop.
    pub(crate) fn pragma(&self, verb: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "PRAGMA {verb} = \"x'{}'\";",
            self.to_hex().as_str()
        ))
    }
}

/// Random bytes for salts and ids.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Random)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = DbKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{key:?}"), "DbKey(<redacted>)");
    }

    #[test]
    fn hex_keys_must_be_exactly_64_digits() {
        assert!(DbKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(DbKey::from_hex(&"ab".repeat(31)).is_err());
        assert!(DbKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn passphrase_keys_depend_on_the_salt() {
        let a = DbKey::from_passphrase("correct horse", b"salt-one", 1000);
        let b = DbKey::from_passphrase("correct horse", b"salt-two", 1000);
        let c = DbKey::from_passphrase("correct horse", b"salt-one", 1000);
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn generated_keys_differ() {
        let a = DbKey::generate().expect("random");
        let b = DbKey::generate().expect("random");
        assert_ne!(a, b);
    }
}
