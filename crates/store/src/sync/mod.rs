//! What the sync engine reads and writes: the session (tokens live inside the
//! encrypted database), the push queue, push results, pull pages with their cursor,
//! re-priming, and the conflict and failed-sync records.
//!
//! Every function that applies something from the server is one transaction: a pull
//! page and its cursor commit together; a push answer and the outbox rows it
//! acknowledges commit together. The local row is always the server's row with the
//! device's unacknowledged work re-applied on top (rebase), so a pull never clobbers
//! an optimistic edit, and rebase never changes a mutation's base version.
//!
//! One job per file: `session.rs` (the signed-in session), `push.rs` (the push queue
//! and push answers), `uploads.rs` (the attachment files a push waits on), `pull.rs`
//! (pull pages and their cursor), `priming.rs` (full snapshots: their start, and the
//! sweep that ends them), `rebase.rs` (the local row from the server's row and pending
//! work) and `scope.rs` (orders that left this device's scope: when they stay, when
//! they go). This file keeps what several of them share: the `kv` keys and accessors,
//! the scope generation, the sync-record writer, the outbox lookups by mutation id and
//! the status-line numbers. Sealing outbox rows is `outbox.rs`'s, and settling failed
//! syncs and conflicts is `records.rs`'s.

use chrono::{DateTime, Utc};
use outpost_protocol::unsent::UnsentReport;
use outpost_protocol::wire::RecordStatus;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use crate::db::Store;
use crate::error::StoreError;

mod priming;
mod pull;
mod push;
mod rebase;
mod scope;
mod session;
mod uploads;

#[cfg(test)]
mod tests;

pub use pull::{AckedRows, PageSummary};
pub use push::PushSummary;
pub(crate) use rebase::rebase;
pub(crate) use scope::settle_out_of_scope;
pub use session::Session;

const KV_SESSION: &str = "session";
const KV_CURSOR: &str = "pull_cursor";
const KV_GEN: &str = "scope_gen";
const KV_PRIMING: &str = "priming";
const KV_LAST_SYNC: &str = "last_sync_at";
/// The server epoch of the last page that followed the log (see `Store::server_epoch`).
const KV_EPOCH: &str = "server_epoch";
/// How many pulled rows were of a kind this version does not know.
const KV_SKIPPED: &str = "skipped_unknown_changes";

/// A push answer's row: rows the push sealed, found through the sealed-row index (the
/// `state <> 'pending'` term is what lets SQLite use that partial index).
const SEALED_ROW_BY_MUTATION_ID: &str = "SELECT seq, entity_id, body FROM outbox
     WHERE mutation_id = ?1 AND state <> 'pending'";

/// A pulled change acknowledges mutations the server received; a row is sealed before
/// its request leaves, so the server never names a pending row.
const ACK_PULLED_MUTATION: &str = "DELETE FROM outbox
     WHERE mutation_id = ?1 AND state <> 'pending' AND state <> 'failed'";

/// A failed sync that a dispatcher resolved: the refused row goes, whether the device
/// had heard of the refusal (`failed`) or not yet (`sent`, its reply lost).
const CLEAR_RESOLVED_FAILED: &str = "DELETE FROM outbox
     WHERE mutation_id = ?1 AND state <> 'pending'";

/// A pulled open failed-sync record names a sealed row whose refusal the device never
/// heard (the reply was lost): the row becomes a failed sync now, with the reason, instead
/// of being resent.
const MARK_PULLED_REFUSAL: &str = "UPDATE outbox SET state = 'failed', last_error = ?2,
        next_attempt_at = NULL
     WHERE mutation_id = ?1 AND state <> 'pending' AND state = 'sent'";

/// Counts for the status line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncCounts {
    /// Mutations the server has not acknowledged (pending or sent).
    pub pending: usize,
    pub failed: usize,
    pub conflicts: usize,
    /// Pulled changes of a kind this version does not know (from a newer server),
    /// skipped: they need an updated Outpost to be seen.
    pub skipped: usize,
}

/// Whether a snapshot is under way (begun, its last page not applied yet).
pub(crate) fn priming_under_way(conn: &rusqlite::Connection) -> Result<bool, StoreError> {
    Ok(kv_get(conn, KV_PRIMING)?.is_some())
}

fn kv_get(tx: &rusqlite::Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

fn kv_set(tx: &rusqlite::Connection, key: &str, value: &str) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO kv (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([key, value])?;
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

/// A conflict or failed-sync record as a pull page brings it.
struct PulledRecord<'a> {
    entity: &'a str,
    id: &'a str,
    order_id: &'a str,
    status: RecordStatus,
    body: &'a str,
}

/// Store a pulled conflict or failed-sync record, stamped with the current snapshot
/// generation (a snapshot's last page removes the open records it did not bring).
fn put_record(
    tx: &Transaction<'_>,
    r: &PulledRecord<'_>,
    gen: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let status = match r.status {
        RecordStatus::Open => "open",
        RecordStatus::Resolved => "resolved",
    };
    tx.execute(
        "INSERT INTO sync_records (entity, id, order_id, status, body, updated_at, seen_gen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (entity, id) DO UPDATE SET order_id = excluded.order_id,
            status = excluded.status, body = excluded.body, updated_at = excluded.updated_at,
            seen_gen = excluded.seen_gen",
        params![
            r.entity,
            r.id,
            r.order_id,
            status,
            r.body,
            now.to_rfc3339(),
            gen
        ],
    )?;
    Ok(())
}

/// Keep a conflict the push answer announced until the pulled record arrives. Never
/// over a record already stored: the pulled record is the full one, and may say that a
/// dispatcher already decided.
fn put_placeholder(
    tx: &Transaction<'_>,
    id: &str,
    order_id: &str,
    body: &str,
    gen: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO sync_records (entity, id, order_id, status, body, updated_at, seen_gen)
         VALUES ('conflict', ?1, ?2, 'open', ?3, ?4, ?5)
         ON CONFLICT (entity, id) DO NOTHING",
        params![id, order_id, body, now.to_rfc3339(), gen],
    )?;
    Ok(())
}

impl Store {
    pub fn last_sync_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(kv_get(&self.conn, KV_LAST_SYNC)?
            .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    pub fn set_last_sync_at(&mut self, at: DateTime<Utc>) -> Result<(), StoreError> {
        kv_set(&self.conn, KV_LAST_SYNC, &at.to_rfc3339())
    }

    /// What this device has not sent, as it reports it to the server on each request:
    /// every change the server has not accepted (pending, sealed without an answer, or
    /// set aside by the device itself, which the server never saw) and the age of the
    /// oldest by the device's clock. Failed syncs the server refused are not counted:
    /// the server keeps a record of each.
    pub fn unsent_report(&self, now: DateTime<Utc>) -> Result<UnsentReport, StoreError> {
        let (count, set_aside, oldest): (i64, i64, Option<String>) = self.conn.query_row(
            "SELECT count(*), count(set_aside_at), min(created_at) FROM outbox
             WHERE state <> 'failed' OR set_aside_at IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let oldest_secs = oldest
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| (now - t.with_timezone(&Utc)).num_seconds().max(0) as u64);
        Ok(UnsentReport {
            count: count.max(0) as u64,
            set_aside: set_aside.max(0) as u64,
            oldest_secs: oldest_secs.filter(|_| count > 0),
        })
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
            skipped: kv_get(&self.conn, KV_SKIPPED)?
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        })
    }
}
