//! The pull side: one page of server changes applied together with its cursor, in
//! one transaction.
//!
//! A page brings orders (stored rebased), inventory, conflict and failed-sync records,
//! and orders or items that left this device's scope. Every pulled row that names one
//! of this device's sealed mutations settles it, so a push whose reply was lost is
//! never resent into a placeholder: an order row or a conflict record acknowledges it
//! (the conflict holds it for a person), an open failed-sync record makes it a failed
//! sync with the server's reason, and a resolved one settles it. A row of a kind this
//! version does not know (a newer server's) is skipped and counted, never a reason to
//! stop: the count shows in the status ("update Outpost"). The page's epoch (protocol
//! 2) is kept once the device follows the log, for the `base_epoch` of the mutations it
//! makes. Left out on purpose: how a row is rebased (`rebase.rs`), whether an order
//! that left scope stays (`scope.rs`), and the sweep that ends a snapshot
//! (`priming.rs`), which the completing page runs.

use chrono::{DateTime, Utc};
use outpost_protocol::wire::{ChangeBody, ChangeEntity, PullResponse, RecordStatus, Rejection};
use rusqlite::params;
use serde::Serialize;

use super::priming::{defer_list_index, finish_priming};
use super::rebase::put_server_row;
use super::scope::{needed_here, settle_out_of_scope};
use super::{
    current_gen, kv_get, kv_set, put_record, PulledRecord, ACK_PULLED_MUTATION,
    CLEAR_RESOLVED_FAILED, KV_CURSOR, KV_EPOCH, KV_SKIPPED, MARK_PULLED_REFUSAL,
};
use crate::db::Store;
use crate::error::StoreError;

/// The order rows a pass took from its push answers, by order id: the version of
/// each (the highest, when an order was answered more than once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AckedRows(std::collections::HashMap<String, u64>);

impl AckedRows {
    /// Note the rows a push answer gave (`PushSummary::taken`).
    pub fn note(&mut self, taken: &[(String, u64)]) {
        for (id, version) in taken {
            let v = self.0.entry(id.clone()).or_insert(*version);
            *v = (*v).max(*version);
        }
    }

    /// Whether the row taken for order `id` is newer than `version`.
    pub fn is_newer_than(&self, id: &str, version: u64) -> bool {
        self.0.get(id).is_some_and(|v| *v > version)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
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
    /// Sealed mutations acknowledged by a pulled row (the reply to their push was lost):
    /// an order row, or a conflict record holding them.
    pub acknowledged: usize,
    /// Sealed mutations a pulled failed-sync record says were refused (the reply to
    /// their push was lost): failed syncs on the device now.
    pub rejected: usize,
    /// Rows of a kind this version does not know, skipped.
    pub skipped: usize,
}

impl Store {
    pub fn pull_cursor(&self) -> Result<Option<String>, StoreError> {
        kv_get(&self.conn, KV_CURSOR)
    }

    /// The server epoch this device's order versions belong to (`None` before the
    /// first page that carried one). Kept only from pages that follow the log or end a
    /// snapshot: while a snapshot is re-sent after a restore, rows not re-sent yet still
    /// hold versions of the old epoch, and a mutation made on one of them must not
    /// claim the new one (claiming the old one only makes the server more careful).
    pub fn server_epoch(&self) -> Result<Option<String>, StoreError> {
        kv_get(&self.conn, KV_EPOCH)
    }

    /// Apply one pull page and store its cursor, in one transaction.
    pub fn apply_pull_page(
        &mut self,
        page: &PullResponse,
        now: DateTime<Utc>,
    ) -> Result<PageSummary, StoreError> {
        self.apply_pull_page_after(page, now, &AckedRows::default())
    }

