//! The outbox: recorded user actions waiting for the server, in order.
//!
//! A row is `pending` until first sent; only pending rows coalesce (with the latest row
//! of the same entity, so order is kept). Sending seals a row: from then on its body is
//! frozen (a trigger in the schema enforces it) and a retry resends it byte for byte.
//!
//! Access paths: `seq` (the sending order), `outbox_by_entity` (an order's own rows:
//! coalescing, sync state, rebase) and, for sealed rows only, the unique index
//! `outbox_sealed_by_mutation_id` (acknowledgements and failed syncs, which concern
//! mutations the server has seen; schema 5). Appending a row for a user action
//! therefore enters two B-trees, not three: on SQLCipher each page a transaction dirties
//! is encrypted and authenticated at commit, so that is one page fewer per action. A row
//! enters the mutation-id index when it is sealed ([`Store::mark_sent`], in the sending
//! transaction), and a pending row's id is checked against its order's rows when it is
//! recorded, so an id is never queued twice. Lookups by mutation id of rows that may
//! still be pending ([`Store::mark_sent`], `defer_push`) read the outbox once per call;
//! the outbox holds unacknowledged work only, and the push path reads it whole anyway.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use outpost_protocol::Mutation;
use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;

use crate::db::Store;
use crate::error::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    Pending,
    Sent,
    Failed,
}

impl OutboxState {
    fn parse(s: &str) -> Result<OutboxState, StoreError> {
        match s {
            "pending" => Ok(OutboxState::Pending),
            "sent" => Ok(OutboxState::Sent),
            "failed" => Ok(OutboxState::Failed),
            other => Err(StoreError::Decode(format!(
                "unknown outbox state {other:?}"
            ))),
        }
    }
}

/// One outbox row, as `outpost outbox list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxRow {
    pub seq: i64,
    pub mutation_id: String,
    pub entity: String,
    pub entity_id: String,
    pub kind: String,
    pub base_version: i64,
    pub state: OutboxState,
    pub attempts: i64,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    /// The exact bytes that are (or will be) sent.
    #[serde(skip)]
    pub body: String,
    pub mutation: Mutation,
}

/// Refuse a mutation whose id is already queued for its entity (the same action
/// recorded twice). Pending rows are not in the mutation-id index, so the check goes
/// through the entity's own rows (`outbox_by_entity`); sealed rows are also covered by
/// the unique index. A mutation id belongs to one entity, so this is the whole check.
pub(crate) fn ensure_new_mutation_id(tx: &Transaction<'_>, m: &Mutation) -> Result<(), StoreError> {
    let id = m.mutation_id.to_string();
    let queued: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE entity_id = ?1 AND mutation_id = ?2)",
        )?
        .query_row(params![m.entity_id.to_string(), id], |r| r.get(0))?;
    if queued {
        return Err(StoreError::DuplicateMutation(id));
    }
    Ok(())
}

/// Append `m`, or fold it into the entity's latest row if that row is still unsent and
/// the two may coalesce. Returns the mutation id that carries the change.
pub(crate) fn enqueue(
    tx: &Transaction<'_>,
    m: Mutation,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    ensure_new_mutation_id(tx, &m)?;
    let latest: Option<(i64, String, String)> = tx
        .prepare_cached(
            "SELECT seq, state, body FROM outbox WHERE entity_id = ?1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([m.entity_id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    if let Some((seq, state, body)) = latest {
        if state == "pending" {
            let mut earlier: Mutation = serde_json::from_str(&body)?;
            if earlier.can_coalesce_with(&m) {
                earlier.coalesce(m);
                let body = String::from_utf8(earlier.to_body()?)
                    .map_err(|e| StoreError::Decode(e.to_string()))?;
                tx.prepare_cached(
                    "UPDATE outbox SET body = ?2 WHERE seq = ?1 AND state = 'pending'",
                )?
                .execute(params![seq, body])?;
                return Ok(earlier.mutation_id.to_string());
            }
        }
    }
    let body = String::from_utf8(m.to_body()?).map_err(|e| StoreError::Decode(e.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO outbox (mutation_id, device_id, entity, entity_id, kind, base_version,
                             body, created_at, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')",
    )?
    .execute(params![
        m.mutation_id.to_string(),
        m.device_id.to_string(),
        m.entity.as_str(),
        m.entity_id.to_string(),
        m.kind.as_str(),
        m.base_version as i64,
        body,
        now.to_rfc3339(),
    ])?;
    Ok(m.mutation_id.to_string())
}

/// Outbox rows matching `filter` (an SQL condition over `outbox`), in `seq` order.
fn read_rows(
    conn: &rusqlite::Connection,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<OutboxRow>, StoreError> {
    read_rows_reusing(conn, filter, params, &mut HashMap::new())
}

/// [`read_rows`], taking each row's decoded mutation from `known` (by mutation id)
/// when the body read is the one it was decoded from: decoding is most of the cost of
/// reading a row back, and a row read a moment ago rarely changed.
fn read_rows_reusing(
    conn: &rusqlite::Connection,
    filter: &str,
    params: &[&dyn rusqlite::ToSql],
    known: &mut HashMap<String, OutboxRow>,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq, mutation_id, entity, entity_id, kind, base_version, state, attempts,
                created_at, next_attempt_at, last_error, body
         FROM outbox WHERE {filter} ORDER BY seq"
    ))?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let state: String = r.get(6)?;
        let body: String = r.get(11)?;
        let mutation_id: String = r.get(1)?;
        let mutation = match known.remove(&mutation_id) {
            Some(row) if row.body == body => row.mutation,
            _ => serde_json::from_str(&body)?,
        };
        out.push(OutboxRow {
            seq: r.get(0)?,
            mutation_id,
            entity: r.get(2)?,
            entity_id: r.get(3)?,
            kind: r.get(4)?,
            base_version: r.get(5)?,
            state: OutboxState::parse(&state)?,
            attempts: r.get(7)?,
            created_at: r.get(8)?,
            next_attempt_at: r.get(9)?,
            last_error: r.get(10)?,
            mutation,
            body,
        });
    }
    Ok(out)
}

