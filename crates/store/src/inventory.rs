//! The inventory cache on the device: items as the server sends them, and their stock
//! per location (`inventory_stock`, schema 8) so that the views a technician uses are
//! asked of SQL over up to 50,000 items, never by loading the catalogue:
//!
//! - the part picker: the items in one van first (the order's assignee's, where the
//!   server takes parts from, `protocol::stock`) with the quantity there, then the rest;
//! - the Inventory screen's "my van" (one location) and "warehouse" (the items stocked
//!   outside any van, with the quantity summed over those locations) views;
//! - each searched by SKU or name and paged, by name.
//!
//! An item and its levels are written together ([`ItemWriter`]), by the pull and by demo
//! data, and removed together ([`remove_item`], [`remove_items_older_than`]).

use std::collections::BTreeMap;

use outpost_protocol::stock::is_van;
use outpost_protocol::{InventoryItem, Quantity};
use rusqlite::{params, Connection, OptionalExtension, Statement, Transaction};
use rusqlite_migration::{HookError, HookResult};

use crate::db::Store;
use crate::error::StoreError;

/// Which items an inventory page lists, and which quantity it shows beside each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StockScope {
    /// Only the items stocked at this location (a van), with the quantity there.
    At(String),
    /// Only the items stocked outside any van, with the quantity summed over those
    /// locations.
    Warehouse,
    /// Every item: those stocked at this location first, with the quantity there, then
    /// the rest (no quantity).
    First(String),
    /// Every item, no quantity (a picker with no van to put first).
    All,
}

/// An inventory page's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryQuery {
    /// Matched against SKU and name (contains, case-insensitive); empty for all.
    pub text: String,
    pub scope: StockScope,
    pub offset: usize,
    pub limit: usize,
}

/// An item and its quantity in the page's place (`None`: not stocked there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockRow {
    pub item: InventoryItem,
    pub here: Option<Quantity>,
}

/// One page: at most `limit` rows, and whether more follow.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InventoryPage {
    pub rows: Vec<StockRow>,
    pub more: bool,
}

/// The search condition on `i` (an `inventory` row) for the pattern bound as `?1`.
const MATCHES: &str = "(i.sku LIKE ?1 ESCAPE '\\' OR i.name LIKE ?1 ESCAPE '\\')";
const BY_NAME: &str = "ORDER BY i.name COLLATE NOCASE, i.sku";

/// `%text%` for LIKE, with LIKE's own characters escaped.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .trim()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Writes items with their stock levels, its statements prepared once for a
/// transaction (a pull page brings up to a thousand items).
pub(crate) struct ItemWriter<'c> {
    upsert: Statement<'c>,
    places: Statement<'c>,
    drop_level: Statement<'c>,
    level: Statement<'c>,
}

impl<'c> ItemWriter<'c> {
    pub(crate) fn new(tx: &'c Connection) -> Result<Self, rusqlite::Error> {
        Ok(ItemWriter {
            upsert: tx.prepare(
                "INSERT INTO inventory (sku, name, unit, price_cents, total_stock_milli, body, seen_gen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, coalesce(?7, 0))
                 ON CONFLICT (sku) DO UPDATE SET name = excluded.name, unit = excluded.unit,
                    price_cents = excluded.price_cents,
                    total_stock_milli = excluded.total_stock_milli, body = excluded.body,
                    seen_gen = coalesce(?7, inventory.seen_gen)
                 WHERE inventory.body IS NOT excluded.body
                    OR inventory.seen_gen IS NOT coalesce(?7, inventory.seen_gen)",
            )?,
            places: tx.prepare("SELECT location FROM inventory_stock WHERE sku = ?1")?,
            drop_level: tx.prepare("DELETE FROM inventory_stock WHERE location = ?1 AND sku = ?2")?,
            level: tx.prepare(
                "INSERT INTO inventory_stock (location, sku, van, quantity_milli)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (location, sku) DO UPDATE
                    SET van = excluded.van, quantity_milli = excluded.quantity_milli
                 WHERE inventory_stock.van IS NOT excluded.van
                    OR inventory_stock.quantity_milli IS NOT excluded.quantity_milli",
            )?,
        })
    }

