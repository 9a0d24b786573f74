//! Rebase: the local row is the server's row with the device's unacknowledged work
//! re-applied on top.
//!
//! So a pull never clobbers an optimistic edit, and rebase never changes a mutation's
//! base version (the server judges each mutation against the version it was made on).
//! Left out on purpose: whether an op still applies is not this file's call; one that
//! no longer does is skipped here and decided by the server when the mutation arrives.

use chrono::{DateTime, Utc};
use outpost_protocol::apply::apply_op;
use outpost_protocol::{Mutation, WorkOrder};
use rusqlite::Transaction;

use crate::error::StoreError;
use crate::orders::put_synced_order;

/// The device's unacknowledged mutations of one entity, oldest first.
fn entity_mutations(
    tx: &rusqlite::Connection,
    entity_id: &str,
) -> Result<Vec<Mutation>, StoreError> {
    let mut stmt =
        tx.prepare_cached("SELECT body FROM outbox WHERE entity_id = ?1 ORDER BY seq")?;
    let bodies = stmt
        .query_map([entity_id], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    bodies
        .iter()
        .map(|b| serde_json::from_str(b).map_err(StoreError::from))
        .collect()
}

/// The server's row with the device's unacknowledged work applied on top. An op that
/// no longer applies (its checklist item was removed on the server) is skipped here;
/// the server decides its fate when the mutation arrives.
pub(crate) fn rebase(server_row: &WorkOrder, pending: &[Mutation]) -> WorkOrder {
    let mut local = server_row.clone();
    for m in pending {
        for op in &m.ops {
            let _ = apply_op(&mut local, op);
        }
        match m.kind {
            outpost_protocol::MutationKind::Complete => {
                local.status = outpost_protocol::Status::Completed;
            }
            outpost_protocol::MutationKind::Cancel => {
                local.status = outpost_protocol::Status::Cancelled;
            }
            _ => {}
        }
    }
    local.version = server_row.version;
    local.number = server_row.number.or(local.number);
    local
}

/// Store the server's row and the rebased local view, in one write of the row.
pub(super) fn put_server_row(
    tx: &Transaction<'_>,
    row: &WorkOrder,
    gen: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let pending = entity_mutations(tx, &row.id.to_string())?;
    put_synced_order(tx, &rebase(row, &pending), row, gen, now)
}

#[cfg(test)]
mod tests {
    use outpost_protocol::{Op, SetOp, WorkOrder};
    use uuid::Uuid;

    use super::rebase;
    use crate::test_support::update_at;

    #[test]
    fn rebase_puts_pending_work_on_the_servers_row_and_keeps_its_version() {
        let mut server = WorkOrder::blank(Uuid::now_v7());
        server.title = "Server title".into();
        server.description = "from the server".into();
        server.version = 7;
        server.number = Some(42);
        let pending = vec![update_at(
            server.id,
            3,
            vec![Op::Set(SetOp::Title("Mine".into()))],
        )];
        let local = rebase(&server, &pending);
        assert_eq!(local.title, "Mine", "the optimistic edit is not clobbered");
        assert_eq!(
            local.description, "from the server",
            "the server's change shows"
        );
        assert_eq!(local.version, 7);
        assert_eq!(local.number, Some(42));
        assert_eq!(
            pending[0].base_version, 3,
            "rebase never changes a base version"
        );
    }

    #[test]
    fn rebase_skips_an_op_that_no_longer_applies() {
        let server = WorkOrder::blank(Uuid::now_v7());
        let pending = vec![update_at(
            server.id,
            3,
            vec![
                Op::Set(SetOp::ChecklistDone {
                    item_id: "gone".into(),
                    done: true,
                }),
                Op::Set(SetOp::Title("still applied".into())),
            ],
        )];
        assert_eq!(rebase(&server, &pending).title, "still applied");
    }
}
