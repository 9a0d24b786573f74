//! Work orders on the device (inventory: `inventory.rs`), and the one way a user action is saved:
//! [`Store::record`], which validates, updates the row and appends the mutation to the
//! outbox in a single transaction.

use chrono::{DateTime, Utc};
use outpost_protocol::{apply_mutation, Mutation, WorkOrder};
use rusqlite::types::Value;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use crate::db::Store;
use crate::error::StoreError;
use crate::outbox;

/// Where an order stands between this device and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Changed on this device, not sent yet.
    Saved,
    /// Sent, waiting for the server's answer.
    Syncing,
    /// The server has everything this device did.
    Synced,
    /// The server refused a change; a person must retry, edit or discard it.
    Failed,
    /// The server kept a change for a person to decide.
    Conflict,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Saved => "saved",
            SyncState::Syncing => "syncing",
            SyncState::Synced => "synced",
            SyncState::Failed => "failed",
            SyncState::Conflict => "conflict",
        }
    }

    /// From the outbox states of the order's rows (a comma-separated list or NULL).
    fn from_outbox_states(states: Option<&str>) -> SyncState {
        let states = states.unwrap_or("");
        if states.contains("failed") {
            SyncState::Failed
        } else if states.contains("pending") {
            SyncState::Saved
        } else if states.contains("sent") {
            SyncState::Syncing
        } else {
            SyncState::Synced
        }
    }
}

/// A work order with its sync state, as lists and detail views show it.
#[derive(Debug, Clone, Serialize)]
pub struct OrderRow {
    #[serde(flatten)]
    pub order: WorkOrder,
    pub sync_state: SyncState,
    /// Set when the order left this device's scope (reassigned) while it had unsynced
    /// work: who holds it now. The order stays until a person decides.
    pub reassigned_to: Option<String>,
}

pub(crate) const ORDER_SELECT: &str = "SELECT o.body,
        (SELECT group_concat(state) FROM outbox b WHERE b.entity_id = o.id),
        (SELECT count(*) FROM sync_records r
          WHERE r.order_id = o.id AND r.entity = 'conflict' AND r.status = 'open'),
        o.left_scope_to
     FROM work_orders o";

pub(crate) type RawRow = (String, Option<String>, i64, Option<String>);

pub(crate) fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

pub(crate) fn decode_row((body, states, conflicts, left): RawRow) -> Result<OrderRow, StoreError> {
    let mut sync_state = SyncState::from_outbox_states(states.as_deref());
    if conflicts > 0 && sync_state != SyncState::Failed {
        sync_state = SyncState::Conflict;
    }
    Ok(OrderRow {
        order: serde_json::from_str(&body)?,
        sync_state,
        reassigned_to: left,
    })
}

pub(crate) fn get_order(
    tx: &rusqlite::Connection,
    id: &str,
) -> Result<Option<WorkOrder>, StoreError> {
    let body: Option<String> = tx
        .prepare_cached("SELECT body FROM work_orders WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    body.map(|b| serde_json::from_str(&b).map_err(StoreError::from))
        .transpose()
}

/// The columns of `work_orders` that mirror fields of the body (for lists, lookups and
/// the schedule index), in the order of [`MIRRORED_COLUMNS`].
const MIRRORED_COLUMNS: [&str; 7] = [
    "number",
    "title",
    "status",
    "priority",
    "assignee",
    "scheduled_start",
    "search_text",
];

fn mirrored_values(order: &WorkOrder) -> [Value; 7] {
    [
        order
            .number
            .map_or(Value::Null, |n| Value::Integer(n as i64)),
        Value::Text(order.title.clone()),
        Value::Text(order.status.as_str().to_owned()),
        Value::Text(order.priority.as_str().to_owned()),
        order.assignee.clone().map_or(Value::Null, Value::Text),
        order
            .scheduled
            .as_ref()
            .map_or(Value::Null, |w| Value::Text(w.start.to_rfc3339())),
        Value::Text(crate::list::search_text(order)),
    ]
}

/// An order's row as stored: the body as text and the mirrored columns.
struct StoredOrder {
    body: String,
    columns: [Value; 7],
}

fn get_stored_order(
    tx: &rusqlite::Connection,
    id: &str,
) -> Result<Option<StoredOrder>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT body, number, title, status, priority, assignee, scheduled_start,
                    search_text
             FROM work_orders WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(StoredOrder {
                body: r.get(0)?,
                columns: [
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ],
            })
        })
        .optional()?)
}

