//! The order list as the app shows it: one tab (today, upcoming, completed) or all
//! orders, filtered and searched, one page at a time, in SQL.
//!
//! Every column a list query reads is in one covering index (`work_orders_list`,
//! migration 4), kept in the list's own order since schema 10: a keystroke walks the
//! index from the soonest order and stops once it has the page and [`TOTAL_COUNTED`]
//! matches past it, so neither a sort of every match nor a count of all of them grows
//! with the orders on the device (a dispatcher's may hold 100,000). Only the bodies of
//! the rows on the page are decoded; the app never holds the whole list. The search
//! column is kept by the store's one write path (`orders.rs`, a mirrored column).

use chrono::{DateTime, Utc};
use outpost_protocol::{Priority, Status, WorkOrder};
use rusqlite::types::Value;
use rusqlite::{params, Transaction};
use rusqlite_migration::{HookError, HookResult};

use crate::db::Store;
use crate::error::StoreError;
use crate::orders::{decode_row, order_row, OrderRow, SyncState, ORDER_SELECT};

/// The list's index as migration 10 made it (the text `sqlite_master` keeps stays the
/// migration's). A device with no orders drops it while it takes its first snapshot,
/// and the snapshot's last page builds it once (`sync/priming.rs`): kept up to date row
/// by row, its scattered inserts cost a dispatcher's priming of 100,000 orders two
/// thirds of its time. A later migration that touches it says `IF EXISTS`.
pub(crate) const LIST_INDEX: &str = "CREATE INDEX IF NOT EXISTS work_orders_list
    ON work_orders ((scheduled_start IS NULL), scheduled_start, number, id,
                    status, priority, assignee, search_text)";

/// The most rows one page may hold.
pub const PAGE_MAX: usize = 500;

/// How many matches a page counts past its first row: beyond this the list says "more
/// than" (`OrderPage::total_capped`) instead of reading every match of a short search
/// in a list of 100,000 orders to count them (issue 25 item 2).
pub const TOTAL_COUNTED: usize = 1_000;

/// Which tab of the technician's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Open orders scheduled before the end of the viewer's day (overdue ones too), or
    /// not scheduled at all.
    Today,
    /// Open orders scheduled later.
    Upcoming,
    /// Completed and cancelled orders, latest first.
    Completed,
}

/// What the list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQuery {
    /// Words that must all appear (any case) in the number, title, customer, address,
    /// asset tag, status or assignee. One number alone (`122`, `#122`) lists that
    /// order first.
    pub text: String,
    /// One tab, or every order (the dispatcher's list).
    pub bucket: Option<Bucket>,
    /// The start of the viewer's next local day: the line between today and upcoming.
    pub tomorrow: DateTime<Utc>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub sync: Option<SyncState>,
    /// `Some("")`: orders nobody is assigned to; `Some(name)`: that person's.
    pub assignee: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

impl OrderQuery {
    /// Everything, first page: a starting point to set fields on.
    pub fn all(tomorrow: DateTime<Utc>, limit: usize) -> OrderQuery {
        OrderQuery {
            text: String::new(),
            bucket: None,
            tomorrow,
            status: None,
            priority: None,
            sync: None,
            assignee: None,
            offset: 0,
            limit,
        }
    }
}

/// How many orders each tab holds (search and filters aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketCounts {
    pub today: usize,
    pub upcoming: usize,
    pub completed: usize,
}

/// One page of the list.
#[derive(Debug, Clone)]
pub struct OrderPage {
    pub rows: Vec<OrderRow>,
    /// How many orders match in all (the page holds at most `limit` of them), or, when
    /// `total_capped`, how many were counted: more match.
    pub total: usize,
    /// More orders match than `total` (the count stopped at [`TOTAL_COUNTED`] past the
    /// page's offset).
    pub total_capped: bool,
    pub counts: BucketCounts,
    /// Everyone some order is assigned to, by name (the dispatcher's filter).
    pub assignees: Vec<String>,
}

/// What [`Store::order_page`] keeps between keystrokes (see `tabs_and_assignees`).
#[derive(Debug)]
pub(crate) struct ListCache {
    changes: u64,
    data_version: i64,
    tomorrow: DateTime<Utc>,
    counts: BucketCounts,
    assignees: Vec<String>,
}

