//! The outbox: recorded user actions waiting for the server, in order.
//!
//! A row is `pending` until first sent; only pending rows coalesce (with the latest row
//! of the same entity, so order is kept). Sending seals a row: from then on its body is
//! frozen (a trigger in the schema enforces it) and a retry resends it byte for byte.

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

/// Append `m`, or fold it into the entity's latest row if that row is still unsent and
/// the two may coalesce. Returns the mutation id that carries the change.
pub(crate) fn enqueue(
    tx: &Transaction<'_>,
    m: Mutation,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let latest: Option<(i64, String, String)> = tx
        .query_row(
            "SELECT seq, state, body FROM outbox WHERE entity_id = ?1 ORDER BY seq DESC LIMIT 1",
            [m.entity_id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((seq, state, body)) = latest {
        if state == "pending" {
            let mut earlier: Mutation = serde_json::from_str(&body)?;
            if earlier.can_coalesce_with(&m) {
                earlier.coalesce(m);
                let body = String::from_utf8(earlier.to_body()?)
                    .map_err(|e| StoreError::Decode(e.to_string()))?;
                tx.execute(
                    "UPDATE outbox SET body = ?2 WHERE seq = ?1 AND state = 'pending'",
                    params![seq, body],
                )?;
                return Ok(earlier.mutation_id.to_string());
            }
        }
    }
    let body = String::from_utf8(m.to_body()?).map_err(|e| StoreError::Decode(e.to_string()))?;
    tx.execute(
        "INSERT INTO outbox (mutation_id, device_id, entity, entity_id, kind, base_version,
                             body, created_at, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')",
        params![
            m.mutation_id.to_string(),
            m.device_id.to_string(),
            m.entity.as_str(),
            m.entity_id.to_string(),
            m.kind.as_str(),
            m.base_version as i64,
            body,
            now.to_rfc3339(),
        ],
    )?;
    Ok(m.mutation_id.to_string())
}

impl Store {
    /// Every outbox row not yet acknowledged, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, mutation_id, entity, entity_id, kind, base_version, state, attempts,
                    created_at, next_attempt_at, last_error, body
             FROM outbox ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let state: String = r.get(6)?;
            let body: String = r.get(11)?;
            out.push(OutboxRow {
                seq: r.get(0)?,
                mutation_id: r.get(1)?,
                entity: r.get(2)?,
                entity_id: r.get(3)?,
                kind: r.get(4)?,
                base_version: r.get(5)?,
                state: OutboxState::parse(&state)?,
                attempts: r.get(7)?,
                created_at: r.get(8)?,
                next_attempt_at: r.get(9)?,
                last_error: r.get(10)?,
                mutation: serde_json::from_str(&body)?,
                body,
            });
        }
        Ok(out)
    }

    /// Seal rows as sent (the sync engine calls this before the request leaves). From
    /// here on their bodies never change; later edits make new rows.
    pub fn mark_sent(&mut self, mutation_ids: &[String]) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let mut stmt = tx.prepare(
                "UPDATE outbox SET state = CASE WHEN state = 'pending' THEN 'sent' ELSE state END,
                        attempts = attempts + 1, next_attempt_at = NULL, last_error = NULL
                 WHERE mutation_id = ?1",
            )?;
            for id in mutation_ids {
                stmt.execute([id])?;
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Number of rows the server has not acknowledged (any state).
    pub fn outbox_len(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
        Ok(n as usize)
    }
}