/// Write the local view of an order (the server base, if any, is left as it is).
pub(crate) fn put_local_order(
    tx: &Transaction<'_>,
    order: &WorkOrder,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(order)?;
    tx.prepare_cached(
        "INSERT INTO work_orders
            (id, number, title, status, priority, assignee, scheduled_start, search_text,
             body, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET
            number = excluded.number, title = excluded.title, status = excluded.status,
            priority = excluded.priority, assignee = excluded.assignee,
            scheduled_start = excluded.scheduled_start, search_text = excluded.search_text,
            body = excluded.body, updated_at = excluded.updated_at",
    )?
    .execute(rusqlite::params_from_iter(row_values(order, body, now)))?;
    Ok(())
}

/// A new row's first ten columns (id, the mirrored columns, body, updated_at), in the
/// order the inserts name them.
fn row_values(order: &WorkOrder, body: String, now: DateTime<Utc>) -> Vec<Value> {
    let mut values = vec![Value::Text(order.id.to_string())];
    values.extend(mirrored_values(order));
    values.extend([Value::Text(body), Value::Text(now.to_rfc3339())]);
    values
}

/// The server's part of an order's row: its last row (the rebase base) as JSON, that
/// row's version, and the scope generation that brought it.
struct ServerPart {
    body: String,
    version: i64,
    gen: i64,
}

/// Write the server's row of an order and the local view rebased on it in one write of
/// the row: a row with a long body spills onto overflow pages, and writing it twice (the
/// view, then the server's part) wrote and encrypted those pages twice.
pub(crate) fn put_synced_order(
    tx: &Transaction<'_>,
    local: &WorkOrder,
    server_row: &WorkOrder,
    gen: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let server = ServerPart {
        body: serde_json::to_string(server_row)?,
        version: server_row.version as i64,
        gen,
    };
    // Without pending work the view is the server's row: one serialisation serves both.
    let body = if local == server_row {
        server.body.clone()
    } else {
        serde_json::to_string(local)?
    };
    let id = local.id.to_string();
    if let Some(stored) = get_stored_order(tx, &id)? {
        return write_changed(tx, &stored, local, body, now, Some(server));
    }
    let mut values = row_values(local, body, now);
    values.extend([
        Value::Text(server.body),
        Value::Integer(server.version),
        Value::Integer(server.gen),
    ]);
    tx.prepare_cached(
        "INSERT INTO work_orders
            (id, number, title, status, priority, assignee, scheduled_start, search_text,
             body, updated_at, server_body, server_version, seen_gen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

/// Write an edited order over its stored row, setting only what changed. SQLite
/// rewrites an index entry whenever its column is assigned, even to the same value, so
/// assigning `status` and `scheduled_start` on every edit dirtied a page of the
/// schedule index each time; on SQLCipher every dirty page is encrypted and
/// authenticated again at commit. A row whose body and columns are unchanged is not
/// written at all.
fn update_local_order(
    tx: &Transaction<'_>,
    stored: &StoredOrder,
    order: &WorkOrder,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    write_changed(tx, stored, order, serde_json::to_string(order)?, now, None)
}

/// [`update_local_order`] with `order`'s body as serialised by the caller, and the
/// server's part of the row set in the same write when given (the row then always
/// changes: its generation is stamped).
fn write_changed(
    tx: &Transaction<'_>,
    stored: &StoredOrder,
    order: &WorkOrder,
    body: String,
    now: DateTime<Utc>,
    server: Option<ServerPart>,
) -> Result<(), StoreError> {
    let mut sql = String::from("UPDATE work_orders SET body = ?2, updated_at = ?3");
    let mut values = vec![
        Value::Text(order.id.to_string()),
        Value::Text(body),
        Value::Text(now.to_rfc3339()),
    ];
    for ((name, old), new) in MIRRORED_COLUMNS
        .iter()
        .zip(&stored.columns)
        .zip(mirrored_values(order))
    {
        if *old != new {
            values.push(new);
            sql.push_str(&format!(", {name} = ?{}", values.len()));
        }
    }
    match server {
        Some(server) => {
            let n = values.len();
            sql.push_str(&format!(
                ", server_body = ?{}, server_version = ?{}, seen_gen = ?{}, left_scope_to = NULL",
                n + 1,
                n + 2,
                n + 3
            ));
            values.extend([
                Value::Text(server.body),
                Value::Integer(server.version),
                Value::Integer(server.gen),
            ]);
        }
        None if values.len() == 3 && matches!(&values[1], Value::Text(b) if *b == stored.body) => {
            return Ok(());
        }
        None => {}
    }
    sql.push_str(" WHERE id = ?1");
    tx.prepare_cached(&sql)?
        .execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

impl Store {
    /// Save one user action: check it against the current order (the same rules the
    /// server runs), write the new local row and append the mutation to the outbox, all
    /// in one transaction. Invalid input returns field errors and writes nothing.
    pub fn record(&mut self, m: Mutation, now: DateTime<Utc>) -> Result<WorkOrder, StoreError> {
        self.write(|tx, _| {
            let stored = get_stored_order(tx, &m.entity_id.to_string())?;
            let before = stored
                .as_ref()
                .map(|s| serde_json::from_str::<WorkOrder>(&s.body))
                .transpose()?;
            let after = apply_mutation(before.as_ref(), &m)?;
            match &stored {
                Some(stored) => update_local_order(tx, stored, &after, now)?,
                None => put_local_order(tx, &after, now)?,
            }
            outbox::enqueue(tx, m, now)?;
            Ok(after)
        })
    }

    /// Store orders as the server has them (demo data, and later the pull): the row and
    /// its server base together. Orders with pending local work are not overwritten.
    pub fn put_server_orders(
        &mut self,
        orders: &[WorkOrder],
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.write(|tx, _| {
            let mut written = 0;
            for order in orders {
                let pending: i64 = tx
                    .prepare_cached("SELECT count(*) FROM outbox WHERE entity_id = ?1")?
                    .query_row([order.id.to_string()], |r| r.get(0))?;
                if pending > 0 {
                    continue;
                }
                put_local_order(tx, order, now)?;
                tx.prepare_cached(
                    "UPDATE work_orders SET server_body = body, server_version = ?2 WHERE id = ?1",
                )?
                .execute(params![order.id.to_string(), order.version as i64])?;
                written += 1;
            }
            Ok::<_, StoreError>(written)
        })
    }

    pub fn order(&self, id: &str) -> Result<OrderRow, StoreError> {
        let row = self
            .conn
            .query_row(&format!("{ORDER_SELECT} WHERE o.id = ?1"), [id], order_row)
            .optional()?
            .ok_or_else(|| StoreError::OrderNotFound(id.to_owned()))?;
        decode_row(row)
    }

    /// Find an order by its full id, a unique id prefix, or its number.
    pub fn resolve_order_id(&self, reference: &str) -> Result<String, StoreError> {
        let reference = reference.trim();
        if let Ok(number) = reference.trim_start_matches('#').parse::<i64>() {
            if let Some(id) = self
                .conn
                .prepare_cached("SELECT id FROM work_orders WHERE number = ?1")?
                .query_row([number], |r| r.get::<_, String>(0))
                .optional()?
            {
                return Ok(id);
            }
        }
        if reference.len() < 4 || !reference.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(StoreError::OrderNotFound(reference.to_owned()));
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM work_orders WHERE id >= ?1 AND id < ?1 || 'g' LIMIT 2",
        )?;
        let ids = stmt
            .query_map([reference.to_ascii_lowercase()], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        match ids.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(StoreError::OrderNotFound(reference.to_owned())),
        }
    }

    /// All orders, soonest first (unscheduled last), then by number.
    pub fn orders(&self) -> Result<Vec<OrderRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "{ORDER_SELECT} ORDER BY o.scheduled_start IS NULL, o.scheduled_start, o.number, o.id"
        ))?;
        let rows = stmt
            .query_map([], order_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(decode_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DbKey;
    use chrono::TimeZone;
    use outpost_protocol::{Op, Priority, ScheduledWindow, SetOp, Status};
    use uuid::Uuid;

    use crate::test_support::update as edit;

    fn stored(store: &Store, id: Uuid) -> (StoredOrder, String) {
        let row = get_stored_order(&store.conn, &id.to_string())
            .expect("read")
            .expect("row");
        let updated_at = store
            .conn
            .query_row(
                "SELECT updated_at FROM work_orders WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .expect("updated_at");
        (row, updated_at)
    }

    #[test]
    fn an_edit_keeps_the_mirrored_columns_and_indexes_in_step_with_the_body() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut store =
            Store::create(tmp.path(), &DbKey::generate().expect("key")).expect("create");
        let mut order = WorkOrder::blank(Uuid::now_v7());
        order.title = "Pump".into();
        order.version = 1;
        let t0 = Utc
            .with_ymd_and_hms(2026, 3, 1, 8, 0, 0)
            .single()
            .expect("time");
        store.put_server_orders(&[order.clone()], t0).expect("seed");

        let window = ScheduledWindow {
            start: Utc
                .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
                .single()
                .expect("time"),
            end: Utc
                .with_ymd_and_hms(2026, 3, 2, 11, 0, 0)
                .single()
                .expect("time"),
            time_zone: "Europe/Oslo".into(),
        };
        let edits = [
            vec![Op::Set(SetOp::Description("only the body".into()))],
            vec![
                Op::Set(SetOp::Status(Status::EnRoute)),
                Op::Set(SetOp::Scheduled(Some(window))),
            ],
            vec![
                Op::Set(SetOp::Title("Pump, north side".into())),
                Op::Set(SetOp::Priority(Priority::Urgent)),
                Op::Set(SetOp::Assignee(Some("tech2".into()))),
            ],
            vec![Op::Set(SetOp::Scheduled(None))],
        ];
        for (i, ops) in edits.into_iter().enumerate() {
            let now = t0 + chrono::Duration::minutes(i as i64 + 1);
            let after = store.record(edit(&order, ops), now).expect("record");
            let (row, updated_at) = stored(&store, order.id);
            assert_eq!(row.body, serde_json::to_string(&after).expect("json"));
            assert_eq!(row.columns, mirrored_values(&after), "edit {i}");
            assert_eq!(updated_at, now.to_rfc3339());
        }
        let report = store.check().expect("check");
        assert!(report.sound, "indexes agree with their rows: {report:?}");
        let listed = store.orders().expect("list");
        assert_eq!(listed[0].order.status, Status::EnRoute);
        assert_eq!(listed[0].order.title, "Pump, north side");

        // An edit that changes nothing leaves the row as it was (the mutation is still
        // recorded: the person did it).
        let (before, updated_before) = stored(&store, order.id);
        let late = t0 + chrono::Duration::hours(1);
        let title = Op::Set(SetOp::Title("Pump, north side".into()));
        store
            .record(edit(&order, vec![title]), late)
            .expect("record");
        let (after, updated_after) = stored(&store, order.id);
        assert_eq!(after.body, before.body);
        assert_eq!(updated_after, updated_before);
        assert_eq!(store.outbox_len().expect("outbox"), 1);
    }
}
