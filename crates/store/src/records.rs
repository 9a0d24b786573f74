//! Failed syncs and conflicts on the device: nothing a person did vanishes.
//!
//! A failed sync is an outbox row the server rejected (`state = failed`), kept with
//! its payload and the server's reason; it holds back the later mutations of its order
//! until a person retries it (a new mutation that supersedes it), or discards it (the
//! local change is rolled back visibly). Conflicts are the server's records, pulled or
//! kept from a push answer; resolving one is a `resolve` mutation through the outbox.

use chrono::{DateTime, Utc};
use outpost_protocol::wire::{ErrorCode, Rejection};
use outpost_protocol::{apply_mutation, FieldError, Mutation, MutationKind, WorkOrder};
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use crate::db::Store;
use crate::error::StoreError;
use crate::orders::{get_order, put_local_order};
use crate::sync::rebase;

/// A mutation the server refused, as the device shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FailedSync {
    /// The refused mutation's id: the failed sync's id on the device.
    pub id: String,
    pub order_id: String,
    pub order_title: Option<String>,
    pub kind: String,
    pub code: String,
    /// The reason in plain words.
    pub message: String,
    pub field_errors: Vec<FieldError>,
    pub created_at: String,
    /// The full payload.
    pub mutation: Mutation,
}

/// A conflict as the device keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct LocalRecord {
    pub id: String,
    pub entity: String,
    pub order_id: Option<String>,
    pub status: String,
    pub body: serde_json::Value,
    pub updated_at: String,
}

