//! `outpost-server`, the reference sync server: the fleet's source of truth and the
//! sync point. Depends on `protocol` only, never on the client crates.
//!
//! Codemap: [`http`] (routes and error answers) calls [`push`], [`pull`], [`auth`] and
//! [`attachments`], which run inside one store transaction each, through [`repo`]
//! (typed SQL) over a [`db::Backend`] (SQLite or PostgreSQL); order history is kept as
//! diffs ([`history`]) and a push reuses committed parsed rows ([`row_cache`]). The
//! merge rules and wire types live in `outpost_protocol::{merge, wire}` so that the
//! device runs the same.
//! [`inventory`] imports the business system's inventory exports and lists the parts
//! used for it (the stock-move ledger). [`seed`] makes the demo fleet; [`openapi`] describes the API; [`serve`] runs it
//! (plain or TLS) with graceful shutdown. [`unsent`] keeps what each device reports it
//! has not sent; [`fleet`] what the server saw of each device, for the fleet view.
//! [`documents`] keeps technical documents and says who may read them (issue 22).

/// A named crash point of the kill tests (tests/src/kill.rs). With the `test-support`
/// feature, `FAILPOINTS="NAME=K*off->return"` in the environment aborts the process at
/// the point's (K+1)-th hit, as a kill or a power cut would (tikv's `fail`); without
/// it, in every product build, it is nothing and its name is not in the binary.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "test-support")]
        {
            let _: Option<()> = fail::eval($name, |_| std::process::abort());
        }
    };
}
pub(crate) use crash_point;

/// Arm the crash points from the `FAILPOINTS` variable; `main` calls it first. Only
/// test builds (`test-support`) have crash points: in a product build this does
/// nothing. The point `process:start` right here lets a test tell a binary with crash
/// points from one without (`FAILPOINTS=process:start=return` aborts at once).
pub fn arm_crash_points() {
    #[cfg(feature = "test-support")]
    {
        // Armed for the whole life of the process.
        std::mem::forget(fail::FailScenario::setup());
        crash_point!("process:start");
    }
}

pub mod attachments;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod documents;
pub mod error;
pub mod fleet;
pub mod history;
pub mod http;
pub mod inventory;
pub mod metrics;
pub mod openapi;
pub mod pull;
pub mod push;
pub mod repo;
pub mod row_cache;
pub mod seed;
pub mod serve;
pub mod unsent;

use std::sync::Arc;

pub use clock::{Clock, SystemClock};
pub use config::{
    PasswordCost, ServerConfig, MAX_IN_FLIGHT_DEFAULT, OFFLINE_DAYS_SUPPORTED,
    RETENTION_DAYS_DEFAULT,
};
pub use db::Db;
pub use error::{ApiError, Error};
pub use http::AppState;
pub use serve::{spawn, Running, TlsFiles};

/// Build the shared state: load (or create) the token signing keys.
pub async fn state(db: Db, cfg: ServerConfig) -> Result<Arc<AppState>, Error> {
    let now_us = cfg.now_us();
    let keys = db.write(move |sql| auth::Keys::load(sql, now_us)).await?;
    let cfg_hashers = cfg.password_hashers.max(1);
    let admission = Arc::new(tokio::sync::Semaphore::new(cfg.max_in_flight.max(1)));
    Ok(Arc::new(AppState {
        db,
        cfg,
        keys,
        limiter: auth::LoginLimiter::default(),
        hashers: Arc::new(tokio::sync::Semaphore::new(cfg_hashers)),
        admission,
        metrics: metrics::Metrics::default(),
        rows: row_cache::RowCache::default(),
        unsent: unsent::Ledger::default(),
        fleet: fleet::Ledger::default(),
    }))
}

/// Add a user (the `user add` command and tests).
pub async fn add_user(
    db: &Db,
    cfg: &ServerConfig,
    username: &str,
    role: outpost_protocol::Role,
    password: &str,
) -> Result<bool, Error> {
    check_username(username)?;
    let hash = new_password_hash(cfg, password).await?;
    let (username, now_us) = (username.to_owned(), cfg.now_us());
    db.write(move |sql| repo::insert_user(sql, &username, &hash, role, now_us))
        .await
}

/// Give a user a new password and end every session they have (each device's access
/// and refresh tokens stop working at once): the `user reset-password` command.
/// `false` when there is no such user.
pub async fn reset_password(
    db: &Db,
    cfg: &ServerConfig,
    username: &str,
    password: &str,
) -> Result<bool, Error> {
    check_username(username)?;
    let hash = new_password_hash(cfg, password).await?;
    let (username, now_us) = (username.to_owned(), cfg.now_us());
    db.write(move |sql| repo::reset_password(sql, &username, &hash, now_us))
        .await
}

/// The Argon2id hash of a new password (at least 8 characters), on the blocking pool.
async fn new_password_hash(cfg: &ServerConfig, password: &str) -> Result<String, Error> {
    if password.chars().count() < 8 {
        return Err(ApiError::bad_request(
            outpost_protocol::wire::ErrorCode::InvalidBody,
            "a password needs at least 8 characters",
        )
        .into());
    }
    let password = password.to_owned();
    let cost = cfg.password_cost;
    tokio::task::spawn_blocking(move || auth::hash_password(&password, cost))
        .await
        .map_err(|e| Error::store(format!("hash task: {e}")))?
}

/// Usernames: 1 to 64 of `[a-z0-9._-]`, so they are safe in logs, paths and locations.
pub fn check_username(username: &str) -> Result<(), Error> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            outpost_protocol::wire::ErrorCode::InvalidBody,
            "a username is 1 to 64 of a-z, 0-9, '.', '_' and '-'",
        )
        .into())
    }
}
