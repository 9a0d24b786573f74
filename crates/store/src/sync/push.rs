//! The push side: which queued mutations go next, deferring a batch after a
//! transient failure, and applying the server's answer.
//!
//! A batch is bounded by count and bytes and keeps each order's mutations in order (an
//! order whose earlier mutation failed or waits for its retry time holds back its later
//! ones). A push answer and the outbox rows it acknowledges commit in one transaction.
//! Left out on purpose: sealing rows before a request leaves (`outbox.rs`), the
//! attachment files a batch waits on (`uploads.rs`), and what the server's row means
//! for an order that left this device's scope (`scope.rs`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use outpost_protocol::wire::{MutationResult, PushOutcome, Rejection};
use outpost_protocol::WorkOrder;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::scope::{put_acknowledged_row, settle_out_of_scope};
use super::{current_gen, put_placeholder, SEALED_ROW_BY_MUTATION_ID};
use crate::db::Store;
use crate::error::StoreError;
use crate::outbox::OutboxRow;

/// What one push answer did locally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PushSummary {
    pub acknowledged: usize,
    pub rejected: usize,
    pub conflicts: usize,
    /// Resolutions that found the conflict already decided elsewhere.
    pub already_resolved: usize,
    /// Mutations waiting for these attachment uploads before they are resent.
    pub missing_attachments: Vec<(String, Vec<String>)>,
    /// Orders that took the server's row from the answer, and that row's version: the
    /// pull of the same pass never puts one of them back to an older version
    /// (`AckedRows`).
    pub taken: Vec<(String, u64)>,
    /// Results whose mutation this device no longer had sealed (settled earlier, by a
    /// pull): their row, if any, was not taken from this answer.
    pub unmatched: usize,
}

