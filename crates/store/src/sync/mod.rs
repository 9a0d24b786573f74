//! What the sync engine reads and writes: the session (tokens live inside the
//! encrypted database), the push queue, push results, pull pages with their cursor,
//! re-priming, and the conflict and failed-sync records.
//!
//! Every function that applies something from the server is one transaction: a pull
//! page and its cursor commit together; a push answer and the outbox rows it
//! acknowledges commit together. The local row is always the server's row with the
//! device's unacknowledged work re-applied on top (rebase), so a pull never clobbers
//! an optimistic edit, and rebase never changes a mutation's base version.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use outpost_protocol::apply::apply_op;
use outpost_protocol::wire::{ChangeBody, MutationResult, PullResponse, PushOutcome, RecordStatus};
use outpost_protocol::{Mutation, Role, WorkOrder};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::Store;
use crate::error::StoreError;
use crate::orders::put_local_order;
use crate::outbox::OutboxRow;

const KV_SESSION: &str = "session";
const KV_CURSOR: &str = "pull_cursor";
const KV_GEN: &str = "scope_gen";
const KV_PRIMING: &str = "priming";
const KV_LAST_SYNC: &str = "last_sync_at";

/// A push answer's row: rows the push sealed, found through the sealed-row index (the
/// `state <> 'pending'` term is what lets SQLite use that partial index).
const SEALED_ROW_BY_MUTATION_ID: &str = "SELECT seq, entity_id, body FROM outbox
     WHERE mutation_id = ?1 AND state <> 'pending'";

/// A pulled change acknowledges mutations the server received; a row is sealed before
/// its request leaves, so the server never names a pending row.
const ACK_PULLED_MUTATION: &str = "DELETE FROM outbox
     WHERE mutation_id = ?1 AND state <> 'pending' AND state <> 'failed'";

/// A failed sync that a dispatcher resolved.
const CLEAR_RESOLVED_FAILED: &str = "DELETE FROM outbox
     WHERE mutation_id = ?1 AND state <> 'pending' AND state = 'failed'";

/// A signed-in session. Kept inside the encrypted database so a machine without a
/// credential store signs in like any other. `Debug` hides the tokens.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub server_url: String,
    pub username: String,
    pub role: Role,
    pub device_id: Uuid,
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
    /// Set when the server said the tokens will never work again (revoked device,
    /// disabled user): the person must sign in again; unsynced work is kept.
    #[serde(default)]
    pub needs_sign_in: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("server_url", &self.server_url)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("device_id", &self.device_id)
            .field("access_expires_at", &self.access_expires_at)
            .field("needs_sign_in", &self.needs_sign_in)
            .finish_non_exhaustive()
    }
}

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
}

/// What one pull page did locally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PageSummary {
    pub orders: usize,
    pub inventory: usize,
    pub records: usize,
    pub removed: usize,
    /// Orders that left this device's scope but were kept for their unsynced work.
    pub kept_for_work: usize,
    /// Pending mutations acknowledged by a pulled row (the reply to their push was lost).
    pub acknowledged: usize,
}

/// Counts for the status line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncCounts {
    /// Mutations the server has not acknowledged (pending or sent).
    pub pending: usize,
    pub failed: usize,
    pub conflicts: usize,
}

