//! Authentication: Argon2id passwords, signed access tokens, rotating refresh tokens
//! bound to a device, login rate limiting.
//!
//! Access tokens are `v1.<payload>.<HMAC-SHA256>` (base64url), signed with a key kept
//! in the store, so they survive a restart and every instance over one PostgreSQL
//! database accepts them. Each request still checks the user and device rows, so
//! disabling a user or revoking a device takes effect at once. Refresh tokens are
//! random, stored only as their SHA-256, and rotate on every use; the previous one is
//! accepted for a short grace period (a lost reply), and reuse after that revokes the
//! device (it was probably stolen). Nothing here logs a secret: tokens and passwords
//! never reach a `tracing` field.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use outpost_protocol::wire::{ErrorCode, TokenResponse};
use outpost_protocol::Role;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{PasswordCost, ServerConfig};
use crate::db::Sql;
use crate::error::{ApiError, Error};
use crate::repo;

/// Who is calling, once their access token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub username: String,
    pub role: Role,
    pub device_id: Uuid,
}

impl Principal {
    pub fn is_staff(&self) -> bool {
        self.role.sees_all_orders()
    }
}

fn argon(cost: PasswordCost) -> Result<Argon2<'static>, Error> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| Error::store(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash a password with Argon2id (a PHC string carrying its own parameters).
pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| Error::store("no randomness for a salt"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::store(format!("salt: {e}")))?;
    Ok(argon(cost)?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::store(format!("argon2: {e}")))?
        .to_string())
}

/// Check a password against a stored hash (with the hash's own parameters).
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::store("no randomness"))?;
    Ok(b)
}

pub use outpost_protocol::sha256_hex;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    dev: Uuid,
    /// Issued at, microseconds.
    iat: i64,
    /// Expires at, microseconds.
    exp: i64,
    kid: String,
}

/// The signing keys, loaded from the store (newest first).
pub struct Keys {
    keys: RwLock<Vec<(String, ring::hmac::Key)>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    /// Load the signing keys, creating the first one if the store has none.
    pub fn load(sql: &mut dyn Sql, now_us: i64) -> Result<Keys, Error> {
        let mut stored = repo::signing_keys(sql)?;
        if stored.is_empty() {
            let kid = Uuid::new_v4().simple().to_string();
            let secret = hex::encode(random_bytes::<32>()?);
            repo::insert_signing_key(sql, &kid, &secret, now_us)?;
            stored = repo::signing_keys(sql)?;
        }
        let mut keys = Vec::new();
        for (kid, secret_hex) in stored {
            let secret =
                hex::decode(&secret_hex).map_err(|e| Error::store(format!("signing key: {e}")))?;
            keys.push((kid, ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)));
        }
        Ok(Keys {
            keys: RwLock::new(keys),
        })
    }

    fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let (_, key) = keys
            .iter()
            .find(|(kid, _)| *kid == claims.kid)
            .ok_or_else(|| Error::store("signing key missing"))?;
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
        let signed = format!("v1.{payload}");
        let tag = ring::hmac::sign(key, signed.as_bytes());
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())))
    }

    fn current_kid(&self) -> Result<String, Error> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.first()
            .map(|(k, _)| k.clone())
            .ok_or_else(|| Error::store("no signing key"))
    }

    fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let invalid = || {
            ApiError::unauthorized(
                ErrorCode::TokenInvalid,
                "the access token is not valid; sign in again",
            )
        };
        let (signed, tag) = token.rsplit_once('.').ok_or_else(invalid)?;
        let payload = signed.strip_prefix("v1.").ok_or_else(invalid)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(invalid)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let (_, key) = keys
            .iter()
            .find(|(kid, _)| *kid == claims.kid)
            .ok_or_else(invalid)?;
        ring::hmac::verify(key, signed.as_bytes(), &tag).map_err(|_| invalid())?;
        Ok(claims)
    }
}

/// Failed-login counter per user and per address, in memory (per instance).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// Seconds to wait if any of `keys` has used up its failures, else `None`.
    pub fn blocked(&self, keys: &[String], max: u32, window: Duration) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let mut wait = None;
        for k in keys {
            if let Some(q) = map.get_mut(k) {
                while q.front().is_some_and(|t| now.duration_since(*t) > window) {
                    q.pop_front();
                }
                if q.len() >= max as usize {
                    let oldest = q.front().copied().unwrap_or(now);
                    let secs = window
                        .saturating_sub(now.duration_since(oldest))
                        .as_secs()
                        .max(1);
                    wait = Some(wait.map_or(secs, |w: u64| w.max(secs)));
                }
            }
        }
        // Bound memory: forget idle keys when the map grows large.
        if map.len() > 100_000 {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) <= window));
        }
        wait
    }

    pub fn record_failure(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for k in keys {
            let q = map.entry(k.clone()).or_default();
            q.push_back(now);
            if q.len() > 1000 {
                q.pop_front();
            }
        }
    }

    pub fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Issue an access token and a new refresh token for a user on a device.
