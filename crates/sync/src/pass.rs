//! One sync pass: push the outbox, then pull to the end of the server's log.
//!
//! [`run_pass`] is what `outpost sync` calls directly and what the background task
//! (`task.rs`) runs when the machine says so. Pushing takes the eligible mutations in
//! lanes (`lanes.rs`), uploads the evidence a completion names first (`upload.rs`),
//! defers what failed for a reason that may pass with capped, jittered backoff, and
//! resends once a mutation the server refused for a missing attachment. Pulling
//! applies pages until the log ends, priming (or re-priming when the server asks) from
//! nothing. Every loop is bounded. Tokens are `auth.rs`'s; when to run a pass is the
//! machine's decision, not this module's. [`fetch_attachment`] (one download, checked
//! against its name) is here because it shares the pass's token handling.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use outpost_protocol::limits;
use outpost_protocol::wire::{PrimingPhase, PullRequest};
use outpost_store::{Store, SyncCounts};
use serde::Serialize;

use crate::auth::authed;
use crate::error::SyncError;
use crate::lanes::in_lanes;
use crate::machine::backoff_ms;
use crate::transport::Transport;
use crate::upload::upload;

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
    /// Files up to this size go in batched uploads, `batch_files` to a request; larger
    /// ones go resumably in chunks of `chunk_bytes`.
    pub small_file_bytes: usize,
    pub batch_files: usize,
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
            chunk_bytes: limits::CHUNK_BYTES_DEFAULT,
            retry_delay_ms_min: 1_000,
            retry_delay_ms_max: 300_000,
        }
    }
}

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
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    pub pushed: usize,
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
    /// What is left after the pass.
    pub remaining: SyncCounts,
}

/// The retry jitter's seed for one mutation (FNV-1a of its id): the same for each of
/// its retries, different between mutations, so a batch's retries spread out.
fn jitter_seed(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
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
    let result = pass(store, client, clock, opts, progress).await;
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

async fn pass(
    store: &mut Store,
    client: &impl Transport,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    opts: &PassOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<PassReport, SyncError> {
    let mut report = PassReport::default();
    let mut tried: HashSet<String> = HashSet::new();
    let mut resent_after_upload: HashMap<String, u32> = HashMap::new();
    let total_pending = store.sync_counts()?.pending;

    // Push. Bounded: each round sends at least one mutation not sent before in this
    // pass (or one resent once after its missing attachments were uploaded).
    for _round in 0..=total_pending.saturating_add(1) {
        let now = clock();
        let eligible: Vec<_> = store
            .next_push_batch(usize::MAX, usize::MAX, now, opts.ignore_backoff)?
            .into_iter()
            .filter(|r| !tried.contains(&r.mutation_id))
            .collect();
        let batch: Vec<_> = in_lanes(eligible)
            .into_iter()
            .scan(0usize, |bytes, r| {
                *bytes += r.body.len();
                Some((*bytes, r))
            })
            .enumerate()
            .take_while(|(i, (bytes, _))| {
                *i == 0 || (*i < opts.batch_count && *bytes <= opts.batch_bytes)
            })
            .map(|(_, (_, r))| r)
            .collect();
        if batch.is_empty() {
            break;
        }
        let ids: Vec<String> = batch.iter().map(|r| r.mutation_id.clone()).collect();
        // Seal first, and send exactly the bytes sealed: an edit saved from here on
        // (during a long upload, by the app or another process) makes a new row instead
        // of changing one this request carries.
        let batch = store.mark_sent(&ids)?;
        let ids: Vec<String> = batch.iter().map(|r| r.mutation_id.clone()).collect();
        // Completions travel with their own evidence; other photos go last.
        let completions: Vec<_> = batch
            .iter()
            .filter(|r| r.mutation.kind == outpost_protocol::MutationKind::Complete)
            .cloned()
            .collect();
        let needed = store.attachments_to_upload(&completions)?;
        if !needed.is_empty() {
            upload(store, client, now, &needed, opts, &mut report, progress).await?;
        }
        let bodies: Vec<&str> = batch.iter().map(|r| r.body.as_str()).collect();
        let result = authed!(store, client, now, report, |t| client.push(&t, &bodies));
        let (resp, sent) = match result {
            Ok(r) => r,
            Err(e) => {
                if e.is_transient() {
                    for r in &batch {
                        let wait = backoff_ms(
                            r.attempts.max(0) as u32,
                            opts.retry_delay_ms_min,
                            opts.retry_delay_ms_max,
                            jitter_seed(&r.mutation_id),
                        )
                        .max(e.retry_after().map(|d| d.as_millis() as u64).unwrap_or(0));
                        store.defer_push(
                            std::slice::from_ref(&r.mutation_id),
                            now + chrono::Duration::milliseconds(wait as i64),
                            &e.to_string(),
                        )?;
                    }
                }
                return Err(e);
            }
        };
        report.bytes_sent += sent;
        let answered: HashSet<String> = resp
            .results
            .iter()
            .map(|r| r.mutation_id.to_string())
            .collect();
        if resp.results.len() != batch.len() || ids.iter().any(|id| !answered.contains(id)) {
            return Err(SyncError::BadAnswer(
                "the push answer does not match the mutations sent; they stay queued".into(),
            ));
        }
        let summary = store.record_push_results(&resp.results, clock())?;
        report.pushed += batch.len();
        report.acknowledged += summary.acknowledged;
        report.rejected += summary.rejected;
        report.conflicts += summary.conflicts;
        let mut missing_ids = HashSet::new();
        for (id, hashes) in &summary.missing_attachments {
            let n = resent_after_upload.entry(id.clone()).or_insert(0);
            *n += 1;
            if *n <= 1 {
                upload(store, client, clock(), hashes, opts, &mut report, progress).await?;
                missing_ids.insert(id.clone());
            }
        }
        tried.extend(ids.into_iter().filter(|id| !missing_ids.contains(id)));
        progress(Progress::Pushing {
            done: report.pushed,
            total: total_pending.max(report.pushed),
        });
    }

    // Other photos, last, unless the bandwidth setting keeps them for a better link.
    if store.get_setting(SETTING_PHOTO_UPLOADS)?.as_deref() != Some(PHOTO_UPLOADS_WITH_COMPLETIONS)
    {
        let rest = store.attachments_pending_upload()?;
        if !rest.is_empty() {
            upload(store, client, clock(), &rest, opts, &mut report, progress).await?;
        }
    }

    // Pull.
    let mut rows: u64 = 0;
    for _page in 0..1_000_000u32 {
        if store.pull_cursor()?.is_none() && !store.is_priming()? {
            store.begin_priming()?;
        }
        let req = PullRequest {
            cursor: store.pull_cursor()?,
            limit: opts.pull_limit,
            max_bytes: opts.pull_max_bytes,
        };
        let now = clock();
        let result = authed!(store, client, now, report, |t| client.pull(&t, &req));
        let (page, received) = match result {
            Ok(p) => p,
            Err(SyncError::ResyncRequired) if !report.resynced => {
                report.resynced = true;
                store.begin_priming()?;
                continue;
            }
            Err(e) => return Err(e),
        };
        report.bytes_received += received;
        let summary = store.apply_pull_page(&page, clock())?;
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
            None => progress(Progress::Pulling { rows }),
        }
        if !page.has_more {
            break;
        }
    }
    store.set_last_sync_at(clock())?;
    store.prune_attachments()?;
    report.remaining = store.sync_counts()?;
    Ok(report)
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
