//! The `Clock` trait: where "now" comes from, declared once for both sides.
//!
//! Only the declaration lives here: this crate reads no clock. Each side implements it
//! in its own clock module (`crates/core/src/clock.rs` on the device,
//! `crates/server/src/clock.rs` on the server), the only places allowed to read the
//! wall clock (clippy's `disallowed-methods`, held by the tidy test), so that tests can
//! fix or move time.

use chrono::{DateTime, Utc};

/// The source of "now" for every rule that needs it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}