impl Store {
    /// The next mutations to push, oldest first, bounded by count and bytes. An order
    /// whose earlier mutation failed, or waits for its retry time, holds its later
    /// mutations back; other orders go on. `ignore_backoff` (a manual "sync now")
    /// takes every unacknowledged mutation once, whatever its retry time.
    pub fn next_push_batch(
        &self,
        max_count: usize,
        max_bytes: usize,
        now: DateTime<Utc>,
        ignore_backoff: bool,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let mut blocked: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for row in self.outbox()? {
            if blocked.contains(&row.entity_id) {
                continue;
            }
            let later = row
                .next_attempt_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| t > now);
            // A decision in its undo window (`Store::enqueue_decision`) waits even for a
            // manual pass: never sent, so it is still pending.
            let held = later && row.state == crate::OutboxState::Pending && row.kind == "resolve";
            let waiting = held || (!ignore_backoff && later);
            if row.state == crate::OutboxState::Failed || waiting {
                blocked.insert(row.entity_id.clone());
                continue;
            }
            if !out.is_empty() && (out.len() >= max_count || bytes + row.body.len() > max_bytes) {
                break;
            }
            bytes += row.body.len();
            out.push(row);
        }
        Ok(out)
    }

    /// The retry times of waiting rows, parsed (they are compared as times, not as
    /// text: RFC 3339 strings with and without fractional seconds do not sort).
    fn retry_times(&self) -> Result<Vec<(i64, DateTime<Utc>)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, next_attempt_at FROM outbox
             WHERE state <> 'failed' AND next_attempt_at IS NOT NULL",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, t)| {
                let t = DateTime::parse_from_rfc3339(&t).ok()?;
                Some((seq, t.with_timezone(&Utc)))
            })
            .collect())
    }

    /// The earliest time a deferred mutation may be retried, if any waits.
    pub fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self.retry_times()?.into_iter().map(|(_, t)| t).min())
    }

    /// Bring every retry time later than `now + longest` back to `now + longest`, and
    /// say how many moved. A retry time was `now + backoff` by the clock when it was
    /// stored; one further away than the longest backoff means the clock has been set
    /// back since (an hour, say), and the row would otherwise wait that long. The sync
    /// pass does this before it reads the outbox.
    pub fn clamp_retry_times(
        &mut self,
        now: DateTime<Utc>,
        longest: chrono::Duration,
    ) -> Result<usize, StoreError> {
        let latest = now + longest;
        let late: Vec<i64> = self
            .retry_times()?
            .into_iter()
            .filter(|(_, t)| *t > latest)
            .map(|(seq, _)| seq)
            .collect();
        if late.is_empty() {
            return Ok(0);
        }
        let seqs = serde_json::to_string(&late)?;
        self.write(|tx, _| {
            tx.prepare_cached(
                "UPDATE outbox SET next_attempt_at = ?2
                 WHERE seq IN (SELECT value FROM json_each(?1))",
            )?
            .execute(params![seqs, latest.to_rfc3339()])?;
            Ok::<_, StoreError>(())
        })?;
        Ok(late.len())
    }

    /// A transient failure: retry these no earlier than `at`.
    pub fn defer_push(
        &mut self,
        mutation_ids: &[String],
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let ids = serde_json::to_string(mutation_ids)?;
        self.write(|tx, _| {
            // Whatever their state (pending rows are not in the mutation-id index): one
            // pass over the outbox for the whole batch.
            tx.prepare_cached(
                "UPDATE outbox SET next_attempt_at = ?2, last_error = ?3
                 WHERE mutation_id IN (SELECT value FROM json_each(?1)) AND state <> 'failed'",
            )?
            .execute(params![ids, at.to_rfc3339(), error])?;
            Ok::<_, StoreError>(())
        })
    }

    /// A mutation refused on its own by a refusal of the whole request (too large, not
    /// understood, an answer that does not match it): count it, and retry it no earlier
    /// than `retry_at`. Returns how often it has been refused so.
    pub fn record_refusal(
        &mut self,
        mutation_id: &str,
        retry_at: DateTime<Utc>,
        error: &str,
    ) -> Result<u32, StoreError> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "UPDATE outbox SET refusals = refusals + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE mutation_id = ?1 AND state <> 'pending' AND state = 'sent'",
            )?
            .execute(params![mutation_id, retry_at.to_rfc3339(), error])?;
            let n: Option<i64> = tx
                .prepare_cached(
                    "SELECT refusals FROM outbox WHERE mutation_id = ?1 AND state <> 'pending'",
                )?
                .query_row([mutation_id], |r| r.get(0))
                .optional()?;
            Ok::<_, StoreError>(n.unwrap_or(0).max(0) as u32)
        })
    }

    /// The device sets a mutation aside: a failed sync with `why`, shown to the person
    /// like a refusal by the server, and never sent again (a person retries it as a new
    /// mutation, or discards it). The server never accepted it and keeps no record of
    /// it, so the device counts it in the report of unsent work it sends.
    pub fn set_aside(
        &mut self,
        mutation_id: &str,
        why: &Rejection,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            tx.prepare_cached(
                "UPDATE outbox SET state = 'failed', last_error = ?2, next_attempt_at = NULL,
                        set_aside_at = ?3
                 WHERE mutation_id = ?1 AND state <> 'failed'",
            )?
            .execute(params![
                mutation_id,
                serde_json::to_string(why)?,
                now.to_rfc3339()
            ])?;
            Ok::<_, StoreError>(())
        })
    }

    /// Apply a push answer: acknowledged mutations leave the outbox and their order
    /// takes the server's row (with any later local work rebased on it); rejected ones
    /// become failed syncs on the device; `missing_attachments` stays queued.
    pub fn record_push_results(
        &mut self,
        results: &[MutationResult],
        now: DateTime<Utc>,
    ) -> Result<PushSummary, StoreError> {
        // Attachment files are named by a keyed hash (`attachments.rs`).
        let name_key = self.name_key.clone();
        self.write(|tx, paths| {
            let gen = current_gen(tx)?;
            let mut summary = PushSummary::default();
            // The server's row each acknowledged order ends this answer with, written
            // once per order after the loop: a later acknowledgement of the same order
            // in one answer supersedes an earlier one (a note and a completion sent
            // together wrote, rebased and indexed the order twice). Any other outcome
            // for an order writes its waiting row first, so every step sees the row
            // the per-result order of writes would have left.
            let mut acknowledged = Acknowledged::default();
            for result in results {
                let id = result.mutation_id.to_string();
                let row: Option<(i64, String, String)> = tx
                    .prepare_cached(SEALED_ROW_BY_MUTATION_ID)?
                    .query_row([&id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let Some((seq, entity_id, body)) = row else {
                    summary.unmatched += 1;
                    continue; // already acknowledged (e.g. by a pull)
                };
                let outcome = result.outcome.first();
                let row_waits = matches!(
                    outcome,
                    PushOutcome::Applied(outpost_protocol::wire::Applied { order: Some(_), .. })
                );
                if !row_waits {
                    acknowledged.write(tx, &entity_id, gen, now)?;
                }
                match outcome {
                    PushOutcome::Applied(a) => {
                        tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?.execute( [seq])?;
                        match &a.order {
                            Some(order) => {
                                acknowledged.wait(order);
                                summary.taken.push((order.id.to_string(), order.version));
                            }
                            // A duplicate carries no row (the pull brings it); an order
                            // kept only for this work may go now.
                            None => {
                                settle_out_of_scope(tx, &entity_id)?;
                            }
                        }
                        summary.acknowledged += 1;
                    }
                    PushOutcome::AppliedWithConflicts(a) => {
                        tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?.execute( [seq])?;
                        // Keep the device's side until the pulled conflict record
                        // replaces this placeholder: nothing the person did is lost. A
                        // record already pulled (the answer to a resend after a lost
                        // reply) stays as it is.
                        let placeholder = serde_json::json!({
                            "pending_pull": true,
                            "conflict": a,
                            "mutation": serde_json::from_str::<serde_json::Value>(&body)?,
                        });
                        put_placeholder(
                            tx,
                            &a.conflict_id.to_string(),
                            &a.entity_id.to_string(),
                            &placeholder.to_string(),
                            gen,
                            now,
                        )?;
                        match &a.order {
                            Some(order) => {
                                acknowledged.write(tx, &order.id.to_string(), gen, now)?;
                                put_acknowledged_row(tx, order, gen, now)?;
                                summary.taken.push((order.id.to_string(), order.version));
                            }
                            None => {
                                settle_out_of_scope(tx, &entity_id)?;
                            }
                        }
                        summary.acknowledged += 1;
                        summary.conflicts += 1;
                    }
                    PushOutcome::Rejected(r)
                        if r.code == outpost_protocol::wire::ErrorCode::AlreadyResolved =>
                    {
                        // Someone decided first: show their decision, drop ours.
                        tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?.execute( [seq])?;
                        let existing: Option<(String, String)> = tx
                            .prepare_cached("SELECT entity, body FROM sync_records WHERE id = ?1")?.query_row(
                                [&entity_id],
                                |r| Ok((r.get(0)?, r.get(1)?)),
                            )
                            .optional()?;
                        if let Some((entity, body)) = existing {
                            let mut v: serde_json::Value = serde_json::from_str(&body)?;
                            if let Some(obj) = v.as_object_mut() {
                                obj.insert("status".into(), "resolved".into());
                                obj.insert("resolution".into(), serde_json::to_value(&r.resolution)?);
                            }
                            tx.prepare_cached("UPDATE sync_records SET status = 'resolved', body = ?3, updated_at = ?4
                                 WHERE entity = ?1 AND id = ?2")?.execute(
                                params![entity, entity_id, v.to_string(), now.to_rfc3339()],
                            )?;
                        }
                        // The desk shows that someone else decided first.
                        crate::records::note_decided_elsewhere(tx, &entity_id)?;
                        summary.already_resolved += 1;
                    }
                    PushOutcome::Rejected(r) => {
                        mark_failed(tx, seq, r)?;
                        summary.rejected += 1;
                    }
                    PushOutcome::MissingAttachments { hashes }
                        if hashes
                            .iter()
                            .any(|h| !crate::attachments::keyed_file_path(&paths.attachments, name_key.as_ref(), h).exists()) =>
                    {
                        // Files this device never had (a dispatcher's decision that
                        // completes an order with a technician's evidence): uploading
                        // cannot help, so the decision waits as a failed sync a person
                        // sees, instead of failing every pass.
                        let why = outpost_protocol::wire::Rejection {
                            code: outpost_protocol::wire::ErrorCode::NotFound,
                            message: "the photos or signature this change needs are neither on the server nor on this device: the device that took them must sync first; then retry".into(),
                            field_errors: Vec::new(),
                            failed_sync_id: None,
                            resolution: None,
                        };
                        mark_failed(tx, seq, &why)?;
                        tx.prepare_cached("UPDATE outbox SET set_aside_at = ?2 WHERE seq = ?1")?.execute(
                            params![seq, now.to_rfc3339()],
                        )?;
                        summary.rejected += 1;
                    }
                    PushOutcome::MissingAttachments { hashes } => {
                        summary.missing_attachments.push((id, hashes.clone()));
                    }
                    // Behind an earlier mutation of its order that was refused, held or
                    // waits for files: it stays queued and, like a mutation waiting for
                    // its files (with none to upload), is sent again once in this pass,
                    // after that one (or waits behind it when that one failed).
                    PushOutcome::HeldBehind { .. } => {
                        summary.missing_attachments.push((id, Vec::new()));
                    }
                    PushOutcome::Duplicate { .. } => {
                        // `first()` looks through duplicates; unreachable by construction.
                    }
                }
            }
            acknowledged.write_all(tx, gen, now)?;
            Ok::<_, StoreError>(summary)
        })
    }
}

/// Acknowledged orders whose server row is still to be written, in the order they were
/// first acknowledged, each with the latest row of the answer.
#[derive(Default)]
struct Acknowledged<'a> {
    rows: Vec<&'a WorkOrder>,
    at: std::collections::HashMap<String, usize>,
}

