//! Full snapshots (the first sync, or the server's `resync_required`).
//!
//! Starting one opens a new scope generation and forgets the cursor; every row a
//! snapshot page brings (orders, inventory, conflict and failed-sync records) is
//! stamped with that generation, and the page that completes the snapshot sweeps away
//! what it did not bring, except what is still needed here: orders with unsynced work
//! or an open conflict stay, marked; open records the server no longer has open go.
//! A snapshot into a device that holds no orders yet (a new device) writes them without
//! the list's index and builds it once at the end: a dispatcher's 100,000 orders
//! inserted one by one into it touched a different page of it for nearly every order,
//! each encrypted again at every commit (6.6 s of priming, 2.2 s without). Until the
//! snapshot ends, the list is read without its index (slower, still right); a store
//! opened outside a snapshot builds it if it is missing.
//! Left out on purpose: applying the snapshot's pages, which is the ordinary pull path
//! (`pull.rs`).

use outpost_protocol::wire::PullResponse;

use super::{current_gen, kv_delete, kv_get, kv_set, KV_CURSOR, KV_GEN, KV_PRIMING};
use crate::db::Store;
use crate::error::StoreError;

impl Store {
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
        super::priming_under_way(&self.conn)
    }
}

/// Before a snapshot's page is applied: on a device that holds no orders, the list's
/// index goes until the snapshot ends ([`finish_priming`] builds it). Run before the
/// page prepares its statements (a schema change).
pub(super) fn defer_list_index(
    tx: &rusqlite::Connection,
    page: &PullResponse,
) -> Result<(), StoreError> {
    if page.priming.is_none() || kv_get(tx, KV_PRIMING)?.is_none() {
        return Ok(());
    }
    let empty: bool = tx
        .prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM work_orders)")?
        .query_row([], |r| r.get(0))?;
    if empty {
        tx.execute_batch("DROP INDEX IF EXISTS work_orders_list")?;
    }
    Ok(())
}

/// Orders of an older generation than `?1` that nothing here needs: removed. Found by
/// the generation index (schema 11), so the sweep reads only what it removes.
const SWEEP_ORDERS: &str = "DELETE FROM work_orders WHERE seen_gen < ?1 AND left_scope_to IS NULL
     AND NOT EXISTS (SELECT 1 FROM outbox b WHERE b.entity_id = work_orders.id)
     AND NOT EXISTS (SELECT 1 FROM sync_records r
                      WHERE r.order_id = work_orders.id
                        AND r.entity = 'conflict' AND r.status = 'open')";

/// Orders of an older generation still needed here: kept, marked as out of scope.
const MARK_ORDERS_KEPT: &str = "UPDATE work_orders SET left_scope_to = 'another technician'
     WHERE seen_gen < ?1 AND left_scope_to IS NULL AND server_body IS NOT NULL";

