//! Server settings, including the injected clock (`crate::clock`).
//!
//! Every limit and lifetime the tests need to shorten is here (token lifetimes, the
//! refresh grace period, login rate limits, Argon2 cost), so no test waits for a
//! production-length timer and no rule reads the system clock directly.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::{Clock, SystemClock};

/// Argon2id cost. The default follows OWASP's recommendation (19 MiB, 2 passes);
/// tests lower it so a debug build does not spend seconds per login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordCost {
    /// The cheapest cost Argon2 accepts: for tests only.
    pub fn for_tests() -> Self {
        PasswordCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// The default storage quota per user: 2 GiB (about a thousand downscaled photos).
pub const DEFAULT_ATTACHMENT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// The default budget of open failed-sync records kept for one person: 64 MiB (about
/// eight of the largest request bodies the server accepts, or thousands of ordinary
/// refusals).
pub const DEFAULT_FAILED_SYNC_BUDGET_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct ServerConfig {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How long a rotated refresh token is still accepted (a lost reply).
    pub refresh_grace: Duration,
    /// Failed sign-ins allowed per user, per client address and per pair before each
    /// further attempt waits a growing delay (1 s, 2 s, 4 s, … up to
    /// `login_delay_max`); a key's failures are forgotten after `login_window` without
    /// one, and a successful sign-in forgets the user's.
    pub login_max_failures: u32,
    pub login_window: Duration,
    /// The longest delay between attempts once the failures are used up (never a hard
    /// lockout: whoever has the password gets in once the delay has passed).
    pub login_delay_max: Duration,
    /// Password checks (Argon2, 19 MiB each) that may run at once; further sign-ins
    /// wait up to a few seconds for one, then are told to retry. About the core count.
    pub password_hashers: usize,
    /// The request header a trusted reverse proxy sets to the client's address
    /// (`x-forwarded-for`: its last entry, the one the proxy added). `None`: the
    /// connection's address; the header is then ignored, so a client cannot choose its
    /// own limiter key.
    pub trusted_proxy_header: Option<String>,
    /// The bearer token `/metrics` asks for; `None`: `/metrics` answers no one (401).
    pub metrics_token: Option<String>,
    /// The longest a client may take to send a request's headers, or to finish a TLS
    /// handshake; then the connection is closed (slowloris).
    pub header_read_timeout: Duration,
    /// The longest one request may take (its body included) before it is answered 503
    /// `unavailable`.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Requests to `/v1/` handled at once. One more is answered 503 `unavailable` with
    /// `Retry-After` before its body is read (devices retry with backoff): under a
    /// surge the server sheds load instead of holding every queued request's memory.
    pub max_in_flight: usize,
    pub password_cost: PasswordCost,
    /// The most bytes of files (photos, signatures) one user may hold on the server:
    /// the files they sent plus their uploads in progress (issue 19 item 7). A file
    /// past it is refused (413 `quota_exceeded`) before any byte is stored.
    pub attachment_quota_bytes: u64,
    /// The most bytes of open failed-sync records the server keeps for one person
    /// (issue 19 item 7). A refusal past it is answered but not stored: the device
    /// keeps the change in front of the technician, who sends it again once a
    /// dispatcher has decided the waiting ones.
    pub failed_sync_budget_bytes: u64,
    /// How long change-log rows and idempotency records are kept
    /// ([`RETENTION_DAYS_DEFAULT`]; a device away longer re-primes). Pruned by
    /// `outpost-server prune`.
    pub retention: Duration,
    /// The oldest sync protocol served (`outpost_protocol::compat`); a client that
    /// announces an older one is told to update Outpost.
    pub min_protocol: u32,
    /// The fleet view warns about devices not seen for longer than this (issue 21;
    /// `GET /v1/fleet` may ask for another limit).
    pub fleet_stale_after: Duration,
    /// Where technical documents' bytes are kept, and their size limits (issue 22).
    pub documents: crate::documents::Storage,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("refresh_grace", &self.refresh_grace)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_window", &self.login_window)
            .field("login_delay_max", &self.login_delay_max)
            .field("password_hashers", &self.password_hashers)
            .field("trusted_proxy_header", &self.trusted_proxy_header)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "…"))
            .field("header_read_timeout", &self.header_read_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("max_in_flight", &self.max_in_flight)
            .field("password_cost", &self.password_cost)
            .field("attachment_quota_bytes", &self.attachment_quota_bytes)
            .field("failed_sync_budget_bytes", &self.failed_sync_budget_bytes)
            .field("retention", &self.retention)
            .field("min_protocol", &self.min_protocol)
            .field("fleet_stale_after", &self.fleet_stale_after)
            .field("documents", &self.documents)
            .finish()
    }
}

const DAY_SECS: u64 = 24 * 3600;

/// The longest a device may go without any sync and then sync again by itself: its
/// refresh token lives this long from its last sync (each refresh rotates it). Past
/// it the technician signs in again; their unsynced work stays on the device.
pub const OFFLINE_DAYS_SUPPORTED: u64 = 60;

/// How long `prune` keeps change-log rows and idempotency records by default: the
/// supported offline period and a month more (a prune run monthly, a device that
/// synced on the last day of its period). A device back within it syncs by delta, and
/// a change whose reply it lost is answered from its idempotency record. Past it the
/// server answers `resync_required`: the device re-primes and sends its unsynced work
/// (issue 25 item 4; figures in docs/benchmarks.md).
pub const RETENTION_DAYS_DEFAULT: u64 = 90;

/// The default of [`ServerConfig::max_in_flight`]: far above what a server answering in
/// milliseconds has in flight (100 devices: a handful), low enough that the requests
/// it holds fit in memory.
pub const MAX_IN_FLIGHT_DEFAULT: usize = 256;

/// Seconds a request shed by the admission limit is told to wait.
pub const SHED_RETRY_AFTER_SECS: u64 = 2;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(OFFLINE_DAYS_SUPPORTED * DAY_SECS),
            refresh_grace: Duration::from_secs(30),
            login_max_failures: 10,
            login_window: Duration::from_secs(15 * 60),
            login_delay_max: Duration::from_secs(60),
            password_hashers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            trusted_proxy_header: None,
            metrics_token: None,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_connections: 1024,
            max_in_flight: MAX_IN_FLIGHT_DEFAULT,
            password_cost: PasswordCost::default(),
            attachment_quota_bytes: DEFAULT_ATTACHMENT_QUOTA_BYTES,
            failed_sync_budget_bytes: DEFAULT_FAILED_SYNC_BUDGET_BYTES,
            retention: Duration::from_secs(RETENTION_DAYS_DEFAULT * DAY_SECS),
            min_protocol: outpost_protocol::compat::PREVIOUS_PROTOCOL_VERSION,
            fleet_stale_after: Duration::from_secs(
                outpost_protocol::fleet::STALE_AFTER_SECS_DEFAULT,
            ),
            documents: crate::documents::Storage::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl ServerConfig {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn now_us(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }
}
