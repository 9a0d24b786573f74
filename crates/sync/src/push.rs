//! The push phase of a pass: the outbox goes up in batches, and one bad request never
//! stops the others.
//!
//! Each round takes the eligible rows in lanes (`lanes.rs`), seals them, uploads the
//! evidence their completions name (`upload.rs`) and sends exactly the sealed bytes.
//! Then:
//! - A completion whose photo or signature cannot be sent (missing or damaged on this
//!   device, refused by the server) is set aside alone, as a failed sync with the reason;
//!   the rest of the batch goes on.
//! - A batch refused as a whole for what it carries (413 from a proxy's body limit, a
//!   400 from a server that cannot parse one of its mutations, an answer that does not
//!   match it) is split in halves until the mutation that causes the refusal is alone.
//!   That one is deferred like a transient failure; refused alone
//!   [`REFUSALS_BEFORE_SET_ASIDE`] times, it is set aside as a failed sync with the
//!   server's reason. Every other mutation goes through in the same pass.
//! - A transient failure (no route, a timeout, 5xx, 429) defers what was not answered
//!   with capped, jittered backoff and ends the push; the pass still pulls.
//! - A mutation the server answers `missing_attachments` (or `held_behind`) for is sent
//!   again once in the pass, after its files are uploaded.
//!
//! An order whose mutation failed, waits or was set aside in this pass holds back its
//! later mutations for the rest of the pass, so each order's changes keep their
//! sequence. Every loop is bounded by the outbox's size.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use outpost_protocol::wire::{ErrorCode, PushOutcome, PushResponse, Rejection};
use outpost_protocol::MutationKind;
use outpost_store::{OutboxRow, OutboxState, Store};

use crate::error::SyncError;
use crate::lanes::in_lanes;
use crate::machine::backoff_ms;
use crate::pass::{report_unsent, PassOptions, PassReport, Progress};
use crate::transport::Transport;
use crate::upload::{rejection, too_large, upload, Unsendable, UploadSizes};

/// How many times a mutation is refused on its own, by a refusal of the whole request,
/// before the device sets it aside for a person.
pub const REFUSALS_BEFORE_SET_ASIDE: u32 = 3;

/// The retry jitter's seed for one mutation (FNV-1a of its id): the same for each of
/// its retries, different between mutations, so a batch's retries spread out.
fn jitter_seed(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// When a row that failed for a reason that may pass is tried again.
fn retry_at(
    row: &OutboxRow,
    now: DateTime<Utc>,
    opts: &PassOptions,
    e: &SyncError,
) -> DateTime<Utc> {
    let wait = backoff_ms(
        row.attempts.max(0) as u32,
        opts.retry_delay_ms_min,
        opts.retry_delay_ms_max,
        jitter_seed(&row.mutation_id),
    )
    .max(e.retry_after().map(|d| d.as_millis() as u64).unwrap_or(0));
    now + chrono::Duration::milliseconds(wait as i64)
}

/// A refusal of the whole request because of what it carries: split the batch to find
/// the mutation that causes it. Not so: a server that no longer speaks this protocol
/// (it refuses every request alike), and a body that arrived cut short or mangled
/// (`malformed_json`: the device sends the well-formed bytes it stored, so the network
/// or a proxy broke them; the next pass sends them again).
fn refuses_the_batch(e: &SyncError) -> bool {
    if too_large(e) {
        return true;
    }
    match e {
        SyncError::BadAnswer(_) => true,
        SyncError::Server {
            status: 400, code, ..
        } => !matches!(
            code,
            ErrorCode::UnsupportedProtocol | ErrorCode::MalformedJson | ErrorCode::InvalidUtf8
        ),
        _ => false,
    }
}

/// The reason a mutation refused alone is set aside with, in words a person can act on.
fn set_aside_reason(e: &SyncError) -> Rejection {
    let (code, message) = match e {
        SyncError::Server { status: 413, .. } => (
            ErrorCode::PayloadTooLarge,
            format!(
                "this change is too large for the server, or for a proxy in front of it, to \
                 accept ({e}): shorten it (fewer or smaller notes) and retry, or discard it"
            ),
        ),
        SyncError::Server { code, message, .. } => (
            *code,
            format!(
                "the server cannot take this change ({message}); it may need a newer server: \
                 ask your administrator, then retry, or discard it"
            ),
        ),
        other => (
            ErrorCode::Unknown,
            format!("the server's answer to this change never matched it ({other}): retry later, or discard it"),
        ),
    };
    rejection(code, message)
}

/// Which files each completion of `rows` names (those not known to be uploaded).
fn evidence_of<'r>(
    store: &Store,
    rows: impl IntoIterator<Item = &'r OutboxRow>,
) -> Result<Vec<(usize, Vec<String>)>, SyncError> {
    let mut out = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        if row.mutation.kind == MutationKind::Complete {
            let hashes = store.attachments_to_upload(std::slice::from_ref(row))?;
            if !hashes.is_empty() {
                out.push((i, hashes));
            }
        }
    }
    Ok(out)
}

