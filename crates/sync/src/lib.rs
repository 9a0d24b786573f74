//! The sync engine: pushes the outbox and pulls deltas whenever the server can be
//! reached, without anyone pressing a button, and never loses work.
//!
//! - [`machine`]: the decisions, with no I/O (events in, instructions out), tested
//!   race by race.
//! - [`client`]: the HTTP calls of protocol v1 (reqwest, rustls), behind the
//!   [`transport::Transport`] seam that the pass is written against.
//! - [`engine`]: one sync pass ([`run_pass`]) and the background task ([`spawn`]).
//!
//! The protocol is described in `docs/sync.md`.

// Tests may read the wall clock; product code takes a Clock (clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod client;
pub mod engine;
mod error;
pub mod machine;
mod netwatch;
#[cfg(test)]
mod races;
pub mod transport;

pub use client::{check_server_url, ClientOptions, SyncClient};
pub use engine::{
    fetch_attachment, in_lanes, run_pass, spawn, EngineConfig, EngineHandle, EngineStatus,
    PassOptions, PassReport, Progress, SyncLock, PHOTO_UPLOADS_WITH_COMPLETIONS,
    SETTING_PHOTO_UPLOADS,
};
pub use error::SyncError;
pub use machine::{Connectivity, Timing};
pub use transport::Transport;
