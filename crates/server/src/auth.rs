//! Authentication: Argon2id passwords, signed access tokens, rotating refresh tokens
//! bound to a device, login rate limiting.
//!
//! Access tokens are `v1.<payload>.<HMAC-SHA256>` (base64url), signed with a key kept
//! in the store, so they survive a restart and every instance over one PostgreSQL
//! database accepts them. Each request still checks the user and device rows, so
//! disabling a user or revoking a device takes effect at once. Refresh tokens are
//! random at sign-in, stored only as their SHA-256, and rotate on every use; the
//! successor is derived from its predecessor with a server secret, so the previous one,
//! accepted for a short grace period (a lost reply), answers the same successor again
//! (never a second pair, and the successor keeps working); reuse after that revokes the
//! device (it was probably stolen). Nothing here logs a secret: tokens and passwords
//! never reach a `tracing` field.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Duration;

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

/// The signing keys, loaded from the store (newest first), and the secret refresh-token
/// successors are derived with.
pub struct Keys {
    keys: RwLock<Vec<(String, ring::hmac::Key)>>,
    refresh_secret: ring::hmac::Key,
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
        let secret_hex = match repo::meta_get(sql, repo::META_REFRESH_SECRET)? {
            Some(hex) => hex,
            None => {
                let hex = hex::encode(random_bytes::<32>()?);
                repo::meta_set(sql, repo::META_REFRESH_SECRET, &hex)?;
                hex
            }
        };
        let secret =
            hex::decode(&secret_hex).map_err(|e| Error::store(format!("refresh secret: {e}")))?;
        Ok(Keys {
            keys: RwLock::new(keys),
            refresh_secret: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
        })
    }

    /// The refresh token that succeeds `token` when it is rotated: derived from it with
    /// the server's secret, so a second use inside the grace window (a lost reply)
    /// answers the same successor instead of a second, independent one. Only the
    /// server can compute it, and only from the predecessor itself.
    fn successor_of(&self, token: &str) -> String {
        let mut msg = b"outpost refresh successor v1\0".to_vec();
        msg.extend_from_slice(token.as_bytes());
        URL_SAFE_NO_PAD.encode(ring::hmac::sign(&self.refresh_secret, &msg).as_ref())
    }

    /// Read the keys again from the store when it holds others than these (a key
    /// rotated by `keys rotate`, perhaps through another instance).
    fn reload(&self, sql: &mut dyn Sql) -> Result<(), Error> {
        let stored = repo::signing_keys(sql)?;
        {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            if keys.len() == stored.len() && keys.iter().zip(&stored).all(|((a, _), (b, _))| a == b)
            {
                return Ok(());
            }
        }
        let mut fresh = Vec::with_capacity(stored.len());
        for (kid, secret_hex) in stored {
            let secret =
                hex::decode(&secret_hex).map_err(|e| Error::store(format!("signing key: {e}")))?;
            fresh.push((kid, ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret)));
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
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

    /// Whether the key named in `token`'s claims is loaded (`None`: not a token).
    fn knows_kid_of(&self, token: &str) -> Option<bool> {
        let (signed, _) = token.rsplit_once('.')?;
        let payload = signed.strip_prefix("v1.")?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        Some(keys.iter().any(|(kid, _)| *kid == claims.kid))
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

/// Sign-in attempts per key (user, client address, the pair), in memory (per
/// instance). An attempt is *reserved* before its password is checked, so concurrent
/// attempts see each other; once a key has used its free failures, each further attempt
/// must wait a delay that doubles up to a cap, instead of a lockout an attacker could
/// keep up for anyone. Time is the server's clock (tests move it).
#[derive(Debug, Default)]
pub struct LoginLimiter {
    keys: Mutex<HashMap<String, Attempts>>,
}

#[derive(Debug, Clone, Copy)]
struct Attempts {
    /// Attempts not forgiven (each reserved one counts until it succeeds).
    count: u32,
    /// No attempt before this (microseconds).
    next_us: i64,
    /// The last attempt (microseconds): a key idle for the window is forgotten.
    last_us: i64,
}

/// The limiter's settings.
#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    pub free: u32,
    pub window: Duration,
    pub delay_max: Duration,
}

impl LoginLimiter {
    /// Reserve an attempt for every key at `now_us`, or the seconds to wait when any
    /// key's delay has not passed (nothing is reserved then).
    pub fn reserve(&self, keys: &[String], policy: LoginPolicy, now_us: i64) -> Result<(), u64> {
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let window_us = i64::try_from(policy.window.as_micros()).unwrap_or(i64::MAX);
        if map.len() > 100_000 {
            // Bound memory: forget idle keys.
            map.retain(|_, a| now_us.saturating_sub(a.last_us) <= window_us);
        }
        let mut wait_us = 0;
        for k in keys {
            if let Some(a) = map.get(k) {
                if now_us.saturating_sub(a.last_us) <= window_us && a.next_us > now_us {
                    wait_us = wait_us.max(a.next_us - now_us);
                }
            }
        }
        if wait_us > 0 {
            let secs = u64::try_from(wait_us)
                .unwrap_or(u64::MAX)
                .div_ceil(1_000_000);
            return Err(secs.max(1));
        }
        let max_us = i64::try_from(policy.delay_max.as_micros()).unwrap_or(i64::MAX);
        for k in keys {
            let a = map.entry(k.clone()).or_insert(Attempts {
                count: 0,
                next_us: now_us,
                last_us: now_us,
            });
            if now_us.saturating_sub(a.last_us) > window_us {
                a.count = 0;
            }
            a.count = a.count.saturating_add(1);
            a.last_us = now_us;
            a.next_us = now_us;
            if a.count >= policy.free {
                let doublings = (a.count - policy.free).min(40);
                let delay = 1_000_000i64.saturating_mul(1i64 << doublings).min(max_us);
                a.next_us = now_us.saturating_add(delay);
            }
        }
        Ok(())
    }

    /// A reserved attempt succeeded: the first key's attempts (the user's) are
    /// forgiven, and the others' reservation is given back (many people signing in
    /// from one office address are not a storm).
    pub fn succeeded(&self, keys: &[String], policy: LoginPolicy) {
        let mut map = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let Some((user, others)) = keys.split_first() else {
            return;
        };
        map.remove(user);
        for k in others {
            if let Some(a) = map.get_mut(k) {
                a.count = a.count.saturating_sub(1);
                if a.count < policy.free {
                    a.next_us = a.last_us;
                }
            }
        }
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
    let refresh = URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
    issue_with(
        sql,
        keys,
        cfg,
        username,
        role,
        device,
        Refresh::New(refresh),
    )
}

/// The refresh token a [`TokenResponse`] carries.
enum Refresh {
    /// A token to store now (a sign-in's random one, or a rotation's successor).
    New(String),
    /// A successor stored already (a reuse inside the grace window): sent again as it is.
    Stored { token: String, expires_us: i64 },
}

fn issue_with(
    sql: &mut dyn Sql,
    keys: &Keys,
    cfg: &ServerConfig,
    username: &str,
    role: Role,
    device: Uuid,
    refresh: Refresh,
) -> Result<(TokenResponse, String), Error> {
    let now = cfg.now();
    let now_us = now.timestamp_micros();
    let access_exp =
        now + chrono::Duration::from_std(cfg.access_ttl).unwrap_or(chrono::Duration::minutes(15));
    let refresh_exp =
        now + chrono::Duration::from_std(cfg.refresh_ttl).unwrap_or(chrono::Duration::days(60));
    keys.reload(sql)?;
    let claims = Claims {
        sub: username.to_owned(),
        dev: device,
        iat: now_us,
        exp: access_exp.timestamp_micros(),
        kid: keys.current_kid()?,
    };
    let access = keys.sign(&claims)?;
    let (refresh, refresh_exp) = match refresh {
        Refresh::New(token) => {
            repo::insert_refresh(
                sql,
                &sha256_hex(token.as_bytes()),
                username,
                device,
                now_us,
                refresh_exp.timestamp_micros(),
            )?;
            (token, refresh_exp)
        }
        Refresh::Stored { token, expires_us } => (
            token,
            chrono::DateTime::from_timestamp_micros(expires_us).unwrap_or(refresh_exp),
        ),
    };
    let refresh_hash = sha256_hex(refresh.as_bytes());
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
    let claims = match keys.verify(token) {
        Ok(c) => c,
        // A key this instance has not loaded yet (rotated meanwhile): read them again.
        Err(e) if keys.knows_kid_of(token) == Some(false) => {
            keys.reload(sql)?;
            keys.verify(token).map_err(|_| e)?
        }
        Err(e) => return Err(e.into()),
    };
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
        // Within the grace period (a lost reply, or someone racing the device): the
        // same successor again, never a second pair, and the legitimate successor
        // keeps working.
        let successor = keys.successor_of(token);
        let successor_hash = sha256_hex(successor.as_bytes());
        if row.replaced_by.as_deref() == Some(successor_hash.as_str()) {
            let stored = repo::get_refresh(sql, &successor_hash)?.ok_or_else(invalid)?;
            if stored.revoked {
                return Err(ApiError::unauthorized(
                    ErrorCode::TokenRevoked,
                    "this sign-in was revoked; sign in again",
                )
                .into());
            }
            let (resp, _) = issue_with(
                sql,
                keys,
                cfg,
                &user.username,
                user.role,
                device,
                Refresh::Stored {
                    token: successor,
                    expires_us: stored.expires_us,
                },
            )?;
            return Ok(Ok(resp));
        }
        // A successor from before successors were derived: it gives way to the
        // derived one.
        if let Some(old) = &row.replaced_by {
            repo::revoke_refresh(sql, old)?;
        }
    }
    let successor = keys.successor_of(token);
    let (resp, new_hash) = issue_with(
        sql,
        keys,
        cfg,
        &user.username,
        user.role,
        device,
        Refresh::New(successor),
    )?;
    repo::mark_refresh_replaced(sql, &hash, &new_hash, now_us)?;
    Ok(Ok(resp))
}

/// Sign out on this device: the refresh token and the session's access tokens (those of
/// its user on its device issued until `now_us`) stop working.
pub fn logout(sql: &mut dyn Sql, token: &str, now_us: i64) -> Result<(), Error> {
    let hash = sha256_hex(token.as_bytes());
    repo::revoke_refresh(sql, &hash)?;
    if let Some(row) = repo::get_refresh(sql, &hash)? {
        if let Ok(device) = row.device_id.parse::<Uuid>() {
            repo::revoke_device(sql, device, Some(&row.username), now_us)?;
        }
    }
    Ok(())
}

/// Add a new signing key, which signs every token from now on (the `keys rotate`
/// command). The previous keys stay to verify the tokens they signed, so nobody is
/// signed out; each server instance picks the new key up at its next sign-in or
/// refresh, and accepts its tokens at once. Returns the new key's id.
pub fn rotate_signing_key(sql: &mut dyn Sql, now_us: i64) -> Result<String, Error> {
    let kid = Uuid::new_v4().simple().to_string();
    let secret = hex::encode(random_bytes::<32>()?);
    // Newest first by creation time: never older than the current key.
    let newest = repo::newest_signing_key_us(sql)?.unwrap_or(0);
    repo::insert_signing_key(sql, &kid, &secret, now_us.max(newest + 1))?;
    Ok(kid)
}

/// Retire the signing keys no valid access token needs: a key signs nothing once a
/// newer one exists, so one replaced more than `access_ttl` ago verifies only expired
/// tokens. The newest key always stays; refresh tokens are not signed (stored hashed),
/// so no device is signed out. A running server keeps the keys it loaded until it
/// restarts. Returns how many were retired.
pub fn retire_signing_keys(
    sql: &mut dyn Sql,
    now_us: i64,
    access_ttl: std::time::Duration,
) -> Result<u64, Error> {
    let ttl_us = i64::try_from(access_ttl.as_micros()).unwrap_or(i64::MAX);
    repo::retire_signing_keys(sql, now_us.saturating_sub(ttl_us))
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
    fn the_limiter_delays_more_and_more_after_the_free_failures_then_forgets() {
        let l = LoginLimiter::default();
        let keys = vec!["u:a".to_string(), "ip:x".to_string()];
        let policy = LoginPolicy {
            free: 3,
            window: Duration::from_secs(600),
            delay_max: Duration::from_secs(8),
        };
        let s = 1_000_000;
        for _ in 0..3 {
            assert_eq!(l.reserve(&keys, policy, 0), Ok(()));
        }
        // After the third: 1 s, then 2 s, 4 s, 8 s, 8 s.
        assert_eq!(l.reserve(&keys, policy, 0), Err(1));
        let mut t = s;
        for delay in [2, 4, 8, 8] {
            assert_eq!(l.reserve(&keys, policy, t), Ok(()));
            assert_eq!(l.reserve(&keys, policy, t + 1), Err(delay));
            t += delay as i64 * s;
        }
        // Idle for the window: forgotten.
        assert_eq!(l.reserve(&keys, policy, t + 601 * s), Ok(()));
    }

    #[test]
    fn successful_sign_ins_from_one_address_never_add_up() {
        let l = LoginLimiter::default();
        let policy = LoginPolicy {
            free: 3,
            window: Duration::from_secs(600),
            delay_max: Duration::from_secs(8),
        };
        for i in 0..50 {
            let keys = vec![format!("u:{i}"), "ip:office".to_string()];
            assert_eq!(l.reserve(&keys, policy, 0), Ok(()), "sign-in {i}");
            l.succeeded(&keys, policy);
        }
    }
}
