//! One sync pass: push the outbox, then pull to the end of the server's log.
//!
//! [`run_pass`] is what `outpost sync` calls directly and what the background task
//! (`task.rs`) runs when the machine says so. The push is `push.rs`'s (batches, their
//! evidence, splitting a batch refused as a whole, setting aside what cannot be sent);
//! other photos go after it (`upload.rs`). The pull runs even when the push failed,
//! unless the server cannot be reached or will not take the session, and applies pages
//! until the log ends, priming (or re-priming when the server asks) from nothing.
//! Every loop is bounded. Tokens are `auth.rs`'s; when to run a pass is the machine's
//! decision, not this module's. [`fetch_attachment`] (one download, checked against its
//! name) is here because it shares the pass's token handling.

use chrono::{DateTime, Utc};
use outpost_protocol::limits;
use outpost_protocol::wire::{LogRange, PrimingPhase, PullRequest};
use outpost_store::{AckedRows, PushSummary, Store, SyncCounts};
use serde::Serialize;

use crate::auth::authed;
use crate::documents::sync_documents;
use crate::error::SyncError;
use crate::push::push;
use crate::transport::{PullAhead, Transport};
use crate::upload::{upload, UploadSizes};

/// How a pass sizes its work. Every loop below is bounded by these. The sizes default
/// to the protocol's (`outpost_protocol::limits`), which the server accepts.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// A manual "sync now": every unacknowledged mutation is tried once, whatever its
    /// retry time.
    pub ignore_backoff: bool,
    pub batch_count: usize,
    pub batch_bytes: usize,
    pub pull_limit: Option<u32>,
    pub pull_max_bytes: Option<u64>,
    /// Files up to this size go in batched uploads, up to `batch_files` and
    /// `upload_batch_bytes` (the files' bytes) to a request; larger
    /// ones go resumably in chunks of `chunk_bytes`.
    pub small_file_bytes: usize,
    pub batch_files: usize,
    pub upload_batch_bytes: usize,
    pub chunk_bytes: usize,
    pub retry_delay_ms_min: u64,
    pub retry_delay_ms_max: u64,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions {
            ignore_backoff: false,
            batch_count: limits::PUSH_MUTATIONS_DEFAULT,
            batch_bytes: limits::PUSH_BYTES_DEFAULT,
            pull_limit: Some(limits::PULL_LIMIT_DEFAULT),
            pull_max_bytes: None,
            small_file_bytes: limits::BATCH_FILE_BYTES_DEFAULT,
            batch_files: limits::BATCH_FILES_DEFAULT,
            upload_batch_bytes: limits::BATCH_UPLOAD_BYTES_DEFAULT,
            chunk_bytes: limits::CHUNK_BYTES_DEFAULT,
            retry_delay_ms_min: 1_000,
            retry_delay_ms_max: 300_000,
        }
    }
}

/// How often a pass looks for attachment files nothing needs any more, to delete them
/// (the look reads every order's body on the device).
pub const PRUNE_ATTACHMENTS_EVERY: chrono::Duration = chrono::Duration::hours(1);

/// Setting that defers photos not part of a completion (a metered or slow link).
pub const SETTING_PHOTO_UPLOADS: &str = "photo_uploads";
/// Upload only the evidence of completions; other photos wait.
pub const PHOTO_UPLOADS_WITH_COMPLETIONS: &str = "with_completions";

/// Progress of long work, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Progress {
    Pushing {
        done: usize,
        total: usize,
        /// Changes answered for good so far in this pass (acknowledged, refused, or
        /// decided elsewhere): they no longer wait on this device, and the engine's
        /// count of waiting changes goes down by them while the push runs.
        settled: usize,
    },
    Uploading {
        done: usize,
        total: usize,
    },
    Priming {
        phase: PrimingPhase,
        done: u64,
        total: u64,
    },
    Pulling {
        rows: u64,
    },
    /// Downloading technical documents: `file` of `files`, bytes of all of them.
    Documents {
        file: usize,
        files: usize,
        done_bytes: u64,
        total_bytes: u64,
    },
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub pushed: usize,
    /// Answered for good (acknowledged, refused, or decided elsewhere first).
    pub settled: usize,
    pub acknowledged: usize,
    pub rejected: usize,
    pub conflicts: usize,
    pub uploaded: usize,
    pub pulled_rows: usize,
    pub pages: usize,
    pub removed: usize,
    pub requests: usize,
    pub bytes_sent: usize,
    pub bytes_received: usize,
    pub resynced: bool,
    /// 1 when the documents step changed the device's documents (a manual listed,
    /// downloaded, replaced or dropped), else 0.
    pub documents_changed: usize,
    /// What is left after the pass.
    pub remaining: SyncCounts,
    /// What this pass's push answers gave the device, for its pull.
    #[serde(skip)]
    pub(crate) echo: Echo,
}

