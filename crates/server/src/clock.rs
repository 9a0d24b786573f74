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
