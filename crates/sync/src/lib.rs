//! The sync engine: pushes the outbox and pulls deltas whenever the server can be
//! reached, without anyone pressing a button, and never loses work.
//!
//! - [`machine`]: the decisions, with no I/O (events in, instructions out), tested
//!   race by race.
//! - [`client`]: the HTTP calls of protocol v1 (reqwest, rustls), behind the
//!   [`transport::Transport`] seam that the pass is written against.
//! - `pass.rs`: one sync pass ([`run_pass`]: push, then pull), its options, report and
//!   progress, and [`fetch_attachment`].
//! - `push.rs`: the push phase (batches, splitting a refused batch, setting aside
//!   what cannot be sent).
//! - `lanes.rs`: the order the outbox is pushed in ([`in_lanes`]).
//! - `upload.rs`: attachment uploads, batched and resumable.
//! - `documents.rs`: the documents step (issue 22): the cached technical documents
//!   follow the server's index, within the budget, downloaded range by range.
//! - `auth.rs`: access tokens, refreshed before they expire and once on a 401.
//! - `lock.rs`: one process syncs a data directory at a time ([`SyncLock`]).
//! - `task.rs`: the background task ([`spawn`], [`EngineHandle`], [`EngineConfig`]).
//! - `status.rs`: what the embedder shows ([`EngineStatus`]) and how it is published.
//! - `netwatch.rs`: the OS's network change events, which wake the task.
//! - `races.rs` (tests only): each sync race as a deterministic test.
//!
//! The public names are all re-exported here; the modules behind them are private.
//! The protocol's rules are in `docs/protocol.md`; the engine's behaviour in
//! `docs/sync.md`.

// Tests may read the wall clock; product code takes a Clock (clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

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

mod auth;
pub mod client;
mod documents;
mod error;
mod lanes;
mod lock;
pub mod machine;
mod netwatch;
mod pass;
mod push;
#[cfg(test)]
mod races;
mod status;
mod task;
pub mod transport;
mod upload;

pub use client::{check_server_url, ClientOptions, SyncClient};
pub use documents::{documents_budget, SETTING_DOCUMENTS_BUDGET};
pub use error::SyncError;
pub use lanes::in_lanes;
pub use lock::SyncLock;
pub use machine::{Connectivity, Timing};
pub use pass::{
    fetch_attachment, fetch_fleet, run_pass, PassOptions, PassReport, Progress,
    PHOTO_UPLOADS_WITH_COMPLETIONS, SETTING_PHOTO_UPLOADS,
};
pub use status::{EngineStatus, StatusReceiver};
pub use task::{spawn, EngineConfig, EngineHandle};
pub use transport::Transport;