impl Store {
    /// Every outbox row not yet acknowledged, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        read_rows(&self.conn, "1", &[])
    }

    /// Seal rows as sent (the sync engine calls this before the request leaves) and
    /// read them back, in the order of `mutation_ids`, in the same transaction: the
    /// request carries exactly these bodies. From here on they never change; later edits
    /// make new rows (an edit committed after the batch was chosen and before this call
    /// coalesced into the row, and is in the body returned). Sealing enters the rows in
    /// the mutation-id index; an id already sealed on another row fails the whole call
    /// (nothing is marked). Ids no longer in the outbox are left out of the answer.
    pub fn mark_sent(&mut self, mutation_ids: &[String]) -> Result<Vec<OutboxRow>, StoreError> {
        self.seal(mutation_ids, HashMap::new())
    }

    /// [`Store::mark_sent`] for rows the caller read from the outbox: their decoded
    /// mutations are reused where the body sealed is the body they were read with.
    pub fn mark_rows_sent(&mut self, rows: Vec<OutboxRow>) -> Result<Vec<OutboxRow>, StoreError> {
        let ids: Vec<String> = rows.iter().map(|r| r.mutation_id.clone()).collect();
        let known = rows
            .into_iter()
            .map(|r| (r.mutation_id.clone(), r))
            .collect();
        self.seal(&ids, known)
    }

    fn seal(
        &mut self,
        mutation_ids: &[String],
        mut known: HashMap<String, OutboxRow>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let ids = serde_json::to_string(mutation_ids)?;
        self.write(|tx, _| {
            // The rows may be pending (not in the mutation-id index yet): one pass over
            // the outbox for the whole batch.
            tx.prepare_cached(
                "UPDATE outbox SET state = CASE WHEN state = 'pending' THEN 'sent' ELSE state END,
                        attempts = attempts + 1, next_attempt_at = NULL, last_error = NULL
                 WHERE mutation_id IN (SELECT value FROM json_each(?1))",
            )?
            .execute([&ids])?;
            let mut sealed = read_rows_reusing(
                tx,
                "mutation_id IN (SELECT value FROM json_each(?1)) AND state <> 'pending'",
                &[&ids],
                &mut known,
            )?;
            let place: HashMap<&str, usize> = mutation_ids
                .iter()
                .enumerate()
                .map(|(i, m)| (m.as_str(), i))
                .collect();
            sealed.sort_by_key(|r| place.get(r.mutation_id.as_str()).copied());
            Ok::<_, StoreError>(sealed)
        })
    }

    /// Return rows sealed by [`Store::mark_sent`] to pending when the request that was to
    /// carry them was never made (the pass failed before it, uploading their evidence):
    /// the server has not seen their mutation ids, so they may still take later edits,
    /// and the order shows as saved on this device rather than syncing. Only rows in the
    /// `sent` state change.
    pub fn unseal_unsent(&mut self, mutation_ids: &[String]) -> Result<(), StoreError> {
        if mutation_ids.is_empty() {
            return Ok(());
        }
        let ids = serde_json::to_string(mutation_ids)?;
        self.write(|tx, _| {
            tx.prepare_cached(
                "UPDATE outbox SET state = 'pending'
                 WHERE mutation_id IN (SELECT value FROM json_each(?1)) AND state = 'sent'",
            )?
            .execute([&ids])?;
            Ok::<_, StoreError>(())
        })
    }

    /// Number of rows the server has not acknowledged (any state).
    pub fn outbox_len(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM outbox")?
            .query_row([], |r| r.get(0))?;
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DbKey;
    use outpost_protocol::{Op, SetOp, WorkOrder};
    use uuid::Uuid;

    fn store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = Store::create(tmp.path(), &DbKey::generate().expect("key")).expect("create");
        (tmp, store)
    }

    fn seeded_order(store: &mut Store) -> WorkOrder {
        let mut order = WorkOrder::blank(Uuid::now_v7());
        order.title = "Pump".into();
        order.version = 1;
        store
            .put_server_orders(&[order.clone()], Utc::now())
            .expect("seed");
        order
    }

    fn edit(order: &WorkOrder, title: &str) -> Mutation {
        crate::test_support::update(order, vec![Op::Set(SetOp::Title(title.into()))])
    }

    /// Entries of the sealed-row index (read through the index itself).
    fn sealed_index_entries(store: &Store) -> i64 {
        store
            .conn
            .query_row(
                "SELECT count(*) FROM outbox INDEXED BY outbox_sealed_by_mutation_id
                 WHERE state <> 'pending'",
                [],
                |r| r.get(0),
            )
            .expect("count")
    }

    #[test]
    fn a_recorded_action_enters_the_mutation_id_index_only_when_sealed() {
        let (_tmp, mut store) = store();
        let order = seeded_order(&mut store);
        store.record(edit(&order, "A"), Utc::now()).expect("record");
        assert_eq!(store.outbox_len().expect("len"), 1);
        assert_eq!(
            sealed_index_entries(&store),
            0,
            "a pending row is not indexed"
        );
        let ids: Vec<String> = store
            .outbox()
            .expect("outbox")
            .into_iter()
            .map(|r| r.mutation_id)
            .collect();
        store.mark_sent(&ids).expect("seal");
        assert_eq!(sealed_index_entries(&store), 1, "sealing indexes the row");
        let row = &store.outbox().expect("outbox")[0];
        assert_eq!(row.state, OutboxState::Sent);
        assert_eq!(row.attempts, 1);
        // A resend of a sealed row counts another attempt and stays indexed once.
        store.mark_sent(&ids).expect("resend");
        assert_eq!(store.outbox().expect("outbox")[0].attempts, 2);
        assert_eq!(sealed_index_entries(&store), 1);
        assert!(store.check().expect("check").sound);
    }

    #[test]
    fn the_same_mutation_recorded_twice_is_refused_and_writes_nothing() {
        let (_tmp, mut store) = store();
        let order = seeded_order(&mut store);
        let m = edit(&order, "Once");
        store.record(m.clone(), Utc::now()).expect("record");
        let body_before = store.outbox().expect("outbox")[0].body.clone();
        let title_before = store
            .order(&order.id.to_string())
            .expect("order")
            .order
            .title;

        // While the row is pending (it would otherwise coalesce with itself) ...
        let again = store.record(m.clone(), Utc::now()).expect_err("duplicate");
        assert!(
            matches!(&again, StoreError::DuplicateMutation(id) if *id == m.mutation_id.to_string()),
            "{again}"
        );
        assert_eq!(store.outbox().expect("outbox")[0].body, body_before);
        assert_eq!(store.outbox_len().expect("len"), 1);
        assert_eq!(
            store
                .order(&order.id.to_string())
                .expect("order")
                .order
                .title,
            title_before
        );

        // ... and once it is sealed.
        store.mark_sent(&[m.mutation_id.to_string()]).expect("seal");
        let again = store.record(m, Utc::now()).expect_err("duplicate");
        assert!(matches!(again, StoreError::DuplicateMutation(_)), "{again}");
        assert_eq!(store.outbox_len().expect("len"), 1);
    }

    #[test]
    fn sealed_rows_keep_unique_mutation_ids_and_a_clash_marks_nothing() {
        let (_tmp, mut store) = store();
        let a = seeded_order(&mut store);
        let b = seeded_order(&mut store);
        let m = edit(&a, "A");
        store.record(m.clone(), Utc::now()).expect("record a");
        // The same id on another order's row: only a fabricated mutation does this.
        let mut clash = edit(&b, "B");
        clash.mutation_id = m.mutation_id;
        store
            .record(clash, Utc::now())
            .expect("pending rows are not indexed");
        let err = store
            .mark_sent(&[m.mutation_id.to_string()])
            .expect_err("two sealed rows with one id");
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        let rows = store.outbox().expect("outbox");
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter()
                .all(|r| r.state == OutboxState::Pending && r.attempts == 0),
            "nothing was marked: {rows:?}"
        );
    }
}