impl<'a> Acknowledged<'a> {
    fn wait(&mut self, order: &'a WorkOrder) {
        match self.at.get(&order.id.to_string()) {
            Some(&i) if self.rows[i].version <= order.version => self.rows[i] = order,
            Some(_) => {}
            None => {
                self.at.insert(order.id.to_string(), self.rows.len());
                self.rows.push(order);
            }
        }
    }

    /// Write the row waiting for `order_id`, if any, now.
    fn write(
        &mut self,
        tx: &rusqlite::Transaction<'_>,
        order_id: &str,
        gen: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let Some(i) = self.at.remove(order_id) else {
            return Ok(());
        };
        put_acknowledged_row(tx, self.rows[i], gen, now)
    }

    fn write_all(
        mut self,
        tx: &rusqlite::Transaction<'_>,
        gen: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut waiting: Vec<usize> = self.at.drain().map(|(_, i)| i).collect();
        waiting.sort_unstable();
        for i in waiting {
            put_acknowledged_row(tx, self.rows[i], gen, now)?;
        }
        Ok(())
    }
}

/// The outbox row `seq` becomes a failed sync on this device, with the reason kept.
fn mark_failed(
    tx: &rusqlite::Transaction<'_>,
    seq: i64,
    why: &outpost_protocol::wire::Rejection,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE outbox SET state = 'failed', last_error = ?2, next_attempt_at = NULL
         WHERE seq = ?1",
    )?
    .execute(params![seq, serde_json::to_string(why)?])?;
    Ok(())
}
