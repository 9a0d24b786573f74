//! What the embedder shows about sync ([`EngineStatus`]), and how the background task
//! keeps it current.
//!
//! The task owns the sending side ([`Publisher`]); embedders subscribe through
//! [`EngineHandle::subscribe`](crate::EngineHandle::subscribe). Each publish re-reads
//! the counts and the last sync time from the local database, so the status line
//! never lags behind a local write or a pass. A read that fails does not show
//! "Nothing waiting": the last known counts stay and `last_error` says the database
//! could not be read (until a read succeeds again); a failed read around a pass yields
//! no notice. How the shell words or notifies any of this is not here (`outpost-core`,
//! `src-tauri`).

use chrono::{DateTime, Utc};
use outpost_store::{Store, StoreError, SyncCounts};
use serde::Serialize;
use tokio::sync::watch;

use crate::machine::Connectivity;
use crate::pass::Progress;

/// The receiving side of the status channel ([`EngineHandle::subscribe`](crate::EngineHandle::subscribe)).
pub type StatusReceiver = watch::Receiver<EngineStatus>;

/// What the embedder shows: the sync indicator and the counts beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineStatus {
    pub connectivity: Connectivity,
    pub pending: usize,
    pub failed: usize,
    pub conflicts: usize,
    /// Pulled changes of a kind this version does not know (a newer server's),
    /// skipped: an updated Outpost shows them.
    pub skipped: usize,
    pub last_sync: Option<DateTime<Utc>>,
    pub progress: Option<Progress>,
    pub last_error: Option<String>,
    /// Bumped when a pass finds new failed syncs or conflicts (for notifications).
    pub notices: u64,
    /// The cached documents' warning (today's documents past the budget, downloads
    /// waiting for a better connection), or `None`.
    pub documents_note: Option<String>,
    /// Bumped when a pass changed local data (`PassReport::changed_local_data`): rows
    /// pulled, changes acknowledged, refused or held, documents. An embedder re-reads
    /// what it shows when this moves, not on every pass (issue 25 item 3).
    pub data_changes: u64,
}

/// How `last_error` starts when the local database could not be read.
const UNREADABLE: &str = "cannot read the local database: ";

/// What the status shows from the local database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalState {
    pub(crate) counts: SyncCounts,
    pub(crate) last_sync: Option<DateTime<Utc>>,
    pub(crate) documents_note: Option<String>,
}

