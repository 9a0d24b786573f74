//! The passphrase's key-encryption key: Argon2id of the passphrase (memory-hard, its
//! parameters recorded in the key file) wraps the random database key with
//! AES-256-GCM (ring). Unlocking costs one Argon2id derivation; changing the
//! passphrase rewraps the same database key, so the database is never rewritten.
//!
//! The wrapped key's associated data names the database (`db_id`), so a wrapped key
//! copied into another data directory's key file does not unwrap there.

use argon2::{Algorithm, Argon2, Params, Version};
use outpost_store::{random_bytes, DbKey};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::CoreError;

/// The algorithm names written in the key file.
pub const ARGON2ID: &str = "argon2id";
pub const PBKDF2_SHA256: &str = "pbkdf2-hmac-sha256";
pub const AES_256_GCM_NAME: &str = "aes-256-gcm";

/// Argon2id's cost for new key files: 64 MiB, 3 passes, 1 lane (above OWASP's minimum
/// of 19 MiB and 2 passes; about a quarter of a second on a current laptop).
pub const MEMORY_KIB: u32 = 64 * 1024;
pub const TIME_COST: u32 = 3;
pub const PARALLELISM: u32 = 1;

/// The most a key file may ask for: a damaged or hostile key file must not make an
/// unlock allocate gigabytes or run for minutes.
const MEMORY_KIB_MAX: u32 = 1024 * 1024;
const TIME_COST_MAX: u32 = 64;
const PARALLELISM_MAX: u32 = 16;

/// How a key-encryption key is derived from a passphrase, as the key file records it.
/// Earlier key files (format 1) hold PBKDF2's `iterations` and derive the database key
/// itself; Argon2id ones (format 2) hold the three costs and derive the wrapping key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    pub algorithm: String,
    pub salt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_kib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_cost: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
}

/// The database key, encrypted under the key-encryption key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    pub algorithm: String,
    pub nonce: String,
    /// The 32-byte key and GCM's 16-byte tag, hex.
    pub ciphertext: String,
}

fn damaged(what: &str) -> CoreError {
    CoreError::Corrupt(format!(
        "the key file's {what} is damaged; restore the key file from a backup"
    ))
}

impl Kdf {
    /// Fresh Argon2id parameters with a new random salt.
    pub fn new_argon2id() -> Result<Kdf, CoreError> {
        Ok(Kdf {
            algorithm: ARGON2ID.into(),
            salt: hex::encode(random_bytes::<16>()?),
            iterations: None,
            memory_kib: Some(MEMORY_KIB),
            time_cost: Some(TIME_COST),
            parallelism: Some(PARALLELISM),
        })
    }

    fn salt(&self) -> Result<Vec<u8>, CoreError> {
        hex::decode(&self.salt).map_err(|_| damaged("salt"))
    }

    /// The key-encryption key of `passphrase` (Argon2id only).
    fn derive_kek(&self, passphrase: &str) -> Result<Zeroizing<[u8; 32]>, CoreError> {
        if self.algorithm != ARGON2ID {
            return Err(damaged("key derivation"));
        }
        let (Some(m), Some(t), Some(p)) = (self.memory_kib, self.time_cost, self.parallelism)
        else {
            return Err(damaged("Argon2id parameters"));
        };
        if m > MEMORY_KIB_MAX || t > TIME_COST_MAX || p > PARALLELISM_MAX {
            return Err(damaged("Argon2id parameters (out of range)"));
        }
        let params = Params::new(m, t, p, Some(32)).map_err(|_| damaged("Argon2id parameters"))?;
        let mut kek = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.as_bytes(), &self.salt()?, kek.as_mut())
            .map_err(|_| damaged("Argon2id parameters"))?;
        Ok(kek)
    }

    /// The database key of an earlier (PBKDF2, format 1) key file: derived directly.
    pub fn legacy_key(&self, passphrase: &str) -> Result<DbKey, CoreError> {
        if self.algorithm != PBKDF2_SHA256 {
            return Err(damaged("key derivation"));
        }
        let iterations = self
            .iterations
            .ok_or_else(|| damaged("PBKDF2 iterations"))?;
        Ok(DbKey::from_passphrase(
            passphrase,
            &self.salt()?,
            iterations,
        ))
    }
}

