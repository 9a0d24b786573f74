//! The driver: runs the machine's instructions with reqwest and the store.
//!
//! [`run_pass`] is one full sync (push the outbox, then pull to the end of the log);
//! `outpost sync` calls it directly. [`spawn`] starts the background task that feeds
//! events to the [`Machine`] and runs passes and probes when it says, publishing an
//! [`EngineStatus`] the embedder subscribes to. One process syncs a data directory at a
//! time: both hold a [`SyncLock`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use outpost_protocol::wire::{PrimingPhase, PullRequest, RefreshRequest};
use outpost_store::{Session, Store, SyncCounts};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::client::{ClientOptions, SyncClient};
use crate::error::SyncError;
use crate::machine::{backoff_ms, Connectivity, Event, Instruction, Machine, Millis, Timing};
use crate::transport::Transport;

/// How a pass sizes its work. Every loop below is bounded by these.
#[derive(Debug, Clone)]
pub struct PassOptions {
    /// A manual "sync now": every unacknowledged mutation is tried once, whatever its
    /// retry time.
    pub ignore_backoff: bool,
    pub batch_count: usize,
    pub batch_bytes: usize,
    pub pull_limit: Option<u32>,
    pub pull_max_bytes: Option<u64>,
    /// Files up to this size go in batched uploads; larger ones resumably in chunks.
    pub small_file_bytes: usize,
    pub chunk_bytes: usize,
    pub retry_delay_ms_min: u64,
    pub retry_delay_ms_max: u64,
}

impl Default for PassOptions {
    fn default() -> Self {
        PassOptions {
            ignore_backoff: false,
            batch_count: 100,
            batch_bytes: 1024 * 1024,
            pull_limit: Some(1000),
            pull_max_bytes: None,
            small_file_bytes: 32 * 1024,
            chunk_bytes: 1024 * 1024,
            retry_delay_ms_min: 1_000,
            retry_delay_ms_max: 300_000,
        }
    }
}

/// Setting that defers photos not part of a completion (a metered or slow link).
pub const SETTING_PHOTO_UPLOADS: &str = "photo_uploads";
/// Upload only the evidence of completions; other photos wait.
pub const PHOTO_UPLOADS_WITH_COMPLETIONS: &str = "with_completions";