pub fn issue(
    sql: &mut dyn Sql,
    keys: &Keys,
    cfg: &ServerConfig,
    username: &str,
    role: Role,
    device: Uuid,
) -> Result<(TokenResponse, String), Error> {
    let now = cfg.now();
    let now_us = now.timestamp_micros();
    let access_exp =
        now + chrono::Duration::from_std(cfg.access_ttl).unwrap_or(chrono::Duration::minutes(15));
    let refresh_exp =
        now + chrono::Duration::from_std(cfg.refresh_ttl).unwrap_or(chrono::Duration::days(60));
    let claims = Claims {
        sub: username.to_owned(),
        dev: device,
        iat: now_us,
        exp: access_exp.timestamp_micros(),
        kid: keys.current_kid()?,
    };
    let access = keys.sign(&claims)?;
    let refresh = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    let refresh_hash = sha256_hex(refresh.as_bytes());
    repo::insert_refresh(
        sql,
        &refresh_hash,
        username,
        device,
        now_us,
        refresh_exp.timestamp_micros(),
    )?;
    repo::touch_device(sql, device, username, now_us)?;
    Ok((
        TokenResponse {
            access_token: access,
            access_expires_at: access_exp,
            refresh_token: refresh,
            refresh_expires_at: refresh_exp,
            username: username.to_owned(),
            role,
            device_id: device,
            server_time: now,
        },
        refresh_hash,
    ))
}

/// Check an access token and the user and device rows behind it.
pub fn authenticate(
    sql: &mut dyn Sql,
    keys: &Keys,
    cfg: &ServerConfig,
    token: &str,
) -> Result<Principal, Error> {
    let claims = keys.verify(token)?;
    if claims.exp <= cfg.now_us() {
        return Err(ApiError::unauthorized(
            ErrorCode::TokenExpired,
            "the access token has expired; refresh it",
        )
        .into());
    }
    let user = repo::get_user(sql, &claims.sub)?.ok_or_else(|| {
        ApiError::unauthorized(
            ErrorCode::TokenInvalid,
            "the access token is not valid; sign in again",
        )
    })?;
    if user.disabled {
        return Err(ApiError::new(
            403,
            ErrorCode::UserDisabled,
            "this account is disabled; ask an administrator",
        )
        .into());
    }
    if claims.iat <= repo::device_revoked_before(sql, claims.dev, &user.username)? {
        return Err(ApiError::unauthorized(
            ErrorCode::DeviceRevoked,
            "this device's sign-in was revoked; sign in again",
        )
        .into());
    }
    Ok(Principal {
        username: user.username,
        role: user.role,
        device_id: claims.dev,
    })
}

/// Trade a refresh token for a new pair (see the module notes for the grace rule). The
/// outer error rolls the transaction back; the inner one is a refusal whose writes (a
/// revocation) must commit.
pub fn refresh(
    sql: &mut dyn Sql,
    keys: &Keys,
    cfg: &ServerConfig,
    token: &str,
    device: Uuid,
) -> Result<Result<TokenResponse, ApiError>, Error> {
    let invalid = || {
        ApiError::unauthorized(
            ErrorCode::TokenInvalid,
            "the refresh token is not valid; sign in again",
        )
    };
    let hash = sha256_hex(token.as_bytes());
    let row = repo::get_refresh(sql, &hash)?.ok_or_else(invalid)?;
    if row.device_id != device.to_string() {
        return Err(invalid().into());
    }
    let now_us = cfg.now_us();
    if row.revoked || row.issued_us <= repo::device_revoked_before(sql, device, &row.username)? {
        return Err(ApiError::unauthorized(
            ErrorCode::TokenRevoked,
            "this sign-in was revoked; sign in again",
        )
        .into());
    }
    if row.expires_us <= now_us {
        return Err(ApiError::unauthorized(
            ErrorCode::TokenExpired,
            "the sign-in has expired; sign in again",
        )
        .into());
    }
    let user = repo::get_user(sql, &row.username)?.ok_or_else(invalid)?;
    if user.disabled {
        return Err(ApiError::new(
            403,
            ErrorCode::UserDisabled,
            "this account is disabled; ask an administrator",
        )
        .into());
    }
    if let Some(replaced_us) = row.replaced_us {
        let grace_us = i64::try_from(cfg.refresh_grace.as_micros()).unwrap_or(i64::MAX);
        if now_us - replaced_us > grace_us {
            // Reuse after rotation: the token was copied. Revoke the device.
            repo::revoke_device(sql, device, Some(&row.username), now_us)?;
            tracing::warn!(username = %row.username, device = %device, "refresh token reused after rotation; device revoked");
            // The revocation must commit: the refusal is the inner result.
            return Ok(Err(ApiError::unauthorized(
                ErrorCode::RefreshReused,
                "this sign-in was used twice and has been revoked; sign in again",
            )));
        }
        // Within the grace period (a lost reply): the successor issued before is
        // superseded by the one issued now.
        if let Some(successor) = &row.replaced_by {
            repo::revoke_refresh(sql, successor)?;
        }
    }
    let (resp, new_hash) = issue(sql, keys, cfg, &user.username, user.role, device)?;
    repo::mark_refresh_replaced(sql, &hash, &new_hash, now_us)?;
    Ok(Ok(resp))
}

/// Revoke one refresh token (sign out on this device).
pub fn logout(sql: &mut dyn Sql, token: &str) -> Result<(), Error> {
    repo::revoke_refresh(sql, &sha256_hex(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_secret() {
        let h = hash_password("correct horse", PasswordCost::for_tests()).expect("hash");
        assert!(h.starts_with("$argon2id$"), "Argon2id is used");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn the_limiter_blocks_after_the_allowed_failures() {
        let l = LoginLimiter::default();
        let keys = vec!["u:a".to_string()];
        for _ in 0..3 {
            assert!(l.blocked(&keys, 3, Duration::from_secs(60)).is_none());
            l.record_failure(&keys);
        }
        assert!(l.blocked(&keys, 3, Duration::from_secs(60)).is_some());
        l.clear("u:a");
        assert!(l.blocked(&keys, 3, Duration::from_secs(60)).is_none());
    }
}