impl LocalState {
    pub(crate) fn read(store: &Store) -> Result<LocalState, StoreError> {
        Ok(LocalState {
            counts: store.sync_counts()?,
            last_sync: store.last_sync_at()?,
            documents_note: store.documents_state()?.note,
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
            skipped: local.counts.skipped,
            last_sync: local.last_sync,
            progress: None,
            last_error: None,
            notices: 0,
            documents_note: local.documents_note,
            data_changes: 0,
        }
    }

    fn show_progress(&mut self, progress: Progress, pending_at_start: Option<usize>) {
        if let (Progress::Pushing { settled, .. }, Some(start)) = (&progress, pending_at_start) {
            self.pending = start.saturating_sub(*settled);
        }
        self.progress = Some(progress);
    }

    /// Take in a fresh read of the local database. When it failed, the last known
    /// counts and sync time stay and `last_error` says why (over any other error: it is
    /// what explains counts that may be stale); the next read that succeeds takes that
    /// message away again.
    pub(crate) fn take_local(&mut self, read: Result<LocalState, StoreError>) {
        match read {
            Ok(local) => {
                self.pending = local.counts.pending;
                self.failed = local.counts.failed;
                self.conflicts = local.counts.conflicts;
                self.skipped = local.counts.skipped;
                self.last_sync = local.last_sync;
                self.documents_note = local.documents_note;
                if self
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with(UNREADABLE))
                {
                    self.last_error = None;
                }
            }
            Err(e) => self.last_error = Some(format!("{UNREADABLE}{e}")),
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

    /// Apply `change`, re-read the counts from `store`, and tell every subscriber if
    /// the status is not the same as before (a subscriber is not woken for nothing).
    pub(crate) fn publish(&self, store: &Store, change: impl FnOnce(&mut EngineStatus)) {
        let read = LocalState::read(store);
        if let Err(e) = &read {
            tracing::error!("cannot read the local database for the sync status: {e}");
        }
        self.0.send_if_modified(|s| {
            let before = s.clone();
            change(s);
            s.take_local(read);
            *s != before
        });
    }

    /// Show the running pass's progress (the counts are re-read when it ends). While
    /// the push runs, the count of changes waiting on this device goes down as they are
    /// answered, from `pending_at_start` (the count when the pass began), so that the
    /// indicator's "N changes saved on this device" moves with the progress bar.
    pub(crate) fn progress(&self, progress: Progress, pending_at_start: Option<usize>) {
        self.0
            .send_modify(|s| s.show_progress(progress, pending_at_start));
    }
}

/// The counts a pass's notice is computed from; `None` (logged) when they cannot be
/// read, so that no notice is invented from a failed read.
pub(crate) fn counts_for_notice(store: &Store) -> Option<SyncCounts> {
    match store.sync_counts() {
        Ok(counts) => Some(counts),
        Err(e) => {
            tracing::error!("cannot read the local database's sync counts: {e}");
            None
        }
    }
}

/// 1 when a pass left more failed syncs or conflicts than it found, else 0 (also when
/// either count is unknown).
pub(crate) fn new_notices(before: Option<&SyncCounts>, after: Option<&SyncCounts>) -> u64 {
    match (before, after) {
        (Some(before), Some(after)) => {
            (after.failed > before.failed || after.conflicts > before.conflicts) as u64
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pending: usize, failed: usize, conflicts: usize) -> SyncCounts {
        SyncCounts {
            pending,
            failed,
            conflicts,
            skipped: 0,
        }
    }

    fn status() -> EngineStatus {
        EngineStatus::starting(LocalState {
            counts: counts(7, 2, 1),
            last_sync: Some(DateTime::UNIX_EPOCH),
            documents_note: None,
        })
    }

    #[test]
    fn the_waiting_count_goes_down_as_the_push_is_answered() {
        let mut s = status();
        let pushing = |done, settled| Progress::Pushing {
            done,
            total: 7,
            settled,
        };
        s.show_progress(pushing(2, 0), Some(7));
        assert_eq!(s.pending, 7, "sent, not answered yet");
        s.show_progress(pushing(4, 3), Some(7));
        assert_eq!(s.pending, 4);
        s.show_progress(pushing(7, 9), Some(7));
        assert_eq!(s.pending, 0, "never below nothing");
        s.show_progress(Progress::Pulling { rows: 5 }, Some(7));
        assert_eq!(s.pending, 0, "other steps leave it");
        let mut unknown = status();
        unknown.show_progress(pushing(4, 3), None);
        assert_eq!(
            unknown.pending, 7,
            "unknown at the start: left until the pass ends"
        );
    }

    #[test]
    fn a_failed_read_keeps_the_last_known_counts_and_says_why() {
        let mut s = status();
        s.take_local(Err(StoreError::Corrupt("file is not a database".into())));
        assert_eq!((s.pending, s.failed, s.conflicts), (7, 2, 1));
        assert_eq!(s.last_sync, Some(DateTime::UNIX_EPOCH));
        let error = s.last_error.unwrap_or_default();
        assert!(
            error.starts_with("cannot read the local database: ")
                && error.contains("file is not a database"),
            "{error}"
        );
    }

    #[test]
    fn the_unreadable_message_goes_once_the_database_reads_again() {
        let mut s = status();
        s.take_local(Err(StoreError::Corrupt("file is not a database".into())));
        s.take_local(Ok(LocalState {
            counts: counts(1, 0, 0),
            last_sync: None,
            documents_note: None,
        }));
        assert_eq!(s.pending, 1);
        assert_eq!(s.last_error, None);
    }

    #[test]
    fn a_read_replaces_the_counts_and_keeps_the_last_error() {
        let mut s = status();
        s.last_error = Some("the sync server answered 500".into());
        s.take_local(Ok(LocalState {
            counts: counts(0, 3, 0),
            last_sync: None,
            documents_note: None,
        }));
        assert_eq!((s.pending, s.failed, s.conflicts), (0, 3, 0));
        assert_eq!(s.last_sync, None);
        assert_eq!(
            s.last_error.as_deref(),
            Some("the sync server answered 500")
        );
    }

    #[test]
    fn a_notice_needs_both_counts_and_a_new_failure_or_conflict() {
        let (b, more_failed, more_conflicts) = (counts(5, 1, 1), counts(0, 2, 1), counts(0, 1, 2));
        assert_eq!(new_notices(Some(&b), Some(&more_failed)), 1);
        assert_eq!(new_notices(Some(&b), Some(&more_conflicts)), 1);
        assert_eq!(new_notices(Some(&b), Some(&counts(0, 1, 1))), 0);
        assert_eq!(new_notices(None, Some(&more_failed)), 0);
        assert_eq!(new_notices(Some(&b), None), 0);
    }
}