/// What a search matches in an order, lower-cased; fields are kept apart by line
/// breaks, which a search word never contains, so no word matches across two fields.
pub fn search_text(order: &WorkOrder) -> String {
    let mut parts: Vec<&str> = Vec::with_capacity(7);
    let number = order.number.map(|n| n.to_string());
    let status = order.status.as_str().replace('_', " ");
    if let Some(n) = &number {
        parts.push(n);
    }
    parts.extend([
        order.title.as_str(),
        order.customer.name.as_str(),
        order.site.address.as_str(),
        order.equipment.asset_tag.as_str(),
        status.as_str(),
    ]);
    if let Some(a) = &order.assignee {
        parts.push(a);
    }
    parts.join("\n").to_lowercase()
}

/// The words of a search, as `search_text` holds them (`#1042` finds order 1042).
fn search_terms(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split_whitespace()
        .map(|t| t.trim_start_matches('#').to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The order number a search names, when it is one number alone (`122` or `#122`):
/// that order is listed first, before the others that merely contain the digits.
fn number_searched(text: &str) -> Option<i64> {
    match search_terms(text).as_slice() {
        [one] if one.bytes().all(|b| b.is_ascii_digit()) => one.parse().ok(),
        _ => None,
    }
}

/// Migration 4's hook: fill the new search column of the orders already stored.
pub(crate) fn fill_search_text(tx: &Transaction<'_>) -> HookResult {
    let rows = {
        let mut read = tx.prepare_cached("SELECT id, body FROM work_orders")?;
        let rows = read
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        rows
    };
    let mut write = tx.prepare_cached("UPDATE work_orders SET search_text = ?2 WHERE id = ?1")?;
    for (id, body) in rows {
        let order: WorkOrder = serde_json::from_str(&body)
            .map_err(|e| HookError::Hook(format!("order {id} cannot be read: {e}")))?;
        write.execute(params![id, search_text(&order)])?;
    }
    Ok(())
}

const CLOSED: &str = "o.status IN ('completed', 'cancelled')";

/// An order's sync state in SQL, the same rule as `SyncState::from_outbox_states` and
/// the conflict override in `decode_row`.
const SYNC_STATE_SQL: &str = "CASE
    WHEN EXISTS (SELECT 1 FROM outbox b WHERE b.entity_id = o.id AND b.state = 'failed')
        THEN 'failed'
    WHEN EXISTS (SELECT 1 FROM sync_records r WHERE r.order_id = o.id
                 AND r.entity = 'conflict' AND r.status = 'open')
        THEN 'conflict'
    WHEN EXISTS (SELECT 1 FROM outbox b WHERE b.entity_id = o.id AND b.state = 'pending')
        THEN 'saved'
    WHEN EXISTS (SELECT 1 FROM outbox b WHERE b.entity_id = o.id AND b.state = 'sent')
        THEN 'syncing'
    ELSE 'synced' END";

/// The WHERE clause of a query and its parameters.
fn filter(q: &OrderQuery) -> (String, Vec<Value>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    let bind = |values: &mut Vec<Value>, v: Value| {
        values.push(v);
        format!("?{}", values.len())
    };
    match q.bucket {
        None => {}
        Some(Bucket::Completed) => clauses.push(CLOSED.to_owned()),
        Some(Bucket::Today) => {
            let p = bind(&mut values, Value::Text(q.tomorrow.to_rfc3339()));
            clauses.push(format!(
                "NOT {CLOSED} AND (o.scheduled_start IS NULL OR o.scheduled_start < {p})"
            ));
        }
        Some(Bucket::Upcoming) => {
            let p = bind(&mut values, Value::Text(q.tomorrow.to_rfc3339()));
            clauses.push(format!("NOT {CLOSED} AND o.scheduled_start >= {p}"));
        }
    }
    if let Some(s) = q.status {
        let p = bind(&mut values, Value::Text(s.as_str().to_owned()));
        clauses.push(format!("o.status = {p}"));
    }
    if let Some(pr) = q.priority {
        let p = bind(&mut values, Value::Text(pr.as_str().to_owned()));
        clauses.push(format!("o.priority = {p}"));
    }
    match q.assignee.as_deref().map(str::trim) {
        None => {}
        Some("") => clauses.push("o.assignee IS NULL".to_owned()),
        Some(a) => {
            let p = bind(&mut values, Value::Text(a.to_owned()));
            clauses.push(format!("o.assignee = {p}"));
        }
    }
    for term in search_terms(&q.text) {
        let p = bind(&mut values, Value::Text(term));
        clauses.push(format!("instr(o.search_text, {p}) > 0"));
    }
    if let Some(s) = q.sync {
        let p = bind(&mut values, Value::Text(s.as_str().to_owned()));
        clauses.push(format!("({SYNC_STATE_SQL}) = {p}"));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    (sql, values)
}

/// The list's query: the ids of up to `rows` matches from the query's offset, in the
/// list's order; the filter alone (for a count) is its first `filter_values` values.
struct PageWalk {
    sql: String,
    filter_sql: String,
    values: Vec<Value>,
    filter_values: usize,
}

fn page_walk(q: &OrderQuery, rows: usize) -> PageWalk {
    let (filter_sql, mut values) = filter(q);
    let by_time = if q.bucket == Some(Bucket::Completed) {
        "o.scheduled_start IS NULL, o.scheduled_start DESC, o.number DESC, o.id"
    } else {
        // The index's own order (schema 10): walked, never sorted.
        "o.scheduled_start IS NULL, o.scheduled_start, o.number, o.id"
    };
    // Searching "#122" lists order 122 first. Its parameter comes after the filter's,
    // so a count (the filter's alone) binds the same values.
    let filter_values = values.len();
    let order_by = match number_searched(&q.text) {
        Some(n) => {
            values.push(Value::Integer(n));
            format!("o.number IS ?{} DESC, {by_time}", values.len())
        }
        None => by_time.to_owned(),
    };
    values.push(Value::Integer(rows.min(i64::MAX as usize) as i64));
    values.push(Value::Integer(q.offset.min(i64::MAX as usize) as i64));
    let n = values.len();
    PageWalk {
        sql: format!(
            "SELECT o.id FROM work_orders o{filter_sql} ORDER BY {order_by} LIMIT ?{} OFFSET ?{n}",
            n - 1
        ),
        filter_sql,
        values,
        filter_values,
    }
}

impl Store {
    /// One page of the order list: soonest first (unscheduled last), the completed tab
    /// latest first; ties by number, then id.
    pub fn order_page(&self, q: &OrderQuery) -> Result<OrderPage, StoreError> {
        let limit = q.limit.min(PAGE_MAX);
        let counted = limit.max(TOTAL_COUNTED);
        let walk = page_walk(q, counted + 1);
        // The page and the number of matches after its offset, up to TOTAL_COUNTED, in
        // one walk of the index in the list's order (no sort, except for a number
        // searched or the completed tab's reverse order): a common search stops early,
        // a rare one reads the index once.
        let mut found = self
            .conn
            .prepare(&walk.sql)?
            .query_map(rusqlite::params_from_iter(walk.values.iter()), |r| {
                r.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let (total, total_capped) = if found.is_empty() && q.offset > 0 {
            // Past the end: count on its own, to say how many there are.
            let all: i64 = self.conn.query_row(
                &format!("SELECT count(*) FROM work_orders o{}", walk.filter_sql),
                rusqlite::params_from_iter(walk.values[..walk.filter_values].iter()),
                |r| r.get(0),
            )?;
            (usize::try_from(all).unwrap_or(0), false)
        } else {
            (q.offset + found.len().min(counted), found.len() > counted)
        };
        found.truncate(limit);
        let ids = found;
        let mut row_stmt = self
            .conn
            .prepare(&format!("{ORDER_SELECT} WHERE o.id = ?1"))?;
        let mut rows = Vec::with_capacity(ids.len());
        for id in &ids {
            rows.push(decode_row(row_stmt.query_row([id], order_row)?)?);
        }
        let (counts, assignees) = self.tabs_and_assignees(q.tomorrow)?;
        Ok(OrderPage {
            rows,
            total,
            total_capped,
            counts,
            assignees,
        })
    }

    /// The tab counts and assignee names, from the cache while nothing has changed:
    /// neither this connection (`total_changes`) nor another one (`data_version`) has
    /// written since, and the day line is the same.
    fn tabs_and_assignees(
        &self,
        tomorrow: DateTime<Utc>,
    ) -> Result<(BucketCounts, Vec<String>), StoreError> {
        let changes = self.conn.total_changes();
        let data_version: i64 = self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?;
        if let Some(c) = self.list_cache.borrow().as_ref() {
            if c.changes == changes && c.data_version == data_version && c.tomorrow == tomorrow {
                return Ok((c.counts, c.assignees.clone()));
            }
        }
        let counts = self.bucket_counts(tomorrow)?;
        let assignees = self.assignees()?;
        *self.list_cache.borrow_mut() = Some(ListCache {
            changes,
            data_version,
            tomorrow,
            counts,
            assignees: assignees.clone(),
        });
        Ok((counts, assignees))
    }

    fn bucket_counts(&self, tomorrow: DateTime<Utc>) -> Result<BucketCounts, StoreError> {
        let (today, upcoming, completed): (i64, i64, i64) = self.conn.query_row(
            &format!(
                "SELECT
                    coalesce(sum(NOT {CLOSED} AND (o.scheduled_start IS NULL
                                                   OR o.scheduled_start < ?1)), 0),
                    coalesce(sum(NOT {CLOSED} AND o.scheduled_start >= ?1), 0),
                    coalesce(sum({CLOSED}), 0)
                 FROM work_orders o"
            ),
            [tomorrow.to_rfc3339()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let n = |v: i64| usize::try_from(v).unwrap_or(0);
        Ok(BucketCounts {
            today: n(today),
            upcoming: n(upcoming),
            completed: n(completed),
        })
    }

    fn assignees(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT assignee FROM work_orders WHERE assignee IS NOT NULL ORDER BY assignee",
        )?;
        let names = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DbKey;
    use chrono::{Duration, TimeZone};
    use outpost_protocol::{Mutation, NoteEntry, Op, ScheduledWindow, SetOp};
    use proptest::prelude::*;
    use uuid::Uuid;

    const WORDS: [&str; 6] = ["Pump", "Boiler", "Ærø", "valve", "Nord", "filter"];
    const PEOPLE: [&str; 3] = ["tech1", "tech2", "disp1"];

    fn noon() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0)
            .single()
            .expect("time")
    }

    /// What one generated order looks like.
    #[derive(Debug, Clone)]
    struct Spec {
        number: Option<u64>,
        title: (usize, usize),
        customer: usize,
        status: Status,
        priority: Priority,
        /// Hours from noon; `None`: not scheduled.
        start: Option<i64>,
        assignee: Option<usize>,
        /// 0 synced, 1 pending, 2 sent, 3 failed, 4 conflict.
        sync: u8,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            proptest::option::of(1u64..50),
            (0..WORDS.len(), 0..WORDS.len()),
            0..WORDS.len(),
            proptest::sample::select(Status::ALL.to_vec()),
            proptest::sample::select(vec![
                Priority::Low,
                Priority::Normal,
                Priority::High,
                Priority::Urgent,
            ]),
            proptest::option::of(-60i64..60),
            proptest::option::of(0..PEOPLE.len()),
            0u8..5,
        )
            .prop_map(
                |(number, title, customer, status, priority, start, assignee, sync)| Spec {
                    number,
                    title,
                    customer,
                    status,
                    priority,
                    start,
                    assignee,
                    sync,
                },
            )
    }

    fn order(s: &Spec) -> WorkOrder {
        let mut o = WorkOrder::blank(Uuid::now_v7());
        o.number = s.number;
        o.title = format!("{} {}", WORDS[s.title.0], WORDS[s.title.1]);
        o.customer.name = format!("{} AS", WORDS[s.customer]);
        o.site.address = "Storgata 1".into();
        o.status = s.status;
        o.priority = s.priority;
        o.version = 1;
        o.scheduled = s.start.map(|h| ScheduledWindow {
            start: noon() + Duration::hours(h),
            end: noon() + Duration::hours(h + 2),
            time_zone: "Europe/Oslo".into(),
        });
        o.assignee = s.assignee.map(|i| PEOPLE[i].to_owned());
        o
    }

    fn note(o: &WorkOrder) -> Mutation {
        let note = NoteEntry {
            id: Uuid::now_v7(),
            author: "tech1".into(),
            text: "seen".into(),
            at: noon(),
        };
        crate::test_support::update(o, vec![Op::AppendNote { note }])
    }

    fn store_with(specs: &[Spec]) -> (tempfile::TempDir, Store) {
        store_with_key(specs, &DbKey::generate().expect("key"))
    }

    fn store_with_key(specs: &[Spec], key: &DbKey) -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut store = Store::create(tmp.path(), key).expect("create");
        let orders: Vec<WorkOrder> = specs.iter().map(order).collect();
        store.put_server_orders(&orders, noon()).expect("seed");
        for (s, o) in specs.iter().zip(&orders) {
            if s.sync == 0 {
                continue;
            }
            store.record(note(o), noon()).expect("record");
            let id = o.id.to_string();
            let sql = match s.sync {
                2 => "UPDATE outbox SET state = 'sent' WHERE entity_id = ?1",
                3 => "UPDATE outbox SET state = 'failed' WHERE entity_id = ?1",
                4 => {
                    "INSERT INTO sync_records (entity, id, order_id, status, body, updated_at)
                      VALUES ('conflict', ?1 || '-c', ?1, 'open', '{}', '')"
                }
                _ => continue,
            };
            store.conn.execute(sql, [&id]).expect("sync state");
        }
        (tmp, store)
    }

    /// The rule the SQL must follow, written plainly over the full rows.
    fn reference(all: &[OrderRow], q: &OrderQuery) -> Vec<Uuid> {
        let closed = |o: &WorkOrder| matches!(o.status, Status::Completed | Status::Cancelled);
        let start = |o: &WorkOrder| o.scheduled.as_ref().map(|w| w.start);
        let terms = search_terms(&q.text);
        let mut hits: Vec<&OrderRow> = all
            .iter()
            .filter(|r| {
                let o = &r.order;
                let in_bucket = match q.bucket {
                    None => true,
                    Some(Bucket::Completed) => closed(o),
                    Some(Bucket::Today) => !closed(o) && start(o).is_none_or(|s| s < q.tomorrow),
                    Some(Bucket::Upcoming) => {
                        !closed(o) && start(o).is_some_and(|s| s >= q.tomorrow)
                    }
                };
                let hay = search_text(o);
                in_bucket
                    && q.status.is_none_or(|s| o.status == s)
                    && q.priority.is_none_or(|p| o.priority == p)
                    && q.sync.is_none_or(|s| r.sync_state == s)
                    && match q.assignee.as_deref() {
                        None => true,
                        Some("") => o.assignee.is_none(),
                        Some(a) => o.assignee.as_deref() == Some(a),
                    }
                    && terms.iter().all(|t| hay.contains(t.as_str()))
            })
            .collect();
        let desc = q.bucket == Some(Bucket::Completed);
        let named = number_searched(&q.text).and_then(|n| u64::try_from(n).ok());
        hits.sort_by(|a, b| {
            let (a, b) = (&a.order, &b.order);
            let first = |o: &WorkOrder| named.is_some() && o.number == named;
            let by_time = match (start(a), start(b)) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(x), Some(y)) if desc => y.cmp(&x),
                (Some(x), Some(y)) => x.cmp(&y),
            };
            // SQLite sorts NULL numbers first.
            let by_number = if desc {
                b.number.cmp(&a.number)
            } else {
                a.number.cmp(&b.number)
            };
            first(b)
                .cmp(&first(a))
                .then(by_time)
                .then(by_number)
                .then(a.id.to_string().cmp(&b.id.to_string()))
        });
        hits.into_iter()
            .skip(q.offset)
            .take(q.limit)
            .map(|r| r.order.id)
            .collect()
    }

    fn query() -> impl Strategy<Value = OrderQuery> {
        (
            proptest::sample::select(vec![
                "",
                "pump",
                "ærø",
                "PUMP nord",
                "#1",
                "tech2",
                "in progress",
                "zzz",
            ]),
            proptest::option::of(proptest::sample::select(vec![
                Bucket::Today,
                Bucket::Upcoming,
                Bucket::Completed,
            ])),
            proptest::option::of(proptest::sample::select(Status::ALL.to_vec())),
            proptest::option::of(proptest::sample::select(vec![
                Priority::High,
                Priority::Low,
            ])),
            proptest::option::of(proptest::sample::select(vec![
                SyncState::Saved,
                SyncState::Syncing,
                SyncState::Synced,
                SyncState::Failed,
                SyncState::Conflict,
            ])),
            proptest::option::of(proptest::sample::select(vec!["", "tech1", "disp1"])),
            0usize..4,
            1usize..8,
        )
            .prop_map(
                |(text, bucket, status, priority, sync, assignee, offset, limit)| OrderQuery {
                    text: text.to_owned(),
                    bucket,
                    tomorrow: noon() + Duration::hours(12),
                    status,
                    priority,
                    sync,
                    assignee: assignee.map(str::to_owned),
                    offset,
                    limit,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Whatever the orders and the query, a page is exactly the reference rule's
        /// slice, the total its length, and the tab counts those of the full list.
        #[test]
        fn a_page_is_what_the_plain_rule_gives(
            specs in proptest::collection::vec(spec(), 0..40),
            queries in proptest::collection::vec(query(), 1..12),
        ) {
            let (_tmp, store) = store_with(&specs);
            let all = store.orders().expect("all");
            for q in &queries {
                let page = store.order_page(q).expect("page");
                let got: Vec<Uuid> = page.rows.iter().map(|r| r.order.id).collect();
                prop_assert_eq!(&got, &reference(&all, q), "query {:?}", q);
                let everything = OrderQuery { offset: 0, limit: usize::MAX, ..q.clone() };
                prop_assert_eq!(page.total, reference(&all, &everything).len());
                prop_assert!(!page.total_capped, "fewer than TOTAL_COUNTED orders: counted all");
                let count = |b| reference(&all, &OrderQuery {
                    bucket: Some(b), ..OrderQuery::all(q.tomorrow, usize::MAX)
                }).len();
                prop_assert_eq!(page.counts, BucketCounts {
                    today: count(Bucket::Today),
                    upcoming: count(Bucket::Upcoming),
                    completed: count(Bucket::Completed),
                });
                for (row, full) in page.rows.iter().zip(all.iter().filter(|r| got.contains(&r.order.id))) {
                    prop_assert!(got.contains(&full.order.id));
                    prop_assert_eq!(row.sync_state, all.iter().find(|r| r.order.id == row.order.id).map(|r| r.sync_state).unwrap_or(SyncState::Synced));
                }
            }
        }
    }

    #[test]
    fn an_edit_that_renames_an_order_is_found_under_its_new_name_only() {
        let spec = Spec {
            number: Some(7),
            title: (0, 1),
            customer: 4,
            status: Status::Scheduled,
            priority: Priority::Normal,
            start: None,
            assignee: None,
            sync: 0,
        };
        let (_tmp, mut store) = store_with(&[spec]);
        let o = store.orders().expect("all").remove(0).order;
        let find = |store: &Store, text: &str| {
            let q = OrderQuery {
                text: text.into(),
                ..OrderQuery::all(noon(), 10)
            };
            store.order_page(&q).expect("page").total
        };
        assert_eq!(find(&store, "pump"), 1);
        let mut m = note(&o);
        m.ops = vec![Op::Set(SetOp::Title("Heat exchanger".into()))];
        store.record(m, noon()).expect("rename");
        assert_eq!(find(&store, "pump"), 0);
        assert_eq!(find(&store, "EXCHANGER #7"), 1);
        assert_eq!(find(&store, "nord as"), 1, "the customer still matches");
    }

    /// The tab counts and assignees are kept between keystrokes, but never outlive a
    /// change: one made on this connection, one made through another connection to the
    /// same database, or a new day line.
    #[test]
    fn tab_counts_and_assignees_follow_every_change() {
        let spec = |start: Option<i64>, assignee: Option<usize>| Spec {
            number: Some(1),
            title: (0, 1),
            customer: 0,
            status: Status::Scheduled,
            priority: Priority::Normal,
            start,
            assignee,
            sync: 0,
        };
        let key = DbKey::generate().expect("key");
        let (tmp, mut store) = store_with_key(&[spec(Some(1), Some(0)), spec(Some(2), None)], &key);
        let q = OrderQuery {
            text: "pump".into(),
            bucket: Some(Bucket::Today),
            ..OrderQuery::all(noon() + Duration::hours(12), 10)
        };
        let counts = |today, upcoming| BucketCounts {
            today,
            upcoming,
            completed: 0,
        };
        let page = store.order_page(&q).expect("page");
        assert_eq!(page.counts, counts(2, 0));
        assert_eq!(page.assignees, vec!["tech1".to_owned()]);
        // The same question again is answered from the cache, with the same figures.
        assert_eq!(store.order_page(&q).expect("page").counts, counts(2, 0));

        // This connection moves one order to tomorrow and assigns the other.
        let all = store.orders().expect("all");
        let (first, second) = (&all[0].order, &all[1].order);
        let later = ScheduledWindow {
            start: noon() + Duration::hours(30),
            end: noon() + Duration::hours(31),
            time_zone: "Europe/Oslo".into(),
        };
        store
            .record(
                crate::test_support::update(first, vec![Op::Set(SetOp::Scheduled(Some(later)))]),
                noon(),
            )
            .expect("move");
        let page = store.order_page(&q).expect("page");
        assert_eq!(page.counts, counts(1, 1));
        store
            .record(
                crate::test_support::update(
                    second,
                    vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
                ),
                noon(),
            )
            .expect("assign");
        let page = store.order_page(&q).expect("page");
        assert_eq!(page.assignees, vec!["tech1".to_owned(), "tech2".to_owned()]);

        // Another connection (the sync engine's, say) adds an order for today.
        let mut other = Store::open(tmp.path(), &key).expect("second connection");
        let mut extra = order(&spec(Some(3), Some(2)));
        extra.number = Some(9);
        other
            .put_server_orders(&[extra], noon())
            .expect("insert elsewhere");
        let page = store.order_page(&q).expect("page");
        assert_eq!(page.counts, counts(2, 1));
        assert_eq!(page.assignees.len(), 3);

        // A new day line is a new question.
        let next_day = OrderQuery {
            tomorrow: noon() + Duration::hours(36),
            ..q.clone()
        };
        assert_eq!(
            store.order_page(&next_day).expect("page").counts,
            counts(3, 0)
        );
    }

    #[test]
    fn searching_hash_122_or_122_lists_order_122_first() {
        // Orders 1122, 1220 and 3122 also hold "122", scheduled earlier than 122.
        let spec = |number: u64, start: i64| Spec {
            number: Some(number),
            title: (0, 1),
            customer: 0,
            status: Status::Scheduled,
            priority: Priority::Normal,
            start: Some(start),
            assignee: None,
            sync: 0,
        };
        let specs = [
            spec(1122, -5),
            spec(1220, -4),
            spec(122, 10),
            spec(3122, -3),
            spec(7, -6),
        ];
        let (_tmp, store) = store_with(&specs);
        for text in ["#122", "122", " #122 "] {
            let q = OrderQuery {
                text: text.into(),
                ..OrderQuery::all(noon(), 50)
            };
            let numbers: Vec<Option<u64>> = store
                .order_page(&q)
                .expect("page")
                .rows
                .iter()
                .map(|r| r.order.number)
                .collect();
            assert_eq!(
                numbers,
                [Some(122), Some(1122), Some(1220), Some(3122)],
                "searching {text:?}"
            );
        }
    }

    /// `n` scheduled orders numbered from 0, alike but for their time.
    fn scheduled(n: usize) -> Vec<Spec> {
        (0..n as u64)
            .map(|i| Spec {
                number: Some(i),
                title: (0, 0),
                customer: 0,
                status: Status::Scheduled,
                priority: Priority::Normal,
                start: Some(i as i64 % 50),
                assignee: None,
                sync: 0,
            })
            .collect()
    }

    #[test]
    fn a_page_never_holds_more_than_the_maximum_and_the_total_counts_all() {
        let (_tmp, store) = store_with(&scheduled(PAGE_MAX + 1));
        let page = store
            .order_page(&OrderQuery::all(noon(), usize::MAX))
            .expect("page");
        assert_eq!(page.rows.len(), PAGE_MAX);
        assert_eq!(page.total, PAGE_MAX + 1);
    }

    #[test]
    fn the_total_stops_counting_past_the_counted_matches_and_says_so() {
        let (_tmp, store) = store_with(&scheduled(TOTAL_COUNTED + 2));
        let at = |offset: usize| {
            let page = store
                .order_page(&OrderQuery {
                    offset,
                    ..OrderQuery::all(noon(), 25)
                })
                .expect("page");
            (page.rows.len(), page.total, page.total_capped)
        };
        assert_eq!(at(0), (25, TOTAL_COUNTED, true), "more than counted");
        assert_eq!(at(1), (25, TOTAL_COUNTED + 1, true));
        assert_eq!(
            at(2),
            (25, TOTAL_COUNTED + 2, false),
            "exactly TOTAL_COUNTED left past the offset: counted all"
        );
        assert_eq!(at(TOTAL_COUNTED + 1), (1, TOTAL_COUNTED + 2, false));
        assert_eq!(
            at(TOTAL_COUNTED + 5),
            (0, TOTAL_COUNTED + 2, false),
            "past the end"
        );
        let none = store
            .order_page(&OrderQuery {
                text: "zzz-no-match".into(),
                ..OrderQuery::all(noon(), 25)
            })
            .expect("page");
        assert_eq!(
            (none.rows.len(), none.total, none.total_capped),
            (0, 0, false)
        );
    }

    /// The dispatcher's list and the technician's open tabs walk the list index in its
    /// order: no sort of every match (issue 25 item 2: the sort made a keystroke grow
    /// worse than linearly with the orders on the device).
    #[test]
    fn the_list_walks_its_index_in_order_without_sorting() {
        let (_tmp, store) = store_with(&[]);
        let queries = [
            OrderQuery::all(noon(), 25),
            OrderQuery {
                text: "boiler nord".into(),
                assignee: Some("tech1".into()),
                status: Some(Status::Scheduled),
                ..OrderQuery::all(noon(), 25)
            },
            OrderQuery {
                bucket: Some(Bucket::Today),
                ..OrderQuery::all(noon(), 25)
            },
            OrderQuery {
                bucket: Some(Bucket::Upcoming),
                sync: Some(SyncState::Saved),
                ..OrderQuery::all(noon(), 25)
            },
        ];
        for q in queries {
            let walk = page_walk(&q, 1001);
            let plan: Vec<String> = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", walk.sql))
                .expect("plan")
                .query_map(rusqlite::params_from_iter(walk.values.iter()), |r| {
                    r.get::<_, String>(3)
                })
                .expect("plan rows")
                .collect::<Result<_, _>>()
                .expect("plan");
            assert!(
                plan.iter()
                    .any(|s| s.contains("USING COVERING INDEX work_orders_list")),
                "{q:?}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|s| s.contains("TEMP B-TREE")),
                "{q:?} sorts: {plan:?}"
            );
        }
    }

    #[test]
    fn migration_4_fills_the_search_column_of_stored_orders_in_unicode_lower_case() {
        let tmp = tempfile::tempdir().expect("tmp");
        let key = DbKey::generate().expect("key");
        {
            let conn = Store::create_at_version_for_tests(tmp.path(), &key, 3).expect("v3");
            conn.execute_batch(
                "INSERT INTO work_orders (id, title, status, priority, body, updated_at)
                 VALUES ('018f0000-0000-7000-8000-000000000001', 'ÆRØ PUMP', 'scheduled', 'normal',
                         '{\"id\":\"018f0000-0000-7000-8000-000000000001\",\"title\":\"ÆRØ PUMP\",\"priority\":\"normal\",\"status\":\"scheduled\",\"number\":1042}',
                         '2026-01-01T00:00:00Z');",
            )
            .expect("fixture");
        }
        let store = Store::open(tmp.path(), &key).expect("open migrates");
        let q = OrderQuery {
            text: "ærø #1042".into(),
            ..OrderQuery::all(noon(), 10)
        };
        let page = store.order_page(&q).expect("page");
        assert_eq!(page.total, 1);
        assert_eq!(page.rows[0].order.title, "ÆRØ PUMP");
    }
}