/// Each file [`evidence_of`] found, once.
fn distinct_files(named: &[(usize, Vec<String>)]) -> Vec<String> {
    let mut seen: HashSet<&str> = HashSet::new();
    named
        .iter()
        .flat_map(|(_, hashes)| hashes)
        .filter(|h| seen.insert(h.as_str()))
        .cloned()
        .collect()
}

/// The push phase's bookkeeping across rounds.
struct Push<'a> {
    opts: &'a PassOptions,
    sizes: &'a mut UploadSizes,
    /// Rows sent (or set aside, or deferred) in this pass: not taken again.
    tried: HashSet<String>,
    /// Orders whose mutation failed, waits or was set aside in this pass, with that
    /// row's place in the queue: the order's later rows wait behind it.
    blocked: HashMap<String, i64>,
    /// How often each row was answered `missing_attachments` or `held_behind`.
    resent: HashMap<String, u32>,
    /// An answer that settled every row it names, recorded once the next push has left
    /// (the device records it while the server applies that one), or when the push
    /// ends.
    unrecorded: Option<PushResponse>,
}

/// Whether an answer settles every row it names for good (applied, with or without a
/// conflict): nothing in it holds back, resends or sets aside a row, so what the pass
/// sends next does not depend on it and it may be recorded after the next push leaves.
fn settles_every_row(resp: &PushResponse) -> bool {
    resp.results.iter().all(|r| {
        matches!(
            r.outcome.first(),
            PushOutcome::Applied(_) | PushOutcome::AppliedWithConflicts(_)
        )
    })
}