/// What the push answers of one pass gave the device: the log ranges of the pushes
/// whose every result it recorded (confirmed with each pull of the same pass, so the
/// server leaves out the order rows those answers carried), and the order rows it took
/// (so that an older row of one of those orders, pulled after, never replaces it). In
/// memory for the pass only: a range of a push whose answer was lost is never here, so
/// the pull brings that push's rows (docs/protocol.md, "What a page leaves out").
#[derive(Debug, Clone, Default)]
pub(crate) struct Echo {
    ranges: Vec<LogRange>,
    rows: AckedRows,
}

impl Echo {
    /// A push answer recorded: its range (when it wrote one and every result found its
    /// sealed row here) and the rows it gave.
    pub(crate) fn note(&mut self, written: Option<&LogRange>, summary: &PushSummary) {
        self.rows.note(&summary.taken);
        let Some(w) = written.filter(|_| summary.unmatched == 0) else {
            return;
        };
        match self.ranges.last_mut() {
            // Consecutive pushes with no other writer between them: one range.
            Some(prev) if prev.epoch == w.epoch && prev.last.checked_add(1) == Some(w.first) => {
                prev.last = w.last;
            }
            _ => self.ranges.push(w.clone()),
        }
        if self.ranges.len() > limits::CONFIRMED_RANGES_MAX {
            // The oldest goes: its rows only come back.
            self.ranges.remove(0);
        }
    }
}

impl PassReport {
    /// Whether the pass changed what the device shows: rows applied from a pull, its
    /// own changes acknowledged, refused or held in a conflict, orders removed, a
    /// re-prime, or documents. A pass that found nothing to do says no, so that a
    /// window re-reads its screens only after a pass that matters (issue 25 item 3).
    pub fn changed_local_data(&self) -> bool {
        self.pulled_rows > 0
            || self.acknowledged > 0
            || self.rejected > 0
            || self.conflicts > 0
            || self.removed > 0
            || self.resynced
            || self.documents_changed > 0
    }
}

