//! The device's clocks: the real one and a fixed one for tests.
//!
//! Time is an injected dependency ([`Clock`], declared in `outpost-protocol`): logic
//! never reads the system clock directly, so tests can fix it. This module is the only
//! place on the device allowed to read the wall clock (clippy's `disallowed-methods`).

use std::sync::Mutex;

use chrono::{DateTime, Utc};

pub use outpost_protocol::Clock;

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    // The one wall-clock read on the device.
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved: for tests.
#[derive(Debug)]
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn new(at: DateTime<Utc>) -> FixedClock {
        FixedClock(Mutex::new(at))
    }

    pub fn advance(&self, by: chrono::Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|p| *p.into_inner())
    }
}