fn kv_get(tx: &rusqlite::Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(tx
        .query_row("SELECT value FROM kv WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn kv_set(tx: &rusqlite::Connection, key: &str, value: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO kv (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}

fn kv_delete(tx: &rusqlite::Connection, key: &str) -> Result<(), StoreError> {
    tx.execute("DELETE FROM kv WHERE key = ?1", [key])?;
    Ok(())
}

fn current_gen(tx: &rusqlite::Connection) -> Result<i64, StoreError> {
    Ok(kv_get(tx, KV_GEN)?
        .and_then(|g| g.parse().ok())
        .unwrap_or(0))
}

/// The device's unacknowledged mutations of one entity, oldest first.
fn entity_mutations(
    tx: &rusqlite::Connection,
    entity_id: &str,
) -> Result<Vec<Mutation>, StoreError> {
    let mut stmt = tx.prepare("SELECT body FROM outbox WHERE entity_id = ?1 ORDER BY seq")?;
    let bodies = stmt
        .query_map([entity_id], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(StoreError::from))
        .collect()
}

/// The server's row with the device's unacknowledged work applied on top. An op that
/// no longer applies (its checklist item was removed on the server) is skipped here;
/// the server decides its fate when the mutation arrives.
pub(crate) fn rebase(server_row: &WorkOrder, pending: &[Mutation]) -> WorkOrder {
    let mut local = server_row.clone();
    for m in pending {
        for op in &m.ops {
            let _ = apply_op(&mut local, op);
        }
        match m.kind {
            outpost_protocol::MutationKind::Complete => {
                local.status = outpost_protocol::Status::Completed;
            }
            outpost_protocol::MutationKind::Cancel => {
                local.status = outpost_protocol::Status::Cancelled;
            }
            _ => {}
        }
    }
    local.version = server_row.version;
    local.number = server_row.number.or(local.number);
    local
}

/// Store the server's row and the rebased local view.
fn put_server_row(
    tx: &Transaction<'_>,
    row: &WorkOrder,
    gen: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = row.id.to_string();
    let pending = entity_mutations(tx, &id)?;
    let local = rebase(row, &pending);
    put_local_order(tx, &local, now)?;
    tx.execute(
        "UPDATE work_orders SET server_body = ?2, server_version = ?3, seen_gen = ?4,
                left_scope_to = NULL
         WHERE id = ?1",
        params![id, serde_json::to_string(row)?, row.version as i64, gen],
    )?;
    Ok(())
}

/// Whether an order must stay on this device although it left its scope: it carries
/// unsynced work (a queued or failed mutation) or an open conflict a person here may
/// still have to settle.
fn needed_here(tx: &rusqlite::Connection, order_id: &str) -> Result<bool, StoreError> {
    let open_conflicts: i64 = tx.query_row(
        "SELECT count(*) FROM sync_records
         WHERE order_id = ?1 AND entity = 'conflict' AND status = 'open'",
        [order_id],
        |r| r.get(0),
    )?;
    Ok(open_conflicts > 0 || has_outbox_rows(tx, order_id)?)
}

/// Who holds an order that left this device's scope (`None`: in scope, or not here).
fn left_scope_of(tx: &rusqlite::Connection, order_id: &str) -> Result<Option<String>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT left_scope_to FROM work_orders WHERE id = ?1",
            [order_id],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// An order kept only because it was still needed here after leaving this device's
/// scope goes once nothing needs it any more (its work acknowledged, its conflict
/// decided), as its `left_scope` would have removed it. Returns the rows removed.
pub(crate) fn settle_out_of_scope(
    tx: &rusqlite::Connection,
    order_id: &str,
) -> Result<usize, StoreError> {
    let left = left_scope_of(tx, order_id)?;
    if left.is_none() || needed_here(tx, order_id)? {
        return Ok(0);
    }
    Ok(tx.execute("DELETE FROM work_orders WHERE id = ?1", [order_id])?)
}

/// Take the server's row from a push answer. An order that left this device's scope
/// stays marked (or goes, when nothing needs it here any more: see
/// [`settle_out_of_scope`]); an answer showing it assigned back to the signed-in user
/// brings it back in scope.
fn put_acknowledged_row(
    tx: &Transaction<'_>,
    row: &WorkOrder,
    gen: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = row.id.to_string();
    let left = left_scope_of(tx, &id)?;
    put_server_row(tx, row, gen, now)?;
    let Some(left) = left else {
        return Ok(());
    };
    let me = kv_get(tx, KV_SESSION)?
        .and_then(|s| serde_json::from_str::<Session>(&s).ok())
        .map(|s| s.username);
    if me.is_some() && row.assignee == me {
        return Ok(());
    }
    if needed_here(tx, &id)? {
        let who = row.assignee.clone().unwrap_or(left);
        tx.execute(
            "UPDATE work_orders SET left_scope_to = ?2 WHERE id = ?1",
            params![id, who],
        )?;
    } else {
        tx.execute("DELETE FROM work_orders WHERE id = ?1", [&id])?;
    }
    Ok(())
}

fn has_outbox_rows(tx: &rusqlite::Connection, entity_id: &str) -> Result<bool, StoreError> {
    let n: i64 = tx.query_row(
        "SELECT count(*) FROM outbox WHERE entity_id = ?1",
        [entity_id],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

fn put_record(
    tx: &Transaction<'_>,
    entity: &str,
    id: &str,
    order_id: &str,
    status: RecordStatus,
    body: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let status = match status {
        RecordStatus::Open => "open",
        RecordStatus::Resolved => "resolved",
    };
    tx.execute(
        "INSERT INTO sync_records (entity, id, order_id, status, body, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (entity, id) DO UPDATE SET order_id = excluded.order_id,
            status = excluded.status, body = excluded.body, updated_at = excluded.updated_at",
        params![entity, id, order_id, status, body, now.to_rfc3339()],
    )?;
    Ok(())
}

impl Store {
    pub fn session(&self) -> Result<Option<Session>, StoreError> {
        kv_get(&self.conn, KV_SESSION)?
            .map(|s| serde_json::from_str(&s).map_err(StoreError::from))
            .transpose()
    }

    pub fn set_session(&mut self, session: &Session) -> Result<(), StoreError> {
        kv_set(&self.conn, KV_SESSION, &serde_json::to_string(session)?)
    }

    pub fn clear_session(&mut self) -> Result<(), StoreError> {
        kv_delete(&self.conn, KV_SESSION)
    }

    pub fn pull_cursor(&self) -> Result<Option<String>, StoreError> {
        kv_get(&self.conn, KV_CURSOR)
    }

    pub fn last_sync_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(kv_get(&self.conn, KV_LAST_SYNC)?
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    pub fn set_last_sync_at(&mut self, at: DateTime<Utc>) -> Result<(), StoreError> {
        kv_set(&self.conn, KV_LAST_SYNC, &at.to_rfc3339())
    }

    pub fn sync_counts(&self) -> Result<SyncCounts, StoreError> {
        let (pending, failed): (i64, i64) = self.conn.query_row(
            "SELECT count(*) FILTER (WHERE state <> 'failed'),
                    count(*) FILTER (WHERE state = 'failed') FROM outbox",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let conflicts: i64 = self.conn.query_row(
            "SELECT count(*) FROM sync_records WHERE entity = 'conflict' AND status = 'open'",
            [],
            |r| r.get(0),
        )?;
        Ok(SyncCounts {
            pending: pending as usize,
            failed: failed as usize,
            conflicts: conflicts as usize,
        })
    }

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
            let waiting = !ignore_backoff
                && row
                    .next_attempt_at
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t > now);
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

    /// The earliest time a deferred mutation may be retried, if any waits.
    pub fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let t: Option<String> = self.conn.query_row(
            "SELECT min(next_attempt_at) FROM outbox WHERE state <> 'failed'",
            [],
            |r| r.get(0),
        )?;
        Ok(t.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc)))
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
            tx.execute(
                "UPDATE outbox SET next_attempt_at = ?2, last_error = ?3
                 WHERE mutation_id IN (SELECT value FROM json_each(?1)) AND state <> 'failed'",
                params![ids, at.to_rfc3339(), error],
            )?;
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
        self.write(|tx, _| {
            let gen = current_gen(tx)?;
            let mut summary = PushSummary::default();
            for result in results {
                let id = result.mutation_id.to_string();
                let row: Option<(i64, String, String)> = tx
                    .query_row(SEALED_ROW_BY_MUTATION_ID, [&id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                let Some((seq, entity_id, body)) = row else {
                    continue; // already acknowledged (e.g. by a pull)
                };
                match result.outcome.first() {
                    PushOutcome::Applied(a) => {
                        tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                        match &a.order {
                            Some(order) => put_acknowledged_row(tx, order, gen, now)?,
                            // A duplicate carries no row (the pull brings it); an order
                            // kept only for this work may go now.
                            None => {
                                settle_out_of_scope(tx, &entity_id)?;
                            }
                        }
                        summary.acknowledged += 1;
                    }
                    PushOutcome::AppliedWithConflicts(a) => {
                        tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                        // Keep the device's side until the pulled conflict record
                        // replaces this placeholder: nothing the person did is lost.
                        let placeholder = serde_json::json!({
                            "pending_pull": true,
                            "conflict": a,
                            "mutation": serde_json::from_str::<serde_json::Value>(&body)?,
                        });
                        put_record(
                            tx,
                            "conflict",
                            &a.conflict_id.to_string(),
                            &a.entity_id.to_string(),
                            RecordStatus::Open,
                            &placeholder.to_string(),
                            now,
                        )?;
                        match &a.order {
                            Some(order) => put_acknowledged_row(tx, order, gen, now)?,
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
                        tx.execute("DELETE FROM outbox WHERE seq = ?1", [seq])?;
                        let existing: Option<(String, String)> = tx
                            .query_row(
                                "SELECT entity, body FROM sync_records WHERE id = ?1",
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
                            tx.execute(
                                "UPDATE sync_records SET status = 'resolved', body = ?3, updated_at = ?4
                                 WHERE entity = ?1 AND id = ?2",
                                params![entity, entity_id, v.to_string(), now.to_rfc3339()],
                            )?;
                        }
                        summary.already_resolved += 1;
                    }
                    PushOutcome::Rejected(r) => {
                        tx.execute(
                            "UPDATE outbox SET state = 'failed', last_error = ?2,
                                    next_attempt_at = NULL
                             WHERE seq = ?1",
                            params![seq, serde_json::to_string(r)?],
                        )?;
                        summary.rejected += 1;
                    }
                    PushOutcome::MissingAttachments { hashes } => {
                        summary.missing_attachments.push((id, hashes.clone()));
                    }
                    PushOutcome::Duplicate { .. } => {
                        // `first()` looks through duplicates; unreachable by construction.
                    }
                }
            }
            Ok::<_, StoreError>(summary)
        })
    }

    /// Start a fresh snapshot (first sync, or `resync_required`): forget the cursor and
    /// open a new generation; rows the snapshot does not bring are removed at its end
    /// unless they carry unsynced work.
    pub fn begin_priming(&mut self) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let gen = current_gen(tx)? + 1;
            kv_set(tx, KV_GEN, &gen.to_string())?;
            kv_set(tx, KV_PRIMING, "1")?;
            kv_delete(tx, KV_CURSOR)?;
            Ok::<_, StoreError>(())
        })
    }

    pub fn is_priming(&self) -> Result<bool, StoreError> {
        Ok(kv_get(&self.conn, KV_PRIMING)?.is_some())
    }

    /// Apply one pull page and store its cursor, in one transaction.
    pub fn apply_pull_page(
        &mut self,
        page: &PullResponse,
        now: DateTime<Utc>,
    ) -> Result<PageSummary, StoreError> {
        self.write(|tx, _| {
            let gen = current_gen(tx)?;
            let mut s = PageSummary::default();
            let mut inv = tx.prepare(
                "INSERT INTO inventory (sku, name, unit, price_cents, total_stock_milli, body, seen_gen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (sku) DO UPDATE SET name = excluded.name, unit = excluded.unit,
                    price_cents = excluded.price_cents,
                    total_stock_milli = excluded.total_stock_milli, body = excluded.body,
                    seen_gen = excluded.seen_gen",
            )?;
            let mut ack = tx.prepare(ACK_PULLED_MUTATION)?;
            for change in &page.changes {
                match &change.change {
                    ChangeBody::WorkOrder(row) => {
                        for m in &change.mutation_ids {
                            s.acknowledged += ack.execute([m.to_string()])?;
                        }
                        put_server_row(tx, row, gen, now)?;
                        s.orders += 1;
                    }
                    ChangeBody::InventoryItem(item) => {
                        inv.execute(params![
                            item.sku,
                            item.name,
                            item.unit,
                            item.price_cents,
                            item.total_stock().milli(),
                            serde_json::to_string(item)?,
                            gen,
                        ])?;
                        s.inventory += 1;
                    }
                    ChangeBody::Conflict(c) => {
                        put_record(
                            tx,
                            "conflict",
                            &c.id.to_string(),
                            &c.order_id.to_string(),
                            c.status,
                            &serde_json::to_string(c)?,
                            now,
                        )?;
                        s.records += 1;
                        if c.status == RecordStatus::Resolved {
                            s.removed += settle_out_of_scope(tx, &c.order_id.to_string())?;
                        }
                    }
                    ChangeBody::FailedSync(f) => {
                        if f.status == RecordStatus::Resolved {
                            // A dispatcher decided: the device's copy of the refused
                            // change is settled, and the order shows the outcome.
                            let cleared = tx.execute(
                                CLEAR_RESOLVED_FAILED,
                                [f.mutation.mutation_id.to_string()],
                            )?;
                            if cleared > 0 {
                                crate::records::refresh_local(tx, &f.order_id.to_string(), now)?;
                            }
                        }
                        put_record(
                            tx,
                            "failed_sync",
                            &f.id.to_string(),
                            &f.order_id.to_string(),
                            f.status,
                            &serde_json::to_string(f)?,
                            now,
                        )?;
                        s.records += 1;
                        if f.status == RecordStatus::Resolved {
                            s.removed += settle_out_of_scope(tx, &f.order_id.to_string())?;
                        }
                    }
                    ChangeBody::LeftScope(_) | ChangeBody::Tombstone => {
                        if change.entity == outpost_protocol::wire::ChangeEntity::InventoryItem {
                            tx.execute("DELETE FROM inventory WHERE sku = ?1", [&change.id])?;
                            s.removed += 1;
                        } else if needed_here(tx, &change.id)? {
                            let who = match &change.change {
                                ChangeBody::LeftScope(l) => l
                                    .now_assigned_to
                                    .clone()
                                    .unwrap_or_else(|| "another technician".into()),
                                _ => "nobody (deleted on the server)".into(),
                            };
                            tx.execute(
                                "UPDATE work_orders SET left_scope_to = ?2 WHERE id = ?1",
                                params![change.id, who],
                            )?;
                            s.kept_for_work += 1;
                        } else {
                            s.removed +=
                                tx.execute("DELETE FROM work_orders WHERE id = ?1", [&change.id])?;
                        }
                    }
                }
            }
            kv_set(tx, KV_CURSOR, &page.cursor)?;
            // The snapshot is complete when a page no longer carries priming progress.
            let priming = kv_get(tx, KV_PRIMING)?.is_some();
            if priming && (page.priming.is_none() || !page.has_more) {
                // Orders the snapshot did not bring are gone from this device's scope:
                // removed, unless still needed here (queued or failed work, an open
                // conflict); those stay, marked like a `left_scope`, until nothing
                // needs them. An order made here and not yet on the server is simply
                // not on the server yet.
                s.removed += tx.execute(
                    "DELETE FROM work_orders WHERE seen_gen < ?1 AND left_scope_to IS NULL
                       AND NOT EXISTS (SELECT 1 FROM outbox b WHERE b.entity_id = work_orders.id)
                       AND NOT EXISTS (SELECT 1 FROM sync_records r
                                        WHERE r.order_id = work_orders.id
                                          AND r.entity = 'conflict' AND r.status = 'open')",
                    [gen],
                )?;
                tx.execute(
                    "UPDATE work_orders SET left_scope_to = 'another technician'
                     WHERE seen_gen < ?1 AND left_scope_to IS NULL AND server_body IS NOT NULL",
                    [gen],
                )?;
                s.removed += tx.execute("DELETE FROM inventory WHERE seen_gen < ?1", [gen])?;
                kv_delete(tx, KV_PRIMING)?;
            }
            Ok::<_, StoreError>(s)
        })
    }

    /// Hashes of attachments that `rows` name and that are not known to be uploaded.
    pub fn attachments_to_upload(&self, rows: &[OutboxRow]) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for row in rows {
            for op in &row.mutation.ops {
                let hash = match op {
                    outpost_protocol::Op::Set(outpost_protocol::SetOp::Signature(Some(s))) => {
                        &s.hash
                    }
                    outpost_protocol::Op::Add(outpost_protocol::mutation::ListItem::Photos(p)) => {
                        &p.hash
                    }
                    _ => continue,
                };
                if !seen.insert(hash.clone()) {
                    continue;
                }
                let uploaded: Option<i64> = self
                    .conn
                    .query_row(
                        "SELECT uploaded FROM attachments WHERE hash = ?1",
                        [hash],
                        |r| r.get(0),
                    )
                    .optional()?;
                if uploaded == Some(0) {
                    out.push(hash.clone());
                }
            }
        }
        Ok(out)
    }

    pub fn mark_uploaded(&mut self, hash: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE attachments SET uploaded = 1 WHERE hash = ?1",
            [hash],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::mutation::EntityKind;
    use outpost_protocol::{MutationKind, Op, SetOp, FORMAT_VERSION};

    fn m(entity: Uuid, ops: Vec<Op>) -> Mutation {
        Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: Uuid::nil(),
            entity: EntityKind::WorkOrder,
            entity_id: entity,
            kind: MutationKind::Update,
            base_version: 3,
            format: FORMAT_VERSION,
            device_time: Utc::now(),
            ops,
        }
    }

    #[test]
    fn lookups_by_mutation_id_use_the_sealed_row_index() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let key = crate::DbKey::generate().expect("key");
        let store = Store::create(tmp.path(), &key).expect("store");
        for sql in [
            SEALED_ROW_BY_MUTATION_ID,
            ACK_PULLED_MUTATION,
            CLEAR_RESOLVED_FAILED,
        ] {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let plan = stmt
                .query_map(["x"], |r| r.get::<_, String>(3))
                .expect("plan rows")
                .collect::<Result<Vec<_>, _>>()
                .expect("plan");
            assert!(
                plan.iter()
                    .any(|step| step.contains("USING INDEX outbox_sealed_by_mutation_id")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// Every path that finds outbox rows by mutation id, after schema 5 took pending rows
    /// out of the mutation-id index: deferral (pending or sealed rows), push answers,
    /// pulled acknowledgements, a dispatcher's resolution and a discard.
    #[test]
    fn sealed_rows_are_found_by_mutation_id_on_every_sync_path() {
        use outpost_protocol::wire::{
            Applied, Change, ChangeEntity, ErrorCode, FailedSyncRecord, Rejection,
        };
        let tmp = tempfile::tempdir().expect("temp dir");
        let key = crate::DbKey::generate().expect("key");
        let mut store = Store::create(tmp.path(), &key).expect("store");
        let now = Utc::now();
        let orders: Vec<WorkOrder> = (0..5)
            .map(|i| {
                let mut o = WorkOrder::blank(Uuid::now_v7());
                o.title = format!("Order {i}");
                o.version = 3;
                o
            })
            .collect();
        store.put_server_orders(&orders, now).expect("seed");
        let edits: Vec<Mutation> = orders
            .iter()
            .map(|o| m(o.id, vec![Op::Set(SetOp::Description("edited".into()))]))
            .collect();
        for e in &edits {
            store.record(e.clone(), now).expect("record");
        }
        let id = |i: usize| edits[i].mutation_id.to_string();
        let state_of = |store: &Store, i: usize| {
            store
                .outbox()
                .expect("outbox")
                .into_iter()
                .find(|r| r.mutation_id == id(i))
                .map(|r| (r.state, r.next_attempt_at.is_some()))
        };

        // Orders 0..4 are sent; order 4's row stays pending.
        store
            .mark_sent(&[id(0), id(1), id(2), id(3)])
            .expect("seal");
        let later = now + chrono::Duration::minutes(5);
        store
            .defer_push(&[id(3), id(4)], later, "offline")
            .expect("defer");
        assert_eq!(state_of(&store, 3), Some((crate::OutboxState::Sent, true)));
        assert_eq!(
            state_of(&store, 4),
            Some((crate::OutboxState::Pending, true)),
            "a pending row is deferred too"
        );

        let mut acked = orders[0].clone();
        acked.version = 4;
        acked.description = "edited".into();
        let results = vec![
            MutationResult {
                mutation_id: edits[0].mutation_id,
                outcome: PushOutcome::Applied(Applied {
                    entity: EntityKind::WorkOrder,
                    entity_id: orders[0].id,
                    version: 4,
                    number: None,
                    changed: true,
                    order: Some(acked),
                }),
            },
            MutationResult {
                mutation_id: edits[1].mutation_id,
                outcome: PushOutcome::Rejected(Rejection {
                    code: ErrorCode::ValidationFailed,
                    message: "no".into(),
                    field_errors: Vec::new(),
                    failed_sync_id: None,
                    resolution: None,
                }),
            },
            MutationResult {
                mutation_id: Uuid::now_v7(),
                outcome: PushOutcome::Rejected(Rejection {
                    code: ErrorCode::ValidationFailed,
                    message: "not ours".into(),
                    field_errors: Vec::new(),
                    failed_sync_id: None,
                    resolution: None,
                }),
            },
        ];
        let summary = store.record_push_results(&results, now).expect("results");
        assert_eq!((summary.acknowledged, summary.rejected), (1, 1));
        assert_eq!(state_of(&store, 0), None, "applied: acknowledged");
        assert_eq!(
            state_of(&store, 1).map(|s| s.0),
            Some(crate::OutboxState::Failed)
        );
        assert_eq!(
            store
                .order(&orders[0].id.to_string())
                .expect("order")
                .order
                .version,
            4
        );

        // A pulled row naming order 2's sealed mutation acknowledges it (its push reply
        // was lost); a dispatcher's decision on order 1's failed sync clears it.
        let mut pulled = orders[2].clone();
        pulled.version = 4;
        let failed = FailedSyncRecord {
            id: Uuid::now_v7(),
            version: 2,
            status: RecordStatus::Resolved,
            order_id: orders[1].id,
            assignee: None,
            username: "tech1".into(),
            device_id: Uuid::nil(),
            received_at: now,
            code: ErrorCode::ValidationFailed,
            message: "no".into(),
            field_errors: Vec::new(),
            mutation: edits[1].clone(),
            resolution: None,
        };
        let page = PullResponse {
            changes: vec![
                Change {
                    seq: 10,
                    entity: ChangeEntity::WorkOrder,
                    id: orders[2].id.to_string(),
                    version: 4,
                    mutation_ids: vec![edits[2].mutation_id],
                    change: ChangeBody::WorkOrder(pulled),
                },
                Change {
                    seq: 11,
                    entity: ChangeEntity::FailedSync,
                    id: failed.id.to_string(),
                    version: 2,
                    mutation_ids: Vec::new(),
                    change: ChangeBody::FailedSync(failed),
                },
            ],
            cursor: "c1".into(),
            has_more: false,
            priming: None,
            server_time: now,
        };
        let s = store.apply_pull_page(&page, now).expect("pull");
        assert_eq!(s.acknowledged, 1);
        assert_eq!(state_of(&store, 2), None, "acknowledged by the pull");
        assert_eq!(state_of(&store, 1), None, "resolved by a dispatcher");

        // Order 3's row fails, then a person discards it.
        let rejected = vec![MutationResult {
            mutation_id: edits[3].mutation_id,
            outcome: PushOutcome::Rejected(Rejection {
                code: ErrorCode::ValidationFailed,
                message: "no".into(),
                field_errors: Vec::new(),
                failed_sync_id: None,
                resolution: None,
            }),
        }];
        store.record_push_results(&rejected, now).expect("results");
        assert_eq!(store.failed_syncs().expect("failed").len(), 1);
        store.discard_failed(&id(3), now).expect("discard");
        assert_eq!(state_of(&store, 3), None);

        let left: Vec<String> = store
            .outbox()
            .expect("outbox")
            .into_iter()
            .map(|r| r.mutation_id)
            .collect();
        assert_eq!(left, vec![id(4)], "only the unsent row is left");
        assert!(store.check().expect("check").sound);
    }

    #[test]
    fn rebase_puts_pending_work_on_the_servers_row_and_keeps_its_version() {
        let mut server = WorkOrder::blank(Uuid::now_v7());
        server.title = "Server title".into();
        server.description = "from the server".into();
        server.version = 7;
        server.number = Some(42);
        let pending = vec![m(server.id, vec![Op::Set(SetOp::Title("Mine".into()))])];
        let local = rebase(&server, &pending);
        assert_eq!(local.title, "Mine", "the optimistic edit is not clobbered");
        assert_eq!(
            local.description, "from the server",
            "the server's change shows"
        );
        assert_eq!(local.version, 7);
        assert_eq!(local.number, Some(42));
        assert_eq!(
            pending[0].base_version, 3,
            "rebase never changes a base version"
        );
    }

    #[test]
    fn pruning_keeps_every_file_something_still_needs() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let key = crate::DbKey::generate().expect("key");
        let mut store = Store::create(tmp.path(), &key).expect("store");
        let now = Utc::now();
        let needed = store
            .put_attachment(b"needed by a pending mutation", "image/png", now)
            .expect("put");
        let orphan = store
            .put_attachment(b"nobody needs this", "image/png", now)
            .expect("put");
        let order = WorkOrder::blank(Uuid::now_v7());
        let mut m = m(order.id, vec![Op::Set(SetOp::Title("t".into()))]);
        m.kind = MutationKind::Create;
        m.ops.push(Op::Set(SetOp::Signature(Some(
            outpost_protocol::Signature {
                hash: needed.hash.clone(),
                signer: "A".into(),
            },
        ))));
        store.record(m, now).expect("record");
        for h in [&needed.hash, &orphan.hash] {
            store.mark_uploaded(h).expect("uploaded");
        }
        assert_eq!(store.prune_attachments().expect("prune"), 1);
        assert!(store.attachment(&needed.hash).is_ok(), "referenced: kept");
        assert!(
            store.attachment(&orphan.hash).is_err(),
            "unreferenced and uploaded: removed"
        );
    }

    #[test]
    fn rebase_skips_an_op_that_no_longer_applies() {
        let server = WorkOrder::blank(Uuid::now_v7());
        let pending = vec![m(
            server.id,
            vec![
                Op::Set(SetOp::ChecklistDone {
                    item_id: "gone".into(),
                    done: true,
                }),
                Op::Set(SetOp::Title("still applied".into())),
            ],
        )];
        assert_eq!(rebase(&server, &pending).title, "still applied");
    }
}