    /// [`Store::apply_pull_page`] in a pass whose push answers gave this device the
    /// rows in `acked`: an order change older than the row taken from an answer (an
    /// office edit the push merged onto, pulled after it) acknowledges what it names
    /// but leaves the newer row in place. The pull leaves out the device's own
    /// confirmed rows (docs/protocol.md), so without this an earlier row of the same
    /// order would be the last one applied.
    pub fn apply_pull_page_after(
        &mut self,
        page: &PullResponse,
        now: DateTime<Utc>,
        acked: &AckedRows,
    ) -> Result<PageSummary, StoreError> {
        self.write(|tx, _| {
            defer_list_index(tx, page)?;
            let gen = current_gen(tx)?;
            let mut s = PageSummary::default();
            let mut items = crate::inventory::ItemWriter::new(tx)?;
            let mut ack = tx.prepare(ACK_PULLED_MUTATION)?;
            for change in &page.changes {
                if change.is_unknown() {
                    s.skipped += 1;
                    continue;
                }
                let superseded = change.entity == ChangeEntity::WorkOrder
                    && acked.is_newer_than(&change.id, change.version);
                match &change.change {
                    ChangeBody::WorkOrder(row) => {
                        for m in &change.mutation_ids {
                            s.acknowledged += ack.execute([m.to_string()])?;
                        }
                        if !superseded {
                            put_server_row(tx, row, gen, now)?;
                        }
                        s.orders += 1;
                    }
                    ChangeBody::InventoryItem(item) => {
                        items.put(item, Some(gen))?;
                        s.inventory += 1;
                    }
                    ChangeBody::Conflict(c) => {
                        // The record names the mutation it holds (and, once settled,
                        // the resolution): a sealed row of this device among them was
                        // received, whether or not the push's reply arrived.
                        let held = c.mutation.mutation_id;
                        let mut acked = 0;
                        for m in change.mutation_ids.iter().filter(|m| **m != held) {
                            acked += ack.execute([m.to_string()])?;
                        }
                        acked += ack.execute([held.to_string()])?;
                        if acked > 0 {
                            crate::records::refresh_local(tx, &c.order_id.to_string(), now)?;
                            s.acknowledged += acked;
                        }
                        put_record(
                            tx,
                            &PulledRecord {
                                entity: "conflict",
                                id: &c.id.to_string(),
                                order_id: &c.order_id.to_string(),
                                status: c.status,
                                body: &serde_json::to_string(c)?,
                            },
                            gen,
                            now,
                        )?;
                        s.records += 1;
                        if c.status == RecordStatus::Resolved {
                            s.removed += settle_out_of_scope(tx, &c.order_id.to_string())?;
                        }
                    }
                    ChangeBody::FailedSync(f) => {
                        let refused = f.mutation.mutation_id;
                        if f.status == RecordStatus::Resolved {
                            // A dispatcher decided: the device's copy of the refused
                            // change is settled, and the order shows the outcome.
                            let cleared =
                                tx.execute(CLEAR_RESOLVED_FAILED, [refused.to_string()])?;
                            if cleared > 0 {
                                crate::records::refresh_local(tx, &f.order_id.to_string(), now)?;
                            }
                        } else {
                            // Refused, and the reply was lost: a failed sync for the
                            // person now, with the server's reason, not a resend.
                            let why = Rejection {
                                code: f.code,
                                message: f.message.clone(),
                                field_errors: f.field_errors.clone(),
                                failed_sync_id: Some(f.id),
                                resolution: None,
                            };
                            s.rejected += tx.execute(
                                MARK_PULLED_REFUSAL,
                                params![refused.to_string(), serde_json::to_string(&why)?],
                            )?;
                        }
                        // The resolution that settled it, if this device sent it.
                        for m in change.mutation_ids.iter().filter(|m| **m != refused) {
                            s.acknowledged += ack.execute([m.to_string()])?;
                        }
                        put_record(
                            tx,
                            &PulledRecord {
                                entity: "failed_sync",
                                id: &f.id.to_string(),
                                order_id: &f.order_id.to_string(),
                                status: f.status,
                                body: &serde_json::to_string(f)?,
                            },
                            gen,
                            now,
                        )?;
                        s.records += 1;
                        if f.status == RecordStatus::Resolved {
                            s.removed += settle_out_of_scope(tx, &f.order_id.to_string())?;
                        }
                    }
                    // Skipped above (`is_unknown`).
                    ChangeBody::Unknown => {}
                    // Older than the row this pass took from a push answer, which
                    // shows the order in scope again.
                    ChangeBody::LeftScope(_) | ChangeBody::Tombstone if superseded => {}
                    ChangeBody::LeftScope(_) | ChangeBody::Tombstone => {
                        if change.entity == outpost_protocol::wire::ChangeEntity::InventoryItem {
                            crate::inventory::remove_item(tx, &change.id)?;
                            s.removed += 1;
                        } else if needed_here(tx, &change.id)? {
                            let who = match &change.change {
                                ChangeBody::LeftScope(l) => l
                                    .now_assigned_to
                                    .clone()
                                    .unwrap_or_else(|| "another technician".into()),
                                _ => "nobody (deleted on the server)".into(),
                            };
                            tx.prepare_cached(
                                "UPDATE work_orders SET left_scope_to = ?2 WHERE id = ?1",
                            )?
                            .execute(params![change.id, who])?;
                            s.kept_for_work += 1;
                        } else {
                            s.removed += tx
                                .prepare_cached("DELETE FROM work_orders WHERE id = ?1")?
                                .execute([&change.id])?;
                        }
                    }
                }
            }
            kv_set(tx, KV_CURSOR, &page.cursor)?;
            // Kept from a page that follows the log, or that ends a snapshot.
            if let Some(epoch) = page
                .epoch
                .as_ref()
                .filter(|_| page.priming.is_none() || !page.has_more)
            {
                kv_set(tx, KV_EPOCH, epoch)?;
            }
            if s.skipped > 0 {
                let before: usize = kv_get(tx, KV_SKIPPED)?
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                kv_set(tx, KV_SKIPPED, &(before + s.skipped).to_string())?;
            }
            s.removed += finish_priming(tx, page, gen)?;
            crate::crash_point!("client:pull-page-before-commit");
            Ok::<_, StoreError>(s)
        })
    }
}
