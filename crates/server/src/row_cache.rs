//! Parsed order rows this instance wrote and committed, so that the next push on the
//! same order does not read and parse its JSON again (orders grow: notes, time entries,
//! parts lines; parsing the row was the largest single cost of a push).
//!
//! Only committed rows go in: a push collects the rows it wrote and the handler adds
//! them after the transaction committed ([`RowCache::insert_committed`]). An entry is
//! never trusted on its own: the push reads the row's `version` and `updated_us` in its
//! write transaction and uses the entry only when both match (otherwise it reads the
//! row as before), so a write by another instance on the same PostgreSQL database, or
//! by any other path, is never missed. Bounded by the size of the rows' JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use outpost_protocol::merge::FieldStamps;
use outpost_protocol::WorkOrder;
use uuid::Uuid;

/// JSON bytes of rows kept (the parsed rows take a small multiple of it).
const BYTES_MAX: usize = 16 << 20;

/// One order row as committed: what identifies the write, and the row parsed and as
/// stored.
#[derive(Debug)]
pub struct CachedRow {
    pub version: u64,
    pub updated_us: i64,
    pub order: WorkOrder,
    pub stamps: FieldStamps,
    pub json: String,
}

#[derive(Debug, Default)]
pub struct RowCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    rows: HashMap<Uuid, Arc<CachedRow>>,
    bytes: usize,
}

impl RowCache {
    /// The entry for an order, if any (the caller checks it against the store).
    pub fn get(&self, id: Uuid) -> Option<Arc<CachedRow>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.rows.get(&id).cloned()
    }

    /// Add rows written by a transaction that has committed. A row older than the one
    /// already kept (two pushes finishing out of order) is left out.
    pub fn insert_committed(&self, rows: Vec<Arc<CachedRow>>) {
        if rows.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows {
            let id = row.order.id;
            if inner
                .rows
                .get(&id)
                .is_some_and(|r| r.version >= row.version)
            {
                continue;
            }
            let size = row.json.len();
            if size > BYTES_MAX / 4 {
                if let Some(old) = inner.rows.remove(&id) {
                    inner.bytes -= old.json.len();
                }
                continue;
            }
            if let Some(old) = inner.rows.insert(id, row) {
                inner.bytes -= old.json.len();
            }
            inner.bytes += size;
            // Over the bound: drop arbitrary other entries (a hash map's order).
            while inner.bytes > BYTES_MAX {
                let Some(victim) = inner.rows.keys().find(|k| **k != id).copied() else {
                    break;
                };
                if let Some(old) = inner.rows.remove(&victim) {
                    inner.bytes -= old.json.len();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u128, version: u64, size: usize) -> Arc<CachedRow> {
        let mut order = WorkOrder::blank(Uuid::from_u128(id));
        order.version = version;
        Arc::new(CachedRow {
            version,
            updated_us: 1,
            order,
            stamps: FieldStamps::new(),
            json: "x".repeat(size),
        })
    }

    #[test]
    fn newer_rows_replace_older_ones_and_the_size_stays_bounded() {
        let cache = RowCache::default();
        cache.insert_committed(vec![row(1, 2, 10)]);
        cache.insert_committed(vec![row(1, 1, 10)]);
        assert_eq!(cache.get(Uuid::from_u128(1)).map(|r| r.version), Some(2));
        let big = BYTES_MAX / 8;
        cache.insert_committed((0..20).map(|i| row(100 + i, 1, big)).collect());
        let inner = cache.inner.lock().expect("lock");
        assert!(inner.bytes <= BYTES_MAX);
        assert_eq!(
            inner.bytes,
            inner.rows.values().map(|r| r.json.len()).sum::<usize>()
        );
        assert!(
            inner.rows.contains_key(&Uuid::from_u128(119)),
            "the newest stays"
        );
    }
}
