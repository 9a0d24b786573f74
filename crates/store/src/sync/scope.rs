//! Orders that left this device's scope (reassigned, deleted on the server, or missing
//! from a fresh snapshot).
//!
//! Such an order stays, marked with who holds it now, while something here still needs
//! it (unsynced work, an open conflict a person here may have to settle), and goes once
//! nothing does. Left out on purpose: the pull's `left_scope` and tombstone changes and
//! the snapshot sweep apply these rules where they arrive (`pull.rs`, `priming.rs`).

use chrono::{DateTime, Utc};
use outpost_protocol::WorkOrder;
use rusqlite::{params, OptionalExtension, Transaction};

use super::rebase::put_server_row;
use super::session::Session;
use super::{kv_get, KV_SESSION};
use crate::error::StoreError;

/// Whether an order must stay on this device although it left its scope: it carries
/// unsynced work (a queued or failed mutation) or an open conflict a person here may
/// still have to settle.
pub(super) fn needed_here(tx: &rusqlite::Connection, order_id: &str) -> Result<bool, StoreError> {
    let open_conflicts: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM sync_records
         WHERE order_id = ?1 AND entity = 'conflict' AND status = 'open'",
        )?
        .query_row([order_id], |r| r.get(0))?;
    Ok(open_conflicts > 0 || has_outbox_rows(tx, order_id)?)
}

/// Who holds an order that left this device's scope (`None`: in scope, or not here).
fn left_scope_of(tx: &rusqlite::Connection, order_id: &str) -> Result<Option<String>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT left_scope_to FROM work_orders WHERE id = ?1")?
        .query_row([order_id], |r| r.get::<_, Option<String>>(0))
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
    Ok(tx
        .prepare_cached("DELETE FROM work_orders WHERE id = ?1")?
        .execute([order_id])?)
}

/// Take the server's row from a push answer. An order that left this device's scope
/// stays marked (or goes, when nothing needs it here any more: see
/// [`settle_out_of_scope`]); an answer showing it assigned back to the signed-in user
/// brings it back in scope.
pub(super) fn put_acknowledged_row(
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
        tx.prepare_cached("UPDATE work_orders SET left_scope_to = ?2 WHERE id = ?1")?
            .execute(params![id, who])?;
    } else {
        tx.prepare_cached("DELETE FROM work_orders WHERE id = ?1")?
            .execute([&id])?;
    }
    Ok(())
}

fn has_outbox_rows(tx: &rusqlite::Connection, entity_id: &str) -> Result<bool, StoreError> {
    let n: i64 = tx
        .prepare_cached("SELECT count(*) FROM outbox WHERE entity_id = ?1")?
        .query_row([entity_id], |r| r.get(0))?;
    Ok(n > 0)
}