impl Push<'_> {
    /// Set `row` aside for a person; its order's later rows wait.
    fn set_aside(
        &mut self,
        store: &mut Store,
        row: &OutboxRow,
        why: &Rejection,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), SyncError> {
        tracing::warn!(mutation = %row.mutation_id, code = why.code.as_str(), "set aside: {}", why.message);
        store.set_aside(&row.mutation_id, why, now)?;
        self.tried.insert(row.mutation_id.clone());
        self.block(row);
        report.rejected += 1;
        Ok(())
    }

    /// `row` failed, waits or was set aside: its order's later rows wait behind it.
    fn block(&mut self, row: &OutboxRow) {
        let at = self.blocked.entry(row.entity_id.clone()).or_insert(row.seq);
        *at = (*at).min(row.seq);
    }

    /// Whether `row` waits behind an earlier row of its order (see [`Push::block`]).
    fn held_back(&self, row: &OutboxRow) -> bool {
        self.blocked
            .get(&row.entity_id)
            .is_some_and(|at| row.seq > *at)
    }

    /// The next batch from the front of `queue` (rows in lanes), bounded by count and
    /// bytes (the first row goes whatever its size); rows settled or held back in this
    /// pass are dropped from the queue.
    fn take_batch(&self, queue: &mut VecDeque<OutboxRow>) -> Vec<OutboxRow> {
        let mut out: Vec<OutboxRow> = Vec::new();
        let mut bytes = 0usize;
        while let Some(row) = queue.pop_front() {
            if self.passed_over(&row) {
                continue;
            }
            if self.batch_full(out.len(), bytes, &row) {
                queue.push_front(row);
                break;
            }
            bytes += row.body.len();
            out.push(row);
        }
        out
    }

    /// The rows [`Push::take_batch`] would take from `queue` now, left in it.
    fn peek_batch<'q>(&self, queue: &'q VecDeque<OutboxRow>) -> Vec<&'q OutboxRow> {
        let mut out: Vec<&OutboxRow> = Vec::new();
        let mut bytes = 0usize;
        for row in queue.iter().filter(|r| !self.passed_over(r)) {
            if self.batch_full(out.len(), bytes, row) {
                break;
            }
            bytes += row.body.len();
            out.push(row);
        }
        out
    }

    /// A row settled or held back in this pass: not taken again.
    fn passed_over(&self, row: &OutboxRow) -> bool {
        self.tried.contains(&row.mutation_id) || self.held_back(row)
    }

    /// Whether a batch of `count` rows and `bytes` bytes is full before `next` (the
    /// first row goes whatever its size).
    fn batch_full(&self, count: usize, bytes: usize, next: &OutboxRow) -> bool {
        count > 0
            && (count >= self.opts.batch_count || bytes + next.body.len() > self.opts.batch_bytes)
    }

    /// Upload the evidence the batch's completions name. A completion whose files cannot
    /// be sent is set aside alone; the rows left to push are returned.
    async fn evidence(
        &mut self,
        store: &mut Store,
        client: &impl Transport,
        now: DateTime<Utc>,
        batch: Vec<OutboxRow>,
        report: &mut PassReport,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Vec<OutboxRow>, SyncError> {
        let named = evidence_of(store, &batch)?;
        let needed = distinct_files(&named);
        if needed.is_empty() {
            return Ok(batch);
        }
        let unsendable: Vec<Unsendable> =
            upload(store, client, now, &needed, self.sizes, report, progress).await?;
        for (i, hashes) in &named {
            if let Some(u) = unsendable.iter().find(|u| hashes.contains(&u.hash)) {
                self.set_aside(store, &batch[*i], &u.why, now, report)?;
            }
        }
        Ok(batch
            .into_iter()
            .filter(|r| !self.tried.contains(&r.mutation_id) && !self.held_back(r))
            .collect())
    }

    /// Upload the files the next batch will need while the server applies a push (it
    /// stores them right after). Best effort: a file that cannot go now is left for
    /// that batch's own upload, which sets its completion aside or defers the batch
    /// as usual; the window keeps showing the push's count.
    async fn upload_ahead(
        &mut self,
        store: &mut Store,
        client: &impl Transport,
        now: DateTime<Utc>,
        next: &VecDeque<OutboxRow>,
        report: &mut PassReport,
    ) {
        let needed = match evidence_of(store, self.peek_batch(next)) {
            Ok(named) if !named.is_empty() => distinct_files(&named),
            Ok(_) => return,
            Err(e) => {
                tracing::debug!("the next batch's files, not uploaded ahead: {e}");
                return;
            }
        };
        if let Err(e) = upload(store, client, now, &needed, self.sizes, report, &mut |_| {}).await {
            tracing::debug!("the next batch's files, not uploaded ahead: {e}");
        }
    }

    /// Send `part` and apply the answer. `Ok(Some)`: the request failed or its answer
    /// did not match it, and nothing was taken from it; `Err`: something else failed
    /// (the store, or uploading the files the answer asked for). While the server
    /// applies it, the device records the previous answer, if it waits, and uploads
    /// the files the batch at the front of `next` needs.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &mut self,
        store: &mut Store,
        client: &impl Transport,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
        part: &[OutboxRow],
        next: &VecDeque<OutboxRow>,
        report: &mut PassReport,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Option<SyncError>, SyncError> {
        let now = clock();
        let bodies: Vec<&str> = part.iter().map(|r| r.body.as_str()).collect();
        let ahead = crate::auth::access_token(store, client, now, None)
            .await
            .map(|token| {
                report.requests += 1;
                let owned = part.iter().map(|r| r.body.clone()).collect();
                let ahead = client.push_ahead(token.clone(), owned);
                (token, ahead)
            });
        if let Some(previous) = self.unrecorded.take() {
            self.record(store, client, clock, &[], previous, report, progress)
                .await?;
        }
        let (token, ahead) = ahead?;
        self.upload_ahead(store, client, now, next, report).await;
        let answer = match ahead.wait().await {
            // The token expired: refreshed, and sent again once.
            Err(SyncError::Unauthorized(_)) => {
                let token = crate::auth::access_token(store, client, now, Some(&token)).await?;
                report.requests += 1;
                match client.push(&token, &bodies).await {
                    Err(SyncError::Unauthorized(reason)) => Err(SyncError::SignInRequired(reason)),
                    other => other,
                }
            }
            other => other,
        };
        let (resp, sent) = match answer {
            Ok(answer) => answer,
            Err(e) => return Ok(Some(e)),
        };
        let answered: HashSet<String> = resp
            .results
            .iter()
            .map(|r| r.mutation_id.to_string())
            .collect();
        if resp.results.len() != part.len()
            || part.iter().any(|r| !answered.contains(&r.mutation_id))
        {
            return Ok(Some(SyncError::BadAnswer(
                "the push answer does not match the mutations sent; they stay queued".into(),
            )));
        }
        // Counted as sent when answered (the window's count), recorded below or later.
        report.bytes_sent += sent;
        report.pushed += part.len();
        if settles_every_row(&resp) {
            for r in part {
                self.tried.insert(r.mutation_id.clone());
            }
            self.unrecorded = Some(resp);
            return Ok(None);
        }
        self.record(store, client, clock, part, resp, report, progress)
            .await?;
        Ok(None)
    }

    /// The answer waiting to be recorded, if any, recorded now.
    async fn record_waiting(
        &mut self,
        store: &mut Store,
        client: &impl Transport,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
        report: &mut PassReport,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), SyncError> {
        match self.unrecorded.take() {
            Some(resp) => {
                self.record(store, client, clock, &[], resp, report, progress)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Record the answer to `part` (which matches it): the store takes it, and what it
    /// says decides what this pass sends next. `part` may be empty for an answer that
    /// settles every row ([`settles_every_row`]): its rows are not needed.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &mut self,
        store: &mut Store,
        client: &impl Transport,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
        part: &[OutboxRow],
        resp: PushResponse,
        report: &mut PassReport,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), SyncError> {
        crate::crash_point!("client:before-record-results");
        let summary = store.record_push_results(&resp.results, clock())?;
        crate::crash_point!("client:after-record-results");
        report.echo.note(resp.written.as_ref(), &summary);
        report_unsent(store, client, clock())?;
        report.settled += summary.acknowledged + summary.rejected + summary.already_resolved;
        report.acknowledged += summary.acknowledged;
        report.rejected += summary.rejected;
        report.conflicts += summary.conflicts;
        // Answered for good (acknowledged, or a failed sync now): not sent again in
        // this pass; a refusal holds back the order's later rows.
        for r in &resp.results {
            let id = r.mutation_id.to_string();
            match r.outcome.first() {
                PushOutcome::MissingAttachments { .. } | PushOutcome::HeldBehind { .. } => {}
                PushOutcome::Rejected(why) if why.code != ErrorCode::AlreadyResolved => {
                    self.tried.insert(id.clone());
                    if let Some(row) = part.iter().find(|p| p.mutation_id == id) {
                        self.block(row);
                    }
                }
                _ => {
                    self.tried.insert(id);
                }
            }
        }
        // Files the server is missing: uploaded, and the row sent once more in this pass
        // (a row that comes back so twice, or held behind twice, waits for the next).
        for (id, hashes) in &summary.missing_attachments {
            let Some(row) = part.iter().find(|p| &p.mutation_id == id) else {
                continue;
            };
            let n = self.resent.entry(id.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                self.tried.insert(id.clone());
                self.block(row);
                continue;
            }
            if !hashes.is_empty() {
                let unsendable =
                    upload(store, client, clock(), hashes, self.sizes, report, progress).await?;
                if let Some(u) = unsendable.first() {
                    self.set_aside(store, row, &u.why, clock(), report)?;
                }
            }
        }
        Ok(())
    }

    /// A transient failure: the rows not answered wait for their retry time.
    fn defer(
        &self,
        store: &mut Store,
        rows: &[OutboxRow],
        now: DateTime<Utc>,
        e: &SyncError,
    ) -> Result<(), SyncError> {
        for r in rows {
            store.defer_push(
                std::slice::from_ref(&r.mutation_id),
                retry_at(r, now, self.opts, e),
                &e.to_string(),
            )?;
        }
        Ok(())
    }
}

/// Push every eligible mutation (see the module's rules). `Err` is the failure that
/// ended the push early; what could go went.
pub(crate) async fn push(
    store: &mut Store,
    client: &impl Transport,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    opts: &PassOptions,
    sizes: &mut UploadSizes,
    report: &mut PassReport,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SyncError> {
    let mut p = Push {
        opts,
        sizes,
        tried: HashSet::new(),
        blocked: HashMap::new(),
        resent: HashMap::new(),
        unrecorded: None,
    };
    let pushed = rounds(&mut p, store, client, clock, report, progress).await;
    // An answer still waiting is recorded before the pass goes on (its pull confirms
    // what the answer acknowledged), whatever ended the push.
    let recorded = p
        .record_waiting(store, client, clock, report, progress)
        .await;
    pushed.and(recorded)
}

/// The push's rounds (see [`push`]); an answer may be left for the caller to record.
async fn rounds(
    p: &mut Push<'_>,
    store: &mut Store,
    client: &impl Transport,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    report: &mut PassReport,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SyncError> {
    let opts = p.opts;
    let total_pending = store.sync_counts()?.pending;
    // A retry time further away than the longest backoff means the clock was set back
    // since it was stored: it waits no longer than the longest backoff from now.
    let longest =
        chrono::Duration::milliseconds(opts.retry_delay_ms_max.min(i64::MAX as u64) as i64);
    let moved = store.clamp_retry_times(clock(), longest)?;
    if moved > 0 {
        tracing::info!(
            moved,
            "retry times beyond the longest backoff (the clock went back): brought forward"
        );
    }
    // The eligible rows in lanes, read once and taken a batch at a time (decoding the
    // whole outbox each round cost more than the rest of a round). Read again when it
    // runs out, so rows saved during the pass go too, and after a round that left a row
    // unsettled (waiting for its files): it goes again ahead of its order's later rows.
    let mut queue: VecDeque<OutboxRow> = VecDeque::new();
    // Bounded: each round settles at least one row not settled before in this pass (or
    // resends, once, one that waited for its files).
    for _round in 0..=total_pending.saturating_mul(2).saturating_add(1) {
        let now = clock();
        let mut fresh = false;
        let rows = loop {
            if queue.is_empty() {
                queue = in_lanes(store.next_push_batch(
                    usize::MAX,
                    usize::MAX,
                    now,
                    opts.ignore_backoff,
                )?)
                .into();
                fresh = true;
            }
            let rows = p.take_batch(&mut queue);
            if !rows.is_empty() || fresh {
                break rows;
            }
        };
        crate::crash_point!("client:after-read-batch");
        // Rows never sealed before this round: the server has not seen them.
        let never_sent: HashSet<String> = rows
            .iter()
            .filter(|r| r.state == OutboxState::Pending)
            .map(|r| r.mutation_id.clone())
            .collect();
        let batch: Vec<String> = rows.iter().map(|r| r.mutation_id.clone()).collect();
        if batch.is_empty() {
            break;
        }
        // Seal first, and send exactly the bytes sealed: an edit saved from here on
        // (during a long upload, by the app or another process) makes a new row instead
        // of changing one this request carries.
        let sealed = store.mark_rows_sent(rows)?;
        crate::crash_point!("client:after-seal");
        progress(pushing(report, total_pending));
        let sealed = match p
            .evidence(store, client, now, sealed.clone(), report, progress)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                if e.is_transient() {
                    p.defer(store, &sealed, now, &e)?;
                }
                // The push that was to carry them was never made: rows sealed for it
                // alone are pending again (saved on this device, not "syncing" while
                // offline). Rows sent in an earlier pass stay sealed.
                let unsent: Vec<String> = batch
                    .iter()
                    .filter(|id| never_sent.contains(*id))
                    .cloned()
                    .collect();
                store.unseal_unsent(&unsent)?;
                return Err(e);
            }
        };
        let mut parts = VecDeque::from([sealed]);
        while let Some(part) = parts.pop_front() {
            let part: Vec<OutboxRow> = part
                .into_iter()
                .filter(|r| !p.tried.contains(&r.mutation_id) && !p.held_back(r))
                .collect();
            if part.is_empty() {
                continue;
            }
            progress(pushing(report, total_pending));
            let e = match p
                .send(store, client, clock, &part, &queue, report, progress)
                .await
            {
                Ok(None) => continue,
                Ok(Some(e)) => e,
                Err(e) => {
                    // The answer was applied; what failed came after (files it asked
                    // for): the rest of the batch waits, as after a transient failure.
                    if e.is_transient() {
                        let waiting: Vec<OutboxRow> = parts.into_iter().flatten().collect();
                        p.defer(store, &waiting, clock(), &e)?;
                    }
                    return Err(e);
                }
            };
            if refuses_the_batch(&e) && part.len() > 1 {
                tracing::info!(
                    rows = part.len(),
                    "push refused as a whole ({e}): split in halves"
                );
                let mut first = part;
                let second = first.split_off(first.len() / 2);
                parts.push_front(second);
                parts.push_front(first);
            } else if refuses_the_batch(&e) {
                let row = &part[0];
                let now = clock();
                let n = store.record_refusal(
                    &row.mutation_id,
                    retry_at(row, now, opts, &e),
                    &e.to_string(),
                )?;
                if n >= REFUSALS_BEFORE_SET_ASIDE {
                    p.set_aside(store, row, &set_aside_reason(&e), now, report)?;
                } else {
                    tracing::info!(mutation = %row.mutation_id, refusals = n, "refused alone ({e}): deferred");
                    p.tried.insert(row.mutation_id.clone());
                    p.block(row);
                }
            } else {
                if e.is_transient() {
                    let waiting: Vec<OutboxRow> = part
                        .into_iter()
                        .chain(parts.into_iter().flatten())
                        .collect();
                    p.defer(store, &waiting, clock(), &e)?;
                }
                return Err(e);
            }
        }
        if batch.iter().any(|id| !p.tried.contains(id)) {
            queue.clear();
        }
        progress(pushing(report, total_pending));
    }
    Ok(())
}

/// The push's count so far, as the progress bar shows it. Reported again before each
/// request of a round (the evidence upload, the push), so that while the engine waits
/// on the server the window shows how many changes went, not the last step's detail
/// (issue 24 item 4).
fn pushing(report: &PassReport, total_pending: usize) -> Progress {
    Progress::Pushing {
        done: report.pushed,
        total: total_pending.max(report.pushed),
        settled: report.settled,
    }
}