/// One full sync: push every eligible mutation (uploading the evidence it names
/// first), then pull to the end of the log, re-priming when the server asks. When the
/// server says the tokens will never work again, the session is marked so that every
/// view shows "sign in again"; unsynced work stays.
pub async fn run_pass(
    store: &mut Store,
    client: &impl Transport,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    opts: &PassOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<PassReport, SyncError> {
    let mut report = PassReport::default();
    run_pass_into(store, client, clock, opts, progress, &mut report).await?;
    Ok(report)
}

/// [`run_pass`], writing what it did into `report` as it goes: when the pass fails
/// part-way, `report` still says what it changed before the failure (the engine's
/// status tells the window from it).
pub(crate) async fn run_pass_into(
    store: &mut Store,
    client: &impl Transport,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    opts: &PassOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
    report: &mut PassReport,
) -> Result<(), SyncError> {
    let result = pass(store, client, clock, opts, progress, report).await;
    if let Err(SyncError::SignInRequired(reason)) = &result {
        if let Some(mut s) = store.session()? {
            if s.needs_sign_in.is_none() {
                s.needs_sign_in = Some(reason.clone());
                store.set_session(&s)?;
            }
        }
    }
    result
}

/// Tell the client what this device has not sent, for the requests that follow.
pub(crate) fn report_unsent(
    store: &Store,
    client: &impl Transport,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    client.report_unsent(&store.unsent_report(now)?);
    Ok(())
}

/// Whether the pull still runs after the push failed with `e`: yes (a reassignment, a
/// dispatcher's decision still arrive), unless the server cannot be reached, asked to
/// wait, or will not take this session.
fn pull_after(e: &SyncError) -> bool {
    !e.is_offline()
        && e.retry_after().is_none()
        && !matches!(
            e,
            SyncError::SignInRequired(_)
                | SyncError::NotSignedIn
                | SyncError::Store(_)
                | SyncError::Server { status: 429, .. }
        )
}

async fn pass(
    store: &mut Store,
    client: &impl Transport,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    opts: &PassOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
    report: &mut PassReport,
) -> Result<(), SyncError> {
    let mut sizes = UploadSizes {
        small_file_bytes: opts.small_file_bytes,
        batch_files: opts.batch_files,
        batch_bytes: opts.upload_batch_bytes,
        chunk_bytes: opts.chunk_bytes,
    };
    report_unsent(store, client, clock())?;
    let push_failed = match push(store, client, clock, opts, &mut sizes, report, progress).await {
        Ok(()) => None,
        Err(e) if pull_after(&e) => {
            tracing::warn!("push failed ({e}); pulling all the same");
            Some(e)
        }
        Err(e) => return Err(e),
    };

    // Other photos, last, unless the bandwidth setting keeps them for a better link.
    if push_failed.is_none()
        && store.get_setting(SETTING_PHOTO_UPLOADS)?.as_deref()
            != Some(PHOTO_UPLOADS_WITH_COMPLETIONS)
    {
        let rest = store.attachments_pending_upload()?;
        if !rest.is_empty() {
            let now = clock();
            for u in upload(store, client, now, &rest, &mut sizes, report, progress).await? {
                // Named only by changes already sent: nothing to set aside; the file
                // stays queued and the reason is logged.
                tracing::warn!(hash = %u.hash, "photo not uploaded: {}", u.why.message);
            }
        }
    }

    report_unsent(store, client, clock())?;
    let pulled = pull(store, client, clock, opts, report, progress).await;
    if let Some(e) = push_failed {
        // The push's failure is the pass's, unless the pull says to sign in again.
        return Err(match pulled {
            Err(signin @ SyncError::SignInRequired(_)) => signin,
            _ => e,
        });
    }
    pulled?;
    store.set_last_sync_at(clock())?;
    // Documents after the orders they are for (when priming, the pull ran them
    // before the inventory catalogue already; this brings later changes).
    sync_documents(store, client, clock, report, progress).await?;
    store.prune_attachments_if_due(clock(), PRUNE_ATTACHMENTS_EVERY)?;
    report.remaining = store.sync_counts()?;
    Ok(())
}

/// Pull pages to the end of the log, priming from nothing (or again, once, when the
/// server asks).
async fn pull(
    store: &mut Store,
    client: &impl Transport,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    opts: &PassOptions,
    report: &mut PassReport,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SyncError> {
    let mut rows: u64 = 0;
    let mut documents_done = false;
    // The next page, asked for before the current one is applied, with the cursor it
    // was asked from: used only if the store then stands at that cursor.
    let mut ahead: Option<(Option<String>, PullAhead<'_>)> = None;
    for _page in 0..1_000_000u32 {
        if store.pull_cursor()?.is_none() && !store.is_priming()? {
            store.begin_priming()?;
        }
        let req = PullRequest {
            cursor: store.pull_cursor()?,
            limit: opts.pull_limit,
            max_bytes: opts.pull_max_bytes,
            confirmed: report.echo.ranges.clone(),
        };
        let now = clock();
        let early = match ahead.take() {
            Some((cursor, page)) if cursor == req.cursor => match page.wait().await {
                // The token expired meanwhile: asked again below, through the refresh.
                Err(SyncError::Unauthorized(_)) => None,
                other => Some(other),
            },
            _ => None,
        };
        let result = match early {
            Some(result) => result,
            None => authed!(store, client, now, report, |t| client.pull(&t, &req)),
        };
        let (page, received) = match result {
            Ok(p) => p,
            Err(SyncError::ResyncRequired) if !report.resynced => {
                report.resynced = true;
                // Another epoch: the answers' ranges and versions belong to the old one.
                report.echo = Echo::default();
                store.begin_priming()?;
                continue;
            }
            Err(e) => return Err(e),
        };
        report.bytes_received += received;
        // A first sync fetches the documents of its orders before the inventory
        // catalogue: once the snapshot reaches the inventory, the orders are all here.
        if !documents_done
            && page
                .priming
                .as_ref()
                .is_some_and(|p| p.phase == PrimingPhase::Inventory)
        {
            documents_done = true;
            sync_documents(store, client, clock, report, progress).await?;
        }
        if page.has_more {
            let token = crate::auth::access_token(store, client, now, None).await?;
            report.requests += 1;
            let next = PullRequest {
                cursor: Some(page.cursor.clone()),
                ..req
            };
            ahead = Some((next.cursor.clone(), client.pull_ahead(token, next)));
        }
        let summary = store.apply_pull_page_after(&page, clock(), &report.echo.rows)?;
        report.pages += 1;
        report.pulled_rows += page.changes.len();
        report.removed += summary.removed;
        report.acknowledged += summary.acknowledged;
        report.rejected += summary.rejected;
        rows += page.changes.len() as u64;
        match &page.priming {
            Some(p) => progress(Progress::Priming {
                phase: p.phase,
                done: p.done,
                total: p.total,
            }),
            // A delta that brought nothing shows no progress (an idle pass every
            // interval would flash a progress bar and wake the window for nothing).
            None if rows > 0 => progress(Progress::Pulling { rows }),
            None => {}
        }
        if !page.has_more {
            break;
        }
    }
    Ok(())
}

/// Download an attachment from the server (a dispatcher viewing evidence), checking
/// that its bytes match its name.
pub async fn fetch_attachment(
    store: &mut Store,
    client: &impl Transport,
    now: DateTime<Utc>,
    hash: &str,
) -> Result<Vec<u8>, SyncError> {
    let mut report = PassReport::default();
    let bytes = authed!(store, client, now, report, |t| client.download(&t, hash))?;
    tracing::debug!(requests = report.requests, "downloaded attachment {hash}");
    if outpost_protocol::attachment_hash(&bytes) != hash {
        return Err(SyncError::BadAnswer(format!(
            "attachment {hash} arrived damaged (its content does not match its name)"
        )));
    }
    Ok(bytes)
}

/// The fleet's sync health as the server sees it (a dispatcher's view; issue 21).
pub async fn fetch_fleet(
    store: &mut Store,
    client: &crate::client::SyncClient,
    now: DateTime<Utc>,
    stale_after_secs: Option<u64>,
) -> Result<outpost_protocol::fleet::FleetHealth, SyncError> {
    let mut report = PassReport::default();
    let table = authed!(store, client, now, report, |t| client
        .fleet(&t, stale_after_secs))?;
    tracing::debug!(requests = report.requests, "fetched the fleet's health");
    Ok(table)
}