/// Order the eligible rows by lane, keeping each order's own mutations in sequence:
/// orders with a completion first (the completion travels with everything before it
/// on that order), then other edits, then orders whose changes only add photos.
pub fn in_lanes(rows: Vec<outpost_store::OutboxRow>) -> Vec<outpost_store::OutboxRow> {
    use outpost_protocol::mutation::ListItem;
    use outpost_protocol::{MutationKind, Op};
    let mut groups: Vec<(u8, i64, Vec<outpost_store::OutboxRow>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in rows {
        match index.get(&row.entity_id) {
            Some(&i) => groups[i].2.push(row),
            None => {
                index.insert(row.entity_id.clone(), groups.len());
                groups.push((1, row.seq, vec![row]));
            }
        }
    }
    for g in &mut groups {
        let completes =
            g.2.iter()
                .any(|r| r.mutation.kind == MutationKind::Complete);
        let only_photos = g.2.iter().all(|r| {
            r.mutation.kind == MutationKind::Update
                && r.mutation
                    .ops
                    .iter()
                    .all(|op| matches!(op, Op::Add(ListItem::Photos(_))))
        });
        g.0 = if completes {
            0
        } else if only_photos {
            2
        } else {
            1
        };
    }
    groups.sort_by_key(|g| (g.0, g.1));
    groups.into_iter().flat_map(|g| g.2).collect()
}

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

/// Exclusive right to sync one data directory, held for as long as this lives.
#[derive(Debug)]
pub struct SyncLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl SyncLock {
    pub fn acquire(data_dir: &Path) -> Result<SyncLock, SyncError> {
        use std::io::{Read, Seek, Write};
        let path = data_dir.join("sync.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| SyncError::Locked(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = file.rewind();
                let _ = write!(file, "{}", std::process::id());
                Ok(SyncLock { _file: file, path })
            }
            Err(_) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(SyncError::Locked(format!(
                    "another Outpost process{} is already syncing {}: close it, or wait for it to finish",
                    if holder.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {})", holder.trim())
                    },
                    data_dir.display()
                )))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A valid access token, refreshed (once, here: the engine is the only user of the
/// session in this process) when it is about to expire or `force` says so.
async fn access_token(
    store: &mut Store,
    client: &impl Transport,
    now: DateTime<Utc>,
    force: bool,
) -> Result<String, SyncError> {
    let session = store.session()?.ok_or(SyncError::NotSignedIn)?;
    if let Some(reason) = &session.needs_sign_in {
        return Err(SyncError::SignInRequired(reason.clone()));
    }
    let fresh = session.access_expires_at > now + chrono::Duration::seconds(30);
    if fresh && !force {
        return Ok(session.access_token);
    }
    let req = RefreshRequest {
        refresh_token: session.refresh_token.clone(),
        device_id: session.device_id,
    };
    match client.refresh(&req).await {
        Ok(t) => {
            let updated = Session {
                access_token: t.access_token.clone(),
                access_expires_at: t.access_expires_at,
                refresh_token: t.refresh_token,
                refresh_expires_at: t.refresh_expires_at,
                ..session
            };
            store.set_session(&updated)?;
            Ok(t.access_token)
        }
        Err(SyncError::SignInRequired(reason)) | Err(SyncError::Unauthorized(reason)) => {
            let mut marked = session;
            marked.needs_sign_in = Some(reason.clone());
            store.set_session(&marked)?;
            Err(SyncError::SignInRequired(reason))
        }
        Err(e) => Err(e),
    }
}

/// Run `$call` with a token; on `Unauthorized`, refresh once and run it again.
macro_rules! authed {
    ($store:expr, $client:expr, $now:expr, $report:expr, |$tok:ident| $call:expr) => {{
        let $tok = access_token($store, $client, $now, false).await?;
        $report.requests += 1;
        match $call.await {
            Err(SyncError::Unauthorized(_)) => {
                let $tok = access_token($store, $client, $now, true).await?;
                $report.requests += 1;
                match $call.await {
                    Err(SyncError::Unauthorized(reason)) => Err(SyncError::SignInRequired(reason)),
                    other => other,
                }
            }
            other => other,
        }
    }};
}

fn jitter_seed(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

async fn upload(
    store: &mut Store,
    client: &impl Transport,
    now: DateTime<Utc>,
    hashes: &[String],
    opts: &PassOptions,
    report: &mut PassReport,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SyncError> {
    let total = hashes.len();
    let mut small: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, hash) in hashes.iter().enumerate() {
        let data = store.attachment(hash)?;
        if data.len() <= opts.small_file_bytes {
            small.push((hash.clone(), data));
        } else {
            report.bytes_sent += authed!(store, client, now, report, |t| client.upload_resumable(
                &t,
                hash,
                &data,
                opts.chunk_bytes
            ))?;
            store.mark_uploaded(hash)?;
            report.uploaded += 1;
        }
        progress(Progress::Uploading { done: i + 1, total });
    }
    for group in small.chunks(32) {
        report.bytes_sent += group.iter().map(|(_, d)| d.len() * 4 / 3).sum::<usize>();
        let resp = authed!(store, client, now, report, |t| client
            .upload_batch(&t, group))?;
        for r in resp.results {
            if r.complete {
                store.mark_uploaded(&r.hash)?;
                report.uploaded += 1;
            } else if let Some(e) = r.error {
                return Err(SyncError::Server {
                    status: 422,
                    code: e.code,
                    message: format!("attachment {}: {}", r.hash, e.message),
                    retry_after: None,
                });
            }
        }
    }
    Ok(())
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
        store.mark_sent(&ids)?;
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
    if outpost_store::attachment_hash(&bytes) != hash {
        return Err(SyncError::BadAnswer(format!(
            "attachment {hash} arrived damaged (its content does not match its name)"
        )));
    }
    Ok(bytes)
}

// ---------------------------------------------------------------------------------
// The background task
// ---------------------------------------------------------------------------------

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

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub client: ClientOptions,
    pub timing: Timing,
    pub pass: PassOptions,
    /// Listen to the OS's network change events and probe at once when they come
    /// (`netwatch.rs`).
    pub watch_network: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            client: ClientOptions::default(),
            timing: Timing::default(),
            pass: PassOptions::default(),
            watch_network: true,
        }
    }
}

#[derive(Debug)]
enum Command {
    SyncNow,
    LocalWrite,
    NetworkChanged,
    Stop,
}

/// The running engine. Dropping it stops the task; [`EngineHandle::stop`] waits for it.
#[derive(Debug)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    status: watch::Receiver<EngineStatus>,
    join: Option<JoinHandle<Store>>,
    _lock: SyncLock,
}

impl EngineHandle {
    pub fn sync_now(&self) {
        let _ = self.tx.try_send(Command::SyncNow);
    }

    /// Tell the engine a local write happened (it debounces).
    pub fn local_write(&self) {
        let _ = self.tx.try_send(Command::LocalWrite);
    }