fn aad(db_id: &str) -> String {
    format!("outpost database key v1 {db_id}")
}

fn cipher(kek: &[u8; 32]) -> Result<LessSafeKey, CoreError> {
    UnboundKey::new(&AES_256_GCM, kek)
        .map(LessSafeKey::new)
        .map_err(|_| CoreError::Io("encryption failed".into()))
}

/// Wrap `key` for database `db_id` under the key-encryption key of `passphrase`.
pub fn wrap(
    kdf: &Kdf,
    passphrase: &str,
    db_id: &str,
    key: &DbKey,
) -> Result<WrappedKey, CoreError> {
    let kek = kdf.derive_kek(passphrase)?;
    let nonce = random_bytes::<NONCE_LEN>()?;
    let mut sealed = Zeroizing::new(key.to_bytes().to_vec());
    cipher(&kek)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(db_id).as_bytes()),
            &mut *sealed,
        )
        .map_err(|_| CoreError::Io("encryption failed".into()))?;
    Ok(WrappedKey {
        algorithm: AES_256_GCM_NAME.into(),
        nonce: hex::encode(nonce),
        ciphertext: hex::encode(&*sealed),
    })
}

/// Unwrap the database key with `passphrase`: `Ok(None)` when the passphrase is wrong
/// (the tag does not verify), an error when the key file is damaged.
pub fn unwrap(
    kdf: &Kdf,
    wrapped: &WrappedKey,
    passphrase: &str,
    db_id: &str,
) -> Result<Option<DbKey>, CoreError> {
    if wrapped.algorithm != AES_256_GCM_NAME {
        return Err(damaged("wrapped key"));
    }
    let nonce = hex::decode(&wrapped.nonce).map_err(|_| damaged("wrapped key"))?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| damaged("wrapped key"))?;
    let mut buf =
        Zeroizing::new(hex::decode(&wrapped.ciphertext).map_err(|_| damaged("wrapped key"))?);
    let kek = kdf.derive_kek(passphrase)?;
    let Ok(plain) = cipher(&kek)?.open_in_place(nonce, Aad::from(aad(db_id).as_bytes()), &mut buf)
    else {
        return Ok(None);
    };
    let bytes: [u8; 32] = plain.try_into().map_err(|_| damaged("wrapped key"))?;
    Ok(Some(DbKey::from_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Kdf {
        Kdf {
            memory_kib: Some(64),
            time_cost: Some(1),
            ..Kdf::new_argon2id().expect("kdf")
        }
    }

    #[test]
    fn a_wrapped_key_unwraps_with_its_passphrase_and_database_only() {
        let kdf = cheap();
        let key = DbKey::generate().expect("key");
        let w = wrap(&kdf, "pass phrase one", "db-a", &key).expect("wrap");
        assert_eq!(
            unwrap(&kdf, &w, "pass phrase one", "db-a").expect("ok"),
            Some(key)
        );
        assert_eq!(
            unwrap(&kdf, &w, "pass phrase two", "db-a").expect("ok"),
            None
        );
        assert_eq!(
            unwrap(&kdf, &w, "pass phrase one", "db-b").expect("ok"),
            None
        );
    }

    #[test]
    fn out_of_range_costs_are_refused_as_damage_not_run() {
        let kdf = Kdf {
            memory_kib: Some(u32::MAX),
            ..cheap()
        };
        let key = DbKey::generate().expect("key");
        let err = wrap(&kdf, "pass phrase one", "db", &key).expect_err("refused");
        assert_eq!(err.code(), "corrupt");
    }
}
