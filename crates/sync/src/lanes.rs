//! The order in which the outbox is pushed: lanes.
//!
//! An order with a completion goes first (with everything queued before it on that
//! order), then orders with other edits, then orders whose changes only add photos.
//! Within an order, mutations keep their queue order, each written against the one
//! before. Which rows are eligible, batch sizes and retry times are not decided here:
//! the pass does that (`pass.rs`).

use std::collections::HashMap;

/// Order the eligible rows by lane, keeping each order's own mutations in sequence:
/// orders with a completion first (the completion travels with everything before it
/// on that order), then other edits, then orders whose changes only add photos.
pub fn in_lanes(rows: Vec<outpost_store::OutboxRow>) -> Vec<outpost_store::OutboxRow> {
    use outpost_protocol::mutation::ListItem;
    use outpost_protocol::{MutationKind, Op};
    let mut groups: Vec<(u8, i64, Vec<outpost_store::OutboxRow>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in rows {
        match index.get(&row.entity_id) {
            Some(&i) => groups[i].2.push(row),
            None => {
                index.insert(row.entity_id.clone(), groups.len());
                groups.push((1, row.seq, vec![row]));
            }
        }
    }
    for g in &mut groups {
        let completes =
            g.2.iter()
                .any(|r| r.mutation.kind == MutationKind::Complete);
        let only_photos = g.2.iter().all(|r| {
            r.mutation.kind == MutationKind::Update
                && r.mutation
                    .ops
                    .iter()
                    .all(|op| matches!(op, Op::Add(ListItem::Photos(_))))
        });
        g.0 = if completes {
            0
        } else if only_photos {
            2
        } else {
            1
        };
    }
    groups.sort_by_key(|g| (g.0, g.1));
    groups.into_iter().flat_map(|g| g.2).collect()
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use outpost_protocol::mutation::{EntityKind, ListItem};
    use outpost_protocol::{Mutation, MutationKind, Op, PhotoRef, SetOp, FORMAT_VERSION};

    fn row(seq: i64, entity: u128, kind: MutationKind, ops: Vec<Op>) -> outpost_store::OutboxRow {
        let m = Mutation {
            mutation_id: uuid::Uuid::from_u128(seq as u128),
            device_id: uuid::Uuid::nil(),
            entity: EntityKind::WorkOrder,
            entity_id: uuid::Uuid::from_u128(entity),
            kind,
            base_version: 1,
            format: FORMAT_VERSION,
            device_time: Utc::now(),
            ops,
            base_epoch: None,
            reason: None,
            seen: Vec::new(),
        };
        outpost_store::OutboxRow {
            seq,
            mutation_id: m.mutation_id.to_string(),
            entity: "work_order".into(),
            entity_id: m.entity_id.to_string(),
            kind: kind.as_str().into(),
            base_version: 1,
            state: outpost_store::OutboxState::Pending,
            attempts: 0,
            created_at: String::new(),
            next_attempt_at: None,
            last_error: None,
            body: serde_json::to_string(&m).unwrap_or_default(),
            mutation: m,
        }
    }

    #[test]
    fn completions_go_first_other_photos_last_and_each_order_keeps_its_sequence() {
        let photo = || {
            vec![Op::Add(ListItem::Photos(PhotoRef {
                hash: "a".repeat(64),
                caption: String::new(),
                media_type: "image/jpeg".into(),
            }))]
        };
        let title = || vec![Op::Set(SetOp::Title("t".into()))];
        let rows = vec![
            row(1, 10, MutationKind::Update, photo()),
            row(2, 20, MutationKind::Update, title()),
            row(3, 30, MutationKind::Update, title()),
            row(4, 30, MutationKind::Complete, title()),
            row(5, 40, MutationKind::Update, title()),
        ];
        let order: Vec<i64> = in_lanes(rows).iter().map(|r| r.seq).collect();
        assert_eq!(order, [3, 4, 2, 5, 1]);
    }
}