    /// Write an item and its stock levels (replacing what was there). `gen`: the
    /// snapshot generation the pull brought it in (`None` keeps the row's own).
    pub(crate) fn put(&mut self, item: &InventoryItem, gen: Option<i64>) -> Result<(), StoreError> {
        let written = self.upsert.execute(params![
            item.sku,
            item.name,
            item.unit,
            item.price_cents,
            item.total_stock().milli(),
            serde_json::to_string(item)?,
            gen,
        ])?;
        if written == 0 {
            // The stored body (which holds the levels) is this one: so are its rows.
            return Ok(());
        }
        Ok(self.levels(item)?)
    }

    /// Make an item's rows in `inventory_stock` its levels (a location listed twice
    /// counts once, with both quantities), writing only the rows that differ: a delta
    /// changes one or two of an item's levels, and rewriting them all (and their index
    /// entries) made a 1 % delta of a large catalogue write most of the database.
    fn levels(&mut self, item: &InventoryItem) -> Result<(), rusqlite::Error> {
        let mut wanted: BTreeMap<&str, i64> = BTreeMap::new();
        for level in &item.stock {
            let q = wanted.entry(level.location.as_str()).or_insert(0);
            *q = q.saturating_add(level.quantity.milli());
        }
        let stored = self
            .places
            .query_map([&item.sku], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        for place in stored.iter().filter(|p| !wanted.contains_key(p.as_str())) {
            self.drop_level.execute(params![place, item.sku])?;
        }
        for (place, quantity) in wanted {
            self.level
                .execute(params![place, item.sku, is_van(place), quantity])?;
        }
        Ok(())
    }
}

/// Remove an item and its stock levels; how many items were removed.
pub(crate) fn remove_item(tx: &Connection, sku: &str) -> Result<usize, StoreError> {
    tx.prepare_cached("DELETE FROM inventory_stock WHERE sku = ?1")?
        .execute([sku])?;
    Ok(tx
        .prepare_cached("DELETE FROM inventory WHERE sku = ?1")?
        .execute([sku])?)
}

/// Remove the items a completed snapshot did not bring (seen before generation
/// `gen`), with their stock levels; how many items were removed.
pub(crate) fn remove_items_older_than(tx: &Connection, gen: i64) -> Result<usize, StoreError> {
    tx.prepare_cached(
        "DELETE FROM inventory_stock
          WHERE sku IN (SELECT sku FROM inventory WHERE seen_gen < ?1)",
    )?
    .execute([gen])?;
    Ok(tx
        .prepare_cached("DELETE FROM inventory WHERE seen_gen < ?1")?
        .execute([gen])?)
}

/// Migration 8's hook: the stock levels of the items already stored.
pub(crate) fn fill_inventory_stock(tx: &Transaction<'_>) -> HookResult {
    let bodies = {
        let mut read = tx.prepare_cached("SELECT sku, body FROM inventory")?;
        let rows = read
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows
    };
    let mut writer = ItemWriter::new(tx)?;
    for (sku, body) in bodies {
        let item: InventoryItem = serde_json::from_str(&body)
            .map_err(|e| HookError::Hook(format!("inventory item {sku} cannot be read: {e}")))?;
        writer.levels(&item)?;
    }
    Ok(())
}

/// Rows of `(body, quantity)` as [`StockRow`]s.
fn read_rows(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<StockRow>, StoreError> {
    let raw = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter()
        .map(|(body, here)| {
            Ok(StockRow {
                item: serde_json::from_str(&body)?,
                here: here.map(Quantity),
            })
        })
        .collect()
}

impl Store {
    /// Replace or add inventory items (demo data; the pull writes its own pages).
    pub fn put_inventory(&mut self, items: &[InventoryItem]) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let mut writer = ItemWriter::new(tx)?;
            for item in items {
                writer.put(item, None)?;
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Inventory items whose SKU or name contains `query` (case-insensitive), by name.
    pub fn search_inventory(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<InventoryItem>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT i.body, NULL FROM inventory i WHERE {MATCHES} {BY_NAME} LIMIT ?2"
        ))?;
        Ok(
            read_rows(&mut stmt, params![like_pattern(query), limit as i64])?
                .into_iter()
                .map(|r| r.item)
                .collect(),
        )
    }

    /// One page of the inventory as `q` asks: see [`StockScope`]. Each part is read in
    /// name order from an index and stops at the page's end.
    pub fn inventory_page(&self, q: &InventoryQuery) -> Result<InventoryPage, StoreError> {
        let pattern = like_pattern(&q.text);
        // One more than the page, to know whether more follow.
        let want = q.limit.saturating_add(1);
        let mut rows = match &q.scope {
            StockScope::At(location) | StockScope::First(location) => {
                self.stocked_at(location, &pattern, q.offset, want)?
            }
            StockScope::All => {
                let mut stmt = self.conn.prepare(&format!(
                    "SELECT i.body, NULL FROM inventory i WHERE {MATCHES} {BY_NAME} LIMIT ?2 OFFSET ?3"
                ))?;
                read_rows(&mut stmt, params![pattern, want as i64, q.offset as i64])?
            }
            StockScope::Warehouse => {
                let mut stmt = self.conn.prepare(&format!(
                    "SELECT i.body, (SELECT sum(s.quantity_milli) FROM inventory_stock s
                                      WHERE s.sku = i.sku AND s.van = 0)
                       FROM inventory i
                      WHERE {MATCHES}
                        AND EXISTS (SELECT 1 FROM inventory_stock s
                                     WHERE s.sku = i.sku AND s.van = 0)
                      {BY_NAME} LIMIT ?2 OFFSET ?3"
                ))?;
                read_rows(&mut stmt, params![pattern, want as i64, q.offset as i64])?
            }
        };
        if let StockScope::First(location) = &q.scope {
            if rows.len() < want {
                // The page reaches past the van's items: the rest follow, by name.
                let in_van: i64 = self.conn.query_row(
                    &format!(
                        "SELECT count(*) FROM inventory_stock s JOIN inventory i ON i.sku = s.sku
                          WHERE s.location = ?2 AND {MATCHES}"
                    ),
                    params![pattern, location],
                    |r| r.get(0),
                )?;
                let offset = q.offset.saturating_sub(in_van as usize);
                let mut stmt = self.conn.prepare(&format!(
                    // Named: without it SQLite may scan the table and sort every
                    // item instead of walking the name index to the page's end.
                    "SELECT i.body, NULL FROM inventory i INDEXED BY inventory_by_name
                      WHERE {MATCHES}
                        AND NOT EXISTS (SELECT 1 FROM inventory_stock s
                                         WHERE s.location = ?2 AND s.sku = i.sku)
                      {BY_NAME} LIMIT ?3 OFFSET ?4"
                ))?;
                let rest = read_rows(
                    &mut stmt,
                    params![pattern, location, (want - rows.len()) as i64, offset as i64],
                )?;
                rows.extend(rest);
            }
        }
        let more = rows.len() > q.limit;
        rows.truncate(q.limit);
        Ok(InventoryPage { rows, more })
    }

