//! The server's real clock.
//!
//! Every rule takes "now" from the [`Clock`] in `ServerConfig` (the trait is declared in
//! `outpost-protocol`), so tests can supply their own. This module is the only place in
//! the server allowed to read the wall clock (clippy's `disallowed-methods`).

use chrono::{DateTime, Utc};

pub use outpost_protocol::Clock;

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one wall-clock read in the server.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The clock `serve` runs on: the wall clock. Test builds only (the `test-support`
/// feature): `OUTPOST_TEST_CLOCK_OFFSET_SECS` moves it by that many seconds (negative:
/// into the past), so that an end-to-end test can have a device last seen two days
/// ago (the fleet view, issue 21). A product build never reads the variable.
pub fn serving_clock() -> std::sync::Arc<dyn Clock> {
    #[cfg(feature = "test-support")]
    if let Some(secs) = std::env::var("OUTPOST_TEST_CLOCK_OFFSET_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        return std::sync::Arc::new(OffsetClock(chrono::Duration::seconds(secs)));
    }
    std::sync::Arc::new(SystemClock)
}

/// The wall clock moved by a fixed offset (test builds only).
#[cfg(feature = "test-support")]
#[derive(Debug, Clone, Copy)]
struct OffsetClock(chrono::Duration);

#[cfg(feature = "test-support")]
impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        SystemClock.now() + self.0
    }
}