/// Mutations of `entity_id` still in the outbox, oldest first, optionally without one.
fn pending_of(
    tx: &rusqlite::Connection,
    entity_id: &str,
    except: Option<&str>,
) -> Result<Vec<Mutation>, StoreError> {
    let mut stmt = tx
        .prepare_cached("SELECT mutation_id, body FROM outbox WHERE entity_id = ?1 ORDER BY seq")?;
    let rows = stmt
        .query_map([entity_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .filter(|(id, _)| Some(id.as_str()) != except)
        .map(|(_, b)| serde_json::from_str(&b).map_err(StoreError::from))
        .collect()
}

fn server_row(tx: &rusqlite::Connection, order_id: &str) -> Result<Option<WorkOrder>, StoreError> {
    let body: Option<Option<String>> = tx
        .prepare_cached("SELECT server_body FROM work_orders WHERE id = ?1")?
        .query_row([order_id], |r| r.get(0))
        .optional()?;
    body.flatten()
        .map(|b| serde_json::from_str(&b).map_err(StoreError::from))
        .transpose()
}

/// Recompute the local view of an order from the server's row and what is still in
/// the outbox; an order the server never had and nothing still creates is removed.
pub(crate) fn refresh_local(
    tx: &Transaction<'_>,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let pending = pending_of(tx, order_id, None)?;
    match server_row(tx, order_id)? {
        Some(row) => put_local_order(tx, &rebase(&row, &pending), now)?,
        None => {
            let creates = pending.iter().any(|m| m.kind == MutationKind::Create);
            if creates {
                let mut order = WorkOrder::blank(pending[0].entity_id);
                for m in &pending {
                    for op in &m.ops {
                        let _ = outpost_protocol::apply::apply_op(&mut order, op);
                    }
                }
                put_local_order(tx, &order, now)?;
            } else {
                tx.prepare_cached("DELETE FROM outbox WHERE entity_id = ?1")?
                    .execute([order_id])?;
                tx.prepare_cached("DELETE FROM work_orders WHERE id = ?1")?
                    .execute([order_id])?;
            }
        }
    }
    // An order out of this device's scope kept for the work just settled goes now.
    crate::sync::settle_out_of_scope(tx, order_id)?;
    Ok(())
}

fn decode_failed(
    id: String,
    order_id: String,
    kind: String,
    created_at: String,
    body: String,
    last_error: Option<String>,
    title: Option<String>,
) -> Result<FailedSync, StoreError> {
    let rejection: Option<Rejection> = last_error
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok());
    let (code, message, field_errors) = match rejection {
        Some(r) => (r.code.as_str().to_owned(), r.message, r.field_errors),
        None => (
            ErrorCode::Unknown.as_str().to_owned(),
            last_error.unwrap_or_else(|| "refused by the server".into()),
            Vec::new(),
        ),
    };
    Ok(FailedSync {
        id,
        order_id,
        order_title: title,
        kind,
        code,
        message,
        field_errors,
        created_at,
        mutation: serde_json::from_str(&body)?,
    })
}

impl Store {
    /// The device's failed syncs, oldest first.
    pub fn failed_syncs(&self) -> Result<Vec<FailedSync>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT b.mutation_id, b.entity_id, b.kind, b.created_at, b.body, b.last_error, o.title
             FROM outbox b LEFT JOIN work_orders o ON o.id = b.entity_id
             WHERE b.state = 'failed' ORDER BY b.seq",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(a, b, c, d, e, f, g)| decode_failed(a, b, c, d, e, f, g))
            .collect()
    }

    pub fn failed_sync(&self, id: &str) -> Result<FailedSync, StoreError> {
        self.failed_syncs()?
            .into_iter()
            .find(|f| f.id == id || (id.len() >= 8 && f.id.starts_with(id)))
            .ok_or_else(|| StoreError::OrderNotFound(format!("failed sync {id}")))
    }

    /// Replace a failed mutation with `replacement` (a new id: the server keeps the
    /// refusal recorded under the old one). The replacement is checked against the
    /// order as it is without the failed change, then queued after the order's other
    /// waiting work, so that a fix made meanwhile travels first. A failed create keeps
    /// its place, since everything after it depends on it.
    pub fn supersede_failed(
        &mut self,
        failed_id: &str,
        replacement: Mutation,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder, StoreError> {
        self.write(|tx, _| {
            let (seq, entity_id, kind): (i64, String, String) = tx
                .prepare_cached(
                    "SELECT seq, entity_id, kind FROM outbox
                     WHERE mutation_id = ?1 AND state <> 'pending' AND state = 'failed'",
                )?
                .query_row([failed_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
                .ok_or_else(|| StoreError::OrderNotFound(format!("failed sync {failed_id}")))?;
            let others = pending_of(tx, &entity_id, Some(failed_id))?;
            let base = match server_row(tx, &entity_id)? {
                Some(row) => Some(rebase(&row, &others)),
                None if replacement.kind == MutationKind::Create => None,
                None => get_order(tx, &entity_id)?,
            };
            let after = apply_mutation(base.as_ref(), &replacement)?;
            tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?
                .execute([seq])?;
            crate::outbox::ensure_new_mutation_id(tx, &replacement)?;
            let new_seq: Option<i64> = if kind == "create" { Some(seq) } else { None };
            let body = String::from_utf8(replacement.to_body()?)
                .map_err(|e| StoreError::Decode(e.to_string()))?;
            tx.prepare_cached(
                "INSERT INTO outbox (seq, mutation_id, device_id, entity, entity_id, kind,
                                     base_version, body, created_at, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending')",
            )?
            .execute(params![
                new_seq,
                replacement.mutation_id.to_string(),
                replacement.device_id.to_string(),
                replacement.entity.as_str(),
                replacement.entity_id.to_string(),
                replacement.kind.as_str(),
                replacement.base_version as i64,
                body,
                now.to_rfc3339(),
            ])?;
            refresh_local(tx, &entity_id, now)?;
            let _ = after;
            get_order(tx, &entity_id)?.ok_or_else(|| StoreError::OrderNotFound(entity_id.clone()))
        })
    }

    /// Drop a failed mutation; the order shows the server's state with the remaining
    /// local work again.
    pub fn discard_failed(
        &mut self,
        failed_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let (seq, entity_id): (i64, String) = tx
                .prepare_cached(
                    "SELECT seq, entity_id FROM outbox
                     WHERE mutation_id = ?1 AND state <> 'pending' AND state = 'failed'",
                )?
                .query_row([failed_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::OrderNotFound(format!("failed sync {failed_id}")))?;
            tx.prepare_cached("DELETE FROM outbox WHERE seq = ?1")?
                .execute([seq])?;
            refresh_local(tx, &entity_id, now)
        })
    }

    /// Conflicts known to the device (open first).
    pub fn conflicts(&self) -> Result<Vec<LocalRecord>, StoreError> {
        self.records("conflict")
    }

    /// Records of one kind (`conflict`, `failed_sync`) as the server sent them, open
    /// first.
    pub fn records(&self, entity: &str) -> Result<Vec<LocalRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, entity, order_id, status, body, updated_at FROM sync_records
             WHERE entity = ?1 ORDER BY status = 'resolved', updated_at",
        )?;
        let rows = stmt
            .query_map([entity], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, entity, order_id, status, body, updated_at)| {
                Ok(LocalRecord {
                    id,
                    entity,
                    order_id,
                    status,
                    body: serde_json::from_str(&body)?,
                    updated_at,
                })
            })
            .collect()
    }

    /// Records whose decision from this device met `already_resolved`: someone else
    /// decided first (the dispatcher's desk shows it).
    pub fn decided_elsewhere(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .get_setting(DECIDED_ELSEWHERE)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
    }

    /// Queue a decision's resolutions (all the records of one order on the
    /// dispatcher's desk) in one transaction: they are saved together or not at all,
    /// and held until `hold_until` (the undo window) before a push takes them, a
    /// manual "sync now" included ([`Store::next_push_batch`]).
    pub fn enqueue_decision(
        &mut self,
        resolutions: Vec<Mutation>,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            for m in resolutions {
                let id = m.mutation_id.to_string();
                crate::outbox::enqueue(tx, m, now)?;
                tx.prepare_cached(
                    "UPDATE outbox SET next_attempt_at = ?2
                     WHERE mutation_id = ?1 AND state = 'pending' AND kind = 'resolve'",
                )?
                .execute(params![id, hold_until.to_rfc3339()])?;
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Take back held resolutions that have not been sent (the desk's "undo").
    /// Returns how many were removed; a resolution already sent stays (reverse it by a
    /// new decision).
    pub fn undo_held(&mut self, mutation_ids: &[String]) -> Result<usize, StoreError> {
        let ids = serde_json::to_string(mutation_ids)?;
        self.write(|tx, _| {
            Ok::<_, StoreError>(
                tx.prepare_cached(
                    "DELETE FROM outbox WHERE mutation_id IN (SELECT value FROM json_each(?1))
                 AND state = 'pending' AND kind = 'resolve'",
                )?
                .execute([ids])?,
            )
        })
    }

    /// End the undo window of every held resolution now.
    pub fn release_held(&mut self) -> Result<usize, StoreError> {
        self.write(|tx, _| {
            Ok::<_, StoreError>(
                tx.prepare_cached(
                    "UPDATE outbox SET next_attempt_at = NULL
                 WHERE state = 'pending' AND kind = 'resolve' AND next_attempt_at IS NOT NULL",
                )?
                .execute([])?,
            )
        })
    }

    /// Queue a resolution (of a conflict or a failed sync) for the server.
    pub fn enqueue_resolution(
        &mut self,
        m: Mutation,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            crate::outbox::enqueue(tx, m, now)?;
            Ok::<_, StoreError>(())
        })
    }
}

const DECIDED_ELSEWHERE: &str = "decided_elsewhere";

/// Remember, in the push answer's transaction, that `record_id` was decided by
/// someone else before this device's decision arrived.
pub(crate) fn note_decided_elsewhere(
    tx: &Transaction<'_>,
    record_id: &str,
) -> Result<(), StoreError> {
    let current: Option<String> = tx
        .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
        .query_row([DECIDED_ELSEWHERE], |r| r.get(0))
        .optional()?;
    let mut ids: Vec<String> = current
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or_default();
    if !ids.iter().any(|i| i == record_id) {
        ids.push(record_id.to_owned());
    }
    tx.prepare_cached(
        "INSERT INTO kv (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![DECIDED_ELSEWHERE, serde_json::to_string(&ids)?])?;
    Ok(())
}