    /// The items stocked at `location` matching `pattern`, by name, with the quantity.
    fn stocked_at(
        &self,
        location: &str,
        pattern: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<StockRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT i.body, s.quantity_milli
               FROM inventory_stock s JOIN inventory i ON i.sku = s.sku
              WHERE s.location = ?2 AND {MATCHES}
              {BY_NAME} LIMIT ?3 OFFSET ?4"
        ))?;
        read_rows(
            &mut stmt,
            params![pattern, location, limit as i64, offset as i64],
        )
    }

    pub fn inventory_count(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM inventory")?
            .query_row([], |r| r.get(0))?;
        Ok(n as usize)
    }

    pub fn inventory_item(&self, sku: &str) -> Result<Option<InventoryItem>, StoreError> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM inventory WHERE sku = ?1")?
            .query_row([sku], |r| r.get(0))
            .optional()?;
        body.map(|b| serde_json::from_str(&b).map_err(StoreError::from))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DbKey;
    use outpost_protocol::StockLevel;

    fn item(n: usize, levels: &[(&str, i64)]) -> InventoryItem {
        InventoryItem {
            sku: format!("S{n:03}"),
            name: format!("Part {n:03}"),
            description: String::new(),
            unit: "each".into(),
            price_cents: 100,
            stock: levels
                .iter()
                .map(|(l, q)| StockLevel {
                    location: (*l).into(),
                    quantity: Quantity::from_units(*q),
                })
                .collect(),
        }
    }

    fn store_with(items: &[InventoryItem]) -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut store =
            Store::create(tmp.path(), &DbKey::generate().expect("key")).expect("create");
        store.put_inventory(items).expect("put");
        (tmp, store)
    }

    fn page(
        store: &Store,
        scope: StockScope,
        text: &str,
        offset: usize,
        limit: usize,
    ) -> (Vec<(String, Option<i64>)>, bool) {
        let p = store
            .inventory_page(&InventoryQuery {
                text: text.into(),
                scope,
                offset,
                limit,
            })
            .expect("page");
        (
            p.rows
                .iter()
                .map(|r| (r.item.sku.clone(), r.here.map(|q| q.milli() / 1000)))
                .collect(),
            p.more,
        )
    }

    /// Ten items; 2, 5 and 8 in tech1's van, 5 also in tech2's; 9 only in a van.
    fn fleet() -> Vec<InventoryItem> {
        (0..10)
            .map(|n| match n {
                2 | 8 => item(n, &[("main", 10), ("van-tech1", n as i64)]),
                5 => item(
                    n,
                    &[
                        ("main", 10),
                        ("depot", 4),
                        ("van-tech1", 5),
                        ("van-tech2", 1),
                    ],
                ),
                9 => item(n, &[("van-tech2", 3)]),
                _ => item(n, &[("main", n as i64)]),
            })
            .collect()
    }

    /// Issue 25 item 2: a delta rewrote every stock row of each changed item (deleted
    /// and inserted again) and the item's row even when nothing in it changed; at a
    /// million items a 1 % delta wrote hundreds of megabytes. Only what changed is
    /// written now: the rows SQLite counts as changed show it.
    #[test]
    fn an_item_written_again_changes_only_the_stock_rows_that_differ() {
        let (_tmp, mut store) = store_with(&[item(
            1,
            &[
                ("main", 10),
                ("depot", 4),
                ("van-tech1", 2),
                ("van-tech2", 1),
            ],
        )]);
        let changes = |store: &mut Store, items: &[InventoryItem]| {
            let before = store.conn.total_changes();
            store.put_inventory(items).expect("put");
            store.conn.total_changes() - before
        };
        // One level moved, one location gone: the item's row, one update, one delete.
        let moved = item(1, &[("main", 10), ("depot", 4), ("van-tech1", 1)]);
        assert_eq!(changes(&mut store, std::slice::from_ref(&moved)), 3);
        // The same item again: nothing to write.
        assert_eq!(changes(&mut store, std::slice::from_ref(&moved)), 0);
        let levels: Vec<(String, Option<i64>)> = [
            ("main", StockScope::At("main".into())),
            ("depot", StockScope::At("depot".into())),
            ("van-tech1", StockScope::At("van-tech1".into())),
            ("van-tech2", StockScope::At("van-tech2".into())),
        ]
        .into_iter()
        .map(|(place, scope)| {
            (
                place.to_owned(),
                page(&store, scope, "", 0, 10).0.first().and_then(|r| r.1),
            )
        })
        .collect();
        assert_eq!(
            levels,
            [
                ("main".to_owned(), Some(10)),
                ("depot".to_owned(), Some(4)),
                ("van-tech1".to_owned(), Some(1)),
                ("van-tech2".to_owned(), None),
            ]
        );
        // A location listed twice counts once, with both quantities.
        let twice = item(1, &[("main", 10), ("main", 5)]);
        store.put_inventory(&[twice]).expect("put");
        assert_eq!(
            page(&store, StockScope::At("main".into()), "", 0, 10).0,
            [("S001".to_owned(), Some(15))]
        );
        assert_eq!(
            page(&store, StockScope::At("depot".into()), "", 0, 10).0,
            []
        );
    }

    #[test]
    fn the_van_comes_first_with_its_quantity_and_pages_run_on_across_the_boundary() {
        let (_t, store) = store_with(&fleet());
        let first = || StockScope::First("van-tech1".into());
        let (rows, more) = page(&store, first(), "", 0, 4);
        assert_eq!(
            rows,
            [
                ("S002", Some(2)),
                ("S005", Some(5)),
                ("S008", Some(8)),
                ("S000", None)
            ]
            .map(|(s, q)| (s.to_string(), q))
        );
        assert!(more);
        let (rows, _) = page(&store, first(), "", 2, 3);
        let skus: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(skus, ["S008", "S000", "S001"]);
        let (rows, more) = page(&store, first(), "", 8, 5);
        let skus: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(skus, ["S007", "S009"]);
        assert!(!more);
        // A search narrows both parts.
        let (rows, _) = page(&store, first(), "part 00", 0, 20);
        assert_eq!(rows.len(), 10);
        let (rows, _) = page(&store, first(), "S00_", 0, 20);
        assert!(
            rows.is_empty(),
            "LIKE's own characters are literal: {rows:?}"
        );
    }

    #[test]
    fn my_van_lists_one_location_and_the_warehouse_sums_every_place_that_is_not_a_van() {
        let (_t, mut store) = store_with(&fleet());
        let (rows, more) = page(&store, StockScope::At("van-tech2".into()), "", 0, 10);
        assert_eq!(
            rows,
            vec![("S005".to_string(), Some(1)), ("S009".to_string(), Some(3))]
        );
        assert!(!more);
        let (rows, _) = page(&store, StockScope::Warehouse, "", 0, 20);
        assert_eq!(rows.len(), 9, "S009 is only in a van: {rows:?}");
        assert!(
            rows.contains(&("S005".into(), Some(14))),
            "main and depot: {rows:?}"
        );
        // A new version of an item replaces its levels; a removed item loses them.
        store
            .put_inventory(&[item(5, &[("main", 1)])])
            .expect("put");
        let (rows, _) = page(&store, StockScope::At("van-tech2".into()), "", 0, 10);
        assert_eq!(rows, vec![("S009".to_string(), Some(3))]);
        store
            .write(|tx, _| remove_item(tx, "S009"))
            .expect("remove");
        let (rows, _) = page(&store, StockScope::At("van-tech2".into()), "", 0, 10);
        assert!(rows.is_empty());
        let left: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM inventory_stock WHERE sku = 'S009'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(left, 0);
        // A completed snapshot removes the items it did not bring, with their levels.
        let removed = store
            .write(|tx, _| remove_items_older_than(tx, 1))
            .expect("remove older");
        assert_eq!(removed, 9);
        let levels: i64 = store
            .conn
            .query_row("SELECT count(*) FROM inventory_stock", [], |r| r.get(0))
            .expect("count");
        assert_eq!(levels, 0);
    }
}
