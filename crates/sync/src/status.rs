//! What the embedder shows about sync ([`EngineStatus`]), and how the background task
//! keeps it current.
//!
//! The task owns the sending side ([`Publisher`]); embedders subscribe through
//! [`EngineHandle::subscribe`](crate::EngineHandle::subscribe). Each publish re-reads
//! the counts and the last sync time from the local database, so the status line
//! never lags behind a local write or a pass. How the shell words or notifies any of
//! this is not here (`outpost-core`, `src-tauri`).

use chrono::{DateTime, Utc};
use outpost_store::{Store, StoreError, SyncCounts};
use serde::Serialize;
use tokio::sync::watch;

use crate::machine::Connectivity;
use crate::pass::Progress;

/// What the embedder shows: the sync indicator and the counts beside it.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    pub connectivity: Connectivity,
    pub pending: usize,
    pub failed: usize,
    pub conflicts: usize,
    pub last_sync: Option<DateTime<Utc>>,
    pub progress: Option<Progress>,
    pub last_error: Option<String>,
    /// Bumped when a pass finds new failed syncs or conflicts (for notifications).
    pub notices: u64,
}

/// What the status shows from the local database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalState {
    pub(crate) counts: SyncCounts,
    pub(crate) last_sync: Option<DateTime<Utc>>,
}

impl LocalState {
    pub(crate) fn read(store: &Store) -> Result<LocalState, StoreError> {
        Ok(LocalState {
            counts: store.sync_counts()?,
            last_sync: store.last_sync_at()?,
        })
    }
}

impl EngineStatus {
    /// The status of an engine that has not reached the server yet.
    pub(crate) fn starting(local: LocalState) -> EngineStatus {
        EngineStatus {
            connectivity: Connectivity::Offline,
            pending: local.counts.pending,
            failed: local.counts.failed,
            conflicts: local.counts.conflicts,
            last_sync: local.last_sync,
            progress: None,
            last_error: None,
            notices: 0,
        }
    }
}

/// The sending side of the status channel, owned by the background task.
#[derive(Debug)]
pub(crate) struct Publisher(watch::Sender<EngineStatus>);

impl Publisher {
    pub(crate) fn new(initial: EngineStatus) -> (Publisher, watch::Receiver<EngineStatus>) {
        let (tx, rx) = watch::channel(initial);
        (Publisher(tx), rx)
    }

    /// Re-read the counts from `store`, apply `change`, and tell every subscriber.
    pub(crate) fn publish(&self, store: &Store, change: impl FnOnce(&mut EngineStatus)) {
        let counts = store.sync_counts().unwrap_or_default();
        let last_sync = store.last_sync_at().ok().flatten();
        self.0.send_modify(|s| {
            s.pending = counts.pending;
            s.failed = counts.failed;
            s.conflicts = counts.conflicts;
            s.last_sync = last_sync;
            change(s);
        });
    }

    /// Show the running pass's progress (the counts are re-read when it ends).
    pub(crate) fn progress(&self, progress: Progress) {
        self.0.send_modify(|s| s.progress = Some(progress));
    }
}