    pub fn network_changed(&self) {
        let _ = self.tx.try_send(Command::NetworkChanged);
    }

    pub fn status(&self) -> EngineStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<EngineStatus> {
        self.status.clone()
    }

    /// Stop and wait (at most `timeout`) for a running pass to end.
    pub async fn stop(mut self, timeout: Duration) {
        let _ = self.tx.send(Command::Stop).await;
        if let Some(join) = self.join.take() {
            let _ = tokio::time::timeout(timeout, join).await;
        }
    }
}

/// Start the engine on its own store connection. Must be called inside a tokio
/// runtime. `lock` proves this process may sync the data directory.
pub fn spawn(
    mut store: Store,
    lock: SyncLock,
    config: EngineConfig,
) -> Result<EngineHandle, SyncError> {
    let counts = store.sync_counts()?;
    let initial = EngineStatus {
        connectivity: Connectivity::Offline,
        pending: counts.pending,
        failed: counts.failed,
        conflicts: counts.conflicts,
        last_sync: store.last_sync_at()?,
        progress: None,
        last_error: None,
        notices: 0,
    };
    let (status_tx, status_rx) = watch::channel(initial);
    let (tx, mut rx) = mpsc::channel::<Command>(64);
    if config.watch_network {
        let net_tx = tx.clone();
        tokio::spawn(async move {
            let wake = net_tx.clone();
            tokio::select! {
                () = crate::netwatch::watch(move || {
                    !matches!(
                        wake.try_send(Command::NetworkChanged),
                        Err(mpsc::error::TrySendError::Closed(_))
                    )
                }) => {}
                () = net_tx.closed() => {}
            }
        });
    }
    let join = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let ms = |t: tokio::time::Instant| t.duration_since(started).as_millis() as Millis;
        let seed = uuid::Uuid::new_v4().as_u128() as u64;
        let mut machine = Machine::new(config.timing.clone(), seed);
        let mut wake: Option<Millis> = None;
        let mut queue = std::collections::VecDeque::from([Event::Started]);
        let mut client: Option<SyncClient> = None;
        let publish = |store: &Store, f: &dyn Fn(&mut EngineStatus)| {
            let counts = store.sync_counts().unwrap_or_default();
            let last_sync = store.last_sync_at().ok().flatten();
            status_tx.send_modify(|s| {
                s.pending = counts.pending;
                s.failed = counts.failed;
                s.conflicts = counts.conflicts;
                s.last_sync = last_sync;
                f(s);
            });
        };
        'outer: loop {
            while let Some(event) = queue.pop_front() {
                let now = ms(tokio::time::Instant::now());
                for ins in machine.handle(now, event) {
                    match ins {
                        Instruction::Exit => break 'outer,
                        Instruction::WakeAt(t) => wake = Some(t),
                        Instruction::Publish(c) => publish(&store, &|s| s.connectivity = c.clone()),
                        Instruction::Probe => {
                            let url = match store.session() {
                                Ok(Some(s)) => s.server_url,
                                _ => {
                                    queue.push_back(Event::ProbeFailed("not signed in".into()));
                                    continue;
                                }
                            };
                            if client
                                .as_ref()
                                .map(|c| c.base_url() != url.trim_end_matches('/'))
                                .unwrap_or(true)
                            {
                                client = SyncClient::new(&url, &config.client).ok();
                            }
                            let ev = match &client {
                                Some(c) => match c.health().await {
                                    Ok(_) => Event::ProbeOk,
                                    Err(e) => Event::ProbeFailed(e.to_string()),
                                },
                                None => {
                                    Event::ProbeFailed("the server address is not valid".into())
                                }
                            };
                            queue.push_back(ev);
                        }
                        Instruction::RunPass { ignore_backoff } => {
                            let url = match store.session() {
                                Ok(Some(s)) => s.server_url,
                                _ => {
                                    queue.push_back(Event::PassFailed {
                                        offline: false,
                                        reason: SyncError::NotSignedIn.to_string(),
                                        retry_after: None,
                                    });
                                    continue;
                                }
                            };
                            if client
                                .as_ref()
                                .map(|c| c.base_url() != url.trim_end_matches('/'))
                                .unwrap_or(true)
                            {
                                client = SyncClient::new(&url, &config.client).ok();
                            }
                            let Some(c) = client.clone() else {
                                queue.push_back(Event::PassFailed {
                                    offline: false,
                                    reason: "the server address is not valid".into(),
                                    retry_after: None,
                                });
                                continue;
                            };
                            let before = store.sync_counts().unwrap_or_default();
                            let opts = PassOptions {
                                ignore_backoff,
                                ..config.pass.clone()
                            };
                            let tx_status = status_tx.clone();
                            let mut on_progress = move |p: Progress| {
                                tx_status.send_modify(|s| s.progress = Some(p));
                            };
                            let result =
                                run_pass(&mut store, &c, &Utc::now, &opts, &mut on_progress).await;
                            let after = store.sync_counts().unwrap_or_default();
                            let new_notices = (after.failed > before.failed
                                || after.conflicts > before.conflicts)
                                as u64;
                            let ev = match result {
                                Ok(_) => {
                                    publish(&store, &|s| {
                                        s.progress = None;
                                        s.last_error = None;
                                        s.notices += new_notices;
                                    });
                                    let retry_at = store.next_retry_at().ok().flatten().map(|t| {
                                        let delta =
                                            (t - Utc::now()).num_milliseconds().max(0) as u64;
                                        ms(tokio::time::Instant::now()) + delta
                                    });
                                    Event::PassOk { retry_at }
                                }
                                Err(SyncError::SignInRequired(reason)) => {
                                    publish(&store, &|s| {
                                        s.progress = None;
                                        s.last_error = Some(reason.clone());
                                    });
                                    Event::SignInRequired(reason)
                                }
                                Err(e) => {
                                    let text = e.to_string();
                                    publish(&store, &|s| {
                                        s.progress = None;
                                        s.last_error = Some(text.clone());
                                        s.notices += new_notices;
                                    });
                                    Event::PassFailed {
                                        offline: e.is_offline(),
                                        reason: text,
                                        retry_after: e.retry_after().map(|d| d.as_millis() as u64),
                                    }
                                }
                            };
                            queue.push_back(ev);
                        }
                    }
                }
            }
            let sleep_for = wake
                .map(|t| t.saturating_sub(ms(tokio::time::Instant::now())))
                .unwrap_or(3_600_000);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Command::SyncNow) => queue.push_back(Event::SyncNow),
                    Some(Command::LocalWrite) => {
                        publish(&store, &|_| {});
                        queue.push_back(Event::LocalWrite);
                    }
                    Some(Command::NetworkChanged) => queue.push_back(Event::NetworkChanged),
                    Some(Command::Stop) | None => queue.push_back(Event::Stop),
                },
                _ = tokio::time::sleep(Duration::from_millis(sleep_for)) => {
                    wake = None;
                    queue.push_back(Event::Tick);
                }
            }
        }
        store
    });
    Ok(EngineHandle {
        tx,
        status: status_rx,
        join: Some(join),
        _lock: lock,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::mutation::{EntityKind, ListItem};
    use outpost_protocol::{Mutation, MutationKind, Op, PhotoRef, SetOp, FORMAT_VERSION};

    fn row(seq: i64, entity: u128, kind: MutationKind, ops: Vec<Op>) -> outpost_store::OutboxRow {
        let m = Mutation {
            mutation_id: uuid::Uuid::from_u128(seq as u128),
            device_id: uuid::Uuid::nil(),
            entity: EntityKind::WorkOrder,
            entity_id: uuid::Uuid::from_u128(entity),
            kind,
            base_version: 1,
            format: FORMAT_VERSION,
            device_time: Utc::now(),
            ops,
        };
        outpost_store::OutboxRow {
            seq,
            mutation_id: m.mutation_id.to_string(),
            entity: "work_order".into(),
            entity_id: m.entity_id.to_string(),
            kind: kind.as_str().into(),
            base_version: 1,
            state: outpost_store::OutboxState::Pending,
            attempts: 0,
            created_at: String::new(),
            next_attempt_at: None,
            last_error: None,
            body: serde_json::to_string(&m).unwrap_or_default(),
            mutation: m,
        }
    }

    #[test]
    fn completions_go_first_other_photos_last_and_each_order_keeps_its_sequence() {
        let photo = || {
            vec![Op::Add(ListItem::Photos(PhotoRef {
                hash: "a".repeat(64),
                caption: String::new(),
                media_type: "image/jpeg".into(),
            }))]
        };
        let title = || vec![Op::Set(SetOp::Title("t".into()))];
        let rows = vec![
            row(1, 10, MutationKind::Update, photo()),
            row(2, 20, MutationKind::Update, title()),
            row(3, 30, MutationKind::Update, title()),
            row(4, 30, MutationKind::Complete, title()),
            row(5, 40, MutationKind::Update, title()),
        ];
        let order: Vec<i64> = in_lanes(rows).iter().map(|r| r.seq).collect();
        assert_eq!(order, [3, 4, 2, 5, 1]);
    }
}