/// The sweep that ends a snapshot, run by each pull page after its cursor is stored
/// (in the page's transaction). Returns the rows removed.
pub(super) fn finish_priming(
    tx: &rusqlite::Connection,
    page: &PullResponse,
    gen: i64,
) -> Result<usize, StoreError> {
    let mut removed = 0;
    // The snapshot is complete when a page no longer carries priming progress.
    let priming = kv_get(tx, KV_PRIMING)?.is_some();
    if priming && (page.priming.is_none() || !page.has_more) {
        // Conflict and failed-sync records the snapshot did not bring are no longer
        // open on the server for this user (settled while the device could not follow
        // the log, or a previous user's): they go, before the orders they pinned are
        // swept. The device's own refused changes (failed outbox rows) stay for the
        // person to retry or discard.
        removed += tx
            .prepare_cached("DELETE FROM sync_records WHERE seen_gen < ?1 AND status = 'open'")?
            .execute([gen])?;
        // Orders the snapshot did not bring are gone from this device's scope:
        // removed, unless still needed here (queued or failed work, an open
        // conflict); those stay, marked like a `left_scope`, until nothing
        // needs them. An order made here and not yet on the server is simply
        // not on the server yet.
        removed += tx.prepare_cached(SWEEP_ORDERS)?.execute([gen])?;
        tx.prepare_cached(MARK_ORDERS_KEPT)?.execute([gen])?;
        removed += crate::inventory::remove_items_older_than(tx, gen)?;
        // Built once, if the snapshot went without it.
        tx.execute_batch(crate::list::LIST_INDEX)?;
        kv_delete(tx, KV_PRIMING)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use outpost_protocol::wire::{
        Change, ChangeBody, ChangeEntity, PrimingPhase, PrimingProgress, PullResponse,
    };
    use outpost_protocol::WorkOrder;
    use uuid::Uuid;

    use super::{MARK_ORDERS_KEPT, SWEEP_ORDERS};
    use crate::db::Store;

    fn list_index(store: &Store) -> Option<String> {
        use rusqlite::OptionalExtension;
        store
            .conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'work_orders_list'",
                [],
                |r| r.get(0),
            )
            .optional()
            .expect("schema")
    }

    /// A snapshot page of `orders`, `more` to come or the last.
    fn snapshot_page(orders: &[WorkOrder], more: bool, done: u64) -> PullResponse {
        PullResponse {
            changes: orders
                .iter()
                .enumerate()
                .map(|(i, o)| Change {
                    seq: done + i as u64,
                    entity: ChangeEntity::WorkOrder,
                    id: o.id.to_string(),
                    version: o.version,
                    mutation_ids: Vec::new(),
                    change: ChangeBody::WorkOrder(o.clone()),
                })
                .collect(),
            cursor: format!("c{done}"),
            has_more: more,
            priming: more.then_some(PrimingProgress {
                phase: PrimingPhase::Orders,
                done: done + orders.len() as u64,
                total: 4,
                snapshot_seq: 9,
            }),
            server_time: Utc::now(),
            epoch: None,
        }
    }

    fn orders(n: usize) -> Vec<WorkOrder> {
        (0..n)
            .map(|i| {
                let mut o = WorkOrder::blank(Uuid::now_v7());
                o.title = format!("Order {i}");
                o.version = 1;
                o
            })
            .collect()
    }

    #[test]
    fn a_first_snapshot_builds_the_list_index_once_at_its_end() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let key = crate::DbKey::generate().expect("key");
        let mut store = Store::create(tmp.path(), &key).expect("store");
        let fresh = list_index(&store).expect("a new store has the list's index");
        let now = Utc::now();
        let all = orders(4);
        store.begin_priming().expect("begin");
        store
            .apply_pull_page(&snapshot_page(&all[..2], true, 0), now)
            .expect("first page");
        assert_eq!(list_index(&store), None, "no index while the snapshot runs");
        let all_orders = crate::list::OrderQuery::all(now, 25);
        assert_eq!(
            store.order_page(&all_orders).expect("the list reads").total,
            2,
            "the list reads without its index"
        );
        store
            .apply_pull_page(&snapshot_page(&all[2..], false, 2), now)
            .expect("last page");
        assert_eq!(
            list_index(&store).as_deref(),
            Some(fresh.as_str()),
            "built at the end, as the migration made it"
        );
        assert_eq!(store.order_page(&all_orders).expect("list").total, 4);

        // A later snapshot (a resync) into a device with orders keeps the index.
        store.begin_priming().expect("begin again");
        store
            .apply_pull_page(&snapshot_page(&all[..2], true, 0), now)
            .expect("first page");
        assert!(
            list_index(&store).is_some(),
            "a device with orders keeps it"
        );
    }

    #[test]
    fn a_store_opened_outside_a_snapshot_builds_a_missing_list_index() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let key = crate::DbKey::generate().expect("key");
        let mut store = Store::create(tmp.path(), &key).expect("store");
        let fresh = list_index(&store).expect("index");
        store.begin_priming().expect("begin");
        store
            .apply_pull_page(&snapshot_page(&orders(2), true, 0), Utc::now())
            .expect("first page");
        drop(store);
        // Still priming (the app stopped mid-snapshot): left for the snapshot's end.
        let store = Store::open(tmp.path(), &key).expect("open");
        assert_eq!(list_index(&store), None);
        // No longer priming (the flag gone, as after signing out): built on open.
        store
            .conn
            .execute("DELETE FROM kv WHERE key = ?1", [super::KV_PRIMING])
            .expect("clear");
        drop(store);
        let store = Store::open(tmp.path(), &key).expect("open");
        assert_eq!(list_index(&store).as_deref(), Some(fresh.as_str()));
    }

    /// The end of a dispatcher's priming of 100,000 orders read every order's whole row
    /// to find the few the snapshot did not bring.
    #[test]
    fn the_sweep_finds_old_orders_by_their_generation() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let key = crate::DbKey::generate().expect("key");
        let store = Store::create(tmp.path(), &key).expect("store");
        for sql in [SWEEP_ORDERS, MARK_ORDERS_KEPT] {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("plan");
            let plan = stmt
                .query_map([1], |r| r.get::<_, String>(3))
                .expect("plan rows")
                .collect::<Result<Vec<_>, _>>()
                .expect("plan");
            assert!(
                plan.first()
                    .is_some_and(|step| step.contains("INDEX work_orders_by_generation")),
                "{sql}: {plan:?}"
            );
        }
    }
}
