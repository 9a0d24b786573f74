//! Tests that cross the sync files: the outbox lookups by mutation id use the
//! sealed-row index, and every sync path (deferral, push answers, pulled
//! acknowledgements, a dispatcher's resolution, a discard) finds sealed rows by their
//! mutation id. Tests of one file's rules sit in that file.

use chrono::Utc;
use outpost_protocol::mutation::EntityKind;
use outpost_protocol::wire::{ChangeBody, MutationResult, PullResponse, PushOutcome, RecordStatus};
use outpost_protocol::{Mutation, Op, SetOp, WorkOrder};
use uuid::Uuid;

use super::{ACK_PULLED_MUTATION, CLEAR_RESOLVED_FAILED, SEALED_ROW_BY_MUTATION_ID};
use crate::db::Store;
use crate::test_support::update;

#[test]
fn lookups_by_mutation_id_use_the_sealed_row_index() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let key = crate::DbKey::generate().expect("key");
    let store = Store::create(tmp.path(), &key).expect("store");
    for sql in [
        SEALED_ROW_BY_MUTATION_ID,
        ACK_PULLED_MUTATION,
        CLEAR_RESOLVED_FAILED,
    ] {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
        let plan = stmt
            .query_map(["x"], |r| r.get::<_, String>(3))
            .expect("plan rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("plan");
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX outbox_sealed_by_mutation_id")),
            "{sql}: {plan:?}"
        );
    }
}

/// Every path that finds outbox rows by mutation id, after schema 5 took pending rows
/// out of the mutation-id index: deferral (pending or sealed rows), push answers,
/// pulled acknowledgements, a dispatcher's resolution and a discard.
#[test]
fn sealed_rows_are_found_by_mutation_id_on_every_sync_path() {
    use outpost_protocol::wire::{
        Applied, Change, ChangeEntity, ErrorCode, FailedSyncRecord, Rejection,
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let key = crate::DbKey::generate().expect("key");
    let mut store = Store::create(tmp.path(), &key).expect("store");
    let now = Utc::now();
    let orders: Vec<WorkOrder> = (0..5)
        .map(|i| {
            let mut o = WorkOrder::blank(Uuid::now_v7());
            o.title = format!("Order {i}");
            o.version = 3;
            o
        })
        .collect();
    store.put_server_orders(&orders, now).expect("seed");
    let edits: Vec<Mutation> = orders
        .iter()
        .map(|o| update(o, vec![Op::Set(SetOp::Description("edited".into()))]))
        .collect();
    for e in &edits {
        store.record(e.clone(), now).expect("record");
    }
    let id = |i: usize| edits[i].mutation_id.to_string();
    let state_of = |store: &Store, i: usize| {
        store
            .outbox()
            .expect("outbox")
            .into_iter()
            .find(|r| r.mutation_id == id(i))
            .map(|r| (r.state, r.next_attempt_at.is_some()))
    };

    // Orders 0..4 are sent; order 4's row stays pending.
    store
        .mark_sent(&[id(0), id(1), id(2), id(3)])
        .expect("seal");
    let later = now + chrono::Duration::minutes(5);
    store
        .defer_push(&[id(3), id(4)], later, "offline")
        .expect("defer");
    assert_eq!(state_of(&store, 3), Some((crate::OutboxState::Sent, true)));
    assert_eq!(
        state_of(&store, 4),
        Some((crate::OutboxState::Pending, true)),
        "a pending row is deferred too"
    );

    let mut acked = orders[0].clone();
    acked.version = 4;
    acked.description = "edited".into();
    let results = vec![
        MutationResult {
            mutation_id: edits[0].mutation_id,
            outcome: PushOutcome::Applied(Applied {
                entity: EntityKind::WorkOrder,
                entity_id: orders[0].id,
                version: 4,
                number: None,
                changed: true,
                order: Some(acked),
            }),
        },
        MutationResult {
            mutation_id: edits[1].mutation_id,
            outcome: PushOutcome::Rejected(Rejection {
                code: ErrorCode::ValidationFailed,
                message: "no".into(),
                field_errors: Vec::new(),
                failed_sync_id: None,
                resolution: None,
            }),
        },
        MutationResult {
            mutation_id: Uuid::now_v7(),
            outcome: PushOutcome::Rejected(Rejection {
                code: ErrorCode::ValidationFailed,
                message: "not ours".into(),
                field_errors: Vec::new(),
                failed_sync_id: None,
                resolution: None,
            }),
        },
    ];
    let summary = store.record_push_results(&results, now).expect("results");
    assert_eq!((summary.acknowledged, summary.rejected), (1, 1));
    assert_eq!(state_of(&store, 0), None, "applied: acknowledged");
    assert_eq!(
        state_of(&store, 1).map(|s| s.0),
        Some(crate::OutboxState::Failed)
    );
    assert_eq!(
        store
            .order(&orders[0].id.to_string())
            .expect("order")
            .order
            .version,
        4
    );

    // A pulled row naming order 2's sealed mutation acknowledges it (its push reply
    // was lost); a dispatcher's decision on order 1's failed sync clears it.
    let mut pulled = orders[2].clone();
    pulled.version = 4;
    let failed = FailedSyncRecord {
        id: Uuid::now_v7(),
        version: 2,
        status: RecordStatus::Resolved,
        order_id: orders[1].id,
        assignee: None,
        username: "tech1".into(),
        device_id: Uuid::nil(),
        received_at: now,
        device_time: None,
        code: ErrorCode::ValidationFailed,
        message: "no".into(),
        field_errors: Vec::new(),
        mutation: edits[1].clone(),
        resolution: None,
    };
    let page = PullResponse {
        changes: vec![
            Change {
                seq: 10,
                entity: ChangeEntity::WorkOrder,
                id: orders[2].id.to_string(),
                version: 4,
                mutation_ids: vec![edits[2].mutation_id],
                change: ChangeBody::WorkOrder(pulled),
            },
            Change {
                seq: 11,
                entity: ChangeEntity::FailedSync,
                id: failed.id.to_string(),
                version: 2,
                mutation_ids: Vec::new(),
                change: ChangeBody::FailedSync(failed),
            },
        ],
        cursor: "c1".into(),
        has_more: false,
        priming: None,
        server_time: now,
        epoch: None,
    };
    let s = store.apply_pull_page(&page, now).expect("pull");
    assert_eq!(s.acknowledged, 1);
    assert_eq!(state_of(&store, 2), None, "acknowledged by the pull");
    assert_eq!(state_of(&store, 1), None, "resolved by a dispatcher");

    // Order 3's row fails, then a person discards it.
    let rejected = vec![MutationResult {
        mutation_id: edits[3].mutation_id,
        outcome: PushOutcome::Rejected(Rejection {
            code: ErrorCode::ValidationFailed,
            message: "no".into(),
            field_errors: Vec::new(),
            failed_sync_id: None,
            resolution: None,
        }),
    }];
    store.record_push_results(&rejected, now).expect("results");
    assert_eq!(store.failed_syncs().expect("failed").len(), 1);
    store.discard_failed(&id(3), now).expect("discard");
    assert_eq!(state_of(&store, 3), None);

    let left: Vec<String> = store
        .outbox()
        .expect("outbox")
        .into_iter()
        .map(|r| r.mutation_id)
        .collect();
    assert_eq!(left, vec![id(4)], "only the unsent row is left");
    assert!(store.check().expect("check").sound);
}

/// The answer to a resent mutation that the server held (`duplicate` of
/// `applied_with_conflicts`) leaves a conflict record the device already pulled as it
/// is: a placeholder never replaces the full record, and a record a dispatcher
/// resolved never opens again.
#[test]
fn a_push_answer_never_overwrites_a_pulled_conflict_record() {
    use outpost_protocol::wire::{
        AppliedWithConflicts, Change, ChangeEntity, ConflictKind, ConflictRecord, Resolution,
        ResolutionOutcome,
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let key = crate::DbKey::generate().expect("key");
    let mut store = Store::create(tmp.path(), &key).expect("store");
    let now = Utc::now();
    let mut order = WorkOrder::blank(Uuid::now_v7());
    order.title = "Held".into();
    order.version = 2;
    store
        .put_server_orders(std::slice::from_ref(&order), now)
        .expect("seed");
    let edit = update(&order, vec![Op::Set(SetOp::Description("mine".into()))]);
    store.record(edit.clone(), now).expect("record");
    store
        .mark_sent(&[edit.mutation_id.to_string()])
        .expect("seal");

    // The record the dispatcher already resolved, as pulled (about another mutation of
    // the same order, so that nothing here acknowledges the sealed row).
    let record = ConflictRecord {
        id: Uuid::now_v7(),
        version: 2,
        status: RecordStatus::Resolved,
        kind: ConflictKind::Reassigned,
        order_id: order.id,
        order_number: None,
        assignee: Some("tech2".into()),
        username: "tech1".into(),
        device_id: Uuid::nil(),
        created_at: now,
        device_time: None,
        fields: Vec::new(),
        held_by: None,
        mutation: update(&order, vec![Op::Set(SetOp::Title("theirs".into()))]),
        resolution: Some(Resolution {
            outcome: ResolutionOutcome::KeptServer,
            decided_by: "dispatcher".into(),
            decided_at: now,
            mutation_id: Uuid::now_v7(),
            ops: Vec::new(),
            order_version: None,
            reason: None,
        }),
    };
    let page = PullResponse {
        changes: vec![Change {
            seq: 7,
            entity: ChangeEntity::Conflict,
            id: record.id.to_string(),
            version: 2,
            mutation_ids: Vec::new(),
            change: ChangeBody::Conflict(record.clone()),
        }],
        cursor: "c7".into(),
        has_more: false,
        priming: None,
        server_time: now,
        epoch: None,
    };
    store.apply_pull_page(&page, now).expect("pull");

    let answer = vec![MutationResult {
        mutation_id: edit.mutation_id,
        outcome: PushOutcome::Duplicate {
            first: Box::new(PushOutcome::AppliedWithConflicts(AppliedWithConflicts {
                entity_id: order.id,
                version: 2,
                number: None,
                conflict_id: record.id,
                fields: Vec::new(),
                conflict_kind: ConflictKind::Reassigned,
                order: None,
            })),
        },
    }];
    store.record_push_results(&answer, now).expect("answer");
    let kept = store.conflicts().expect("conflicts");
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].status, "resolved", "not opened again");
    let body: ConflictRecord = serde_json::from_value(kept[0].body.clone())
        .unwrap_or_else(|e| panic!("the full record, not a placeholder ({e}): {}", kept[0].body));
    assert_eq!(body, record);
    assert_eq!(store.sync_counts().expect("counts").conflicts, 0);
}

/// An answer that acknowledges two mutations of one order writes the order once, with
/// the later of the server's rows, rebased under the work still queued: a note and a
/// completion sent together wrote, rebased and indexed the order twice (the reconnect
/// of issue 24 spent a third of the device's time recording answers).
#[test]
fn an_answer_acknowledging_an_order_twice_writes_its_latest_row_once() {
    use outpost_protocol::wire::Applied;
    struct Case {
        _tmp: tempfile::TempDir,
        store: Store,
        order: WorkOrder,
        edits: Vec<Mutation>,
    }
    let now = Utc::now();
    let case = || {
        let tmp = tempfile::tempdir().expect("temp dir");
        let key = crate::DbKey::generate().expect("key");
        let mut store = Store::create(tmp.path(), &key).expect("store");
        let mut order = WorkOrder::blank(Uuid::now_v7());
        order.title = "Twice".into();
        order.version = 3;
        store
            .put_server_orders(std::slice::from_ref(&order), now)
            .expect("seed");
        let edits = vec![
            update(&order, vec![Op::Set(SetOp::Description("first".into()))]),
            update(&order, vec![Op::Set(SetOp::Title("second".into()))]),
            update(
                &order,
                vec![Op::Set(SetOp::Description("third, unsent".into()))],
            ),
        ];
        // Each sent before the next is saved (pending edits of an order are merged
        // into one row; sent ones are not).
        for (i, e) in edits.iter().enumerate() {
            store.record(e.clone(), now).expect("record");
            if i < 2 {
                store.mark_sent(&[e.mutation_id.to_string()]).expect("seal");
            }
        }
        // Count the writes of order rows from here on.
        store
            .conn
            .execute_batch(
                "CREATE TEMP TABLE order_writes (id TEXT);
                 CREATE TEMP TRIGGER order_written AFTER UPDATE ON work_orders
                 BEGIN INSERT INTO order_writes VALUES (NEW.id); END;",
            )
            .expect("counting trigger");
        Case {
            _tmp: tmp,
            store,
            order,
            edits,
        }
    };
    let applied = |m: &Mutation, row: &WorkOrder| MutationResult {
        mutation_id: m.mutation_id,
        outcome: PushOutcome::Applied(Applied {
            entity: EntityKind::WorkOrder,
            entity_id: row.id,
            version: row.version,
            number: None,
            changed: true,
            order: Some(row.clone()),
        }),
    };
    let writes = |store: &Store| -> i64 {
        store
            .conn
            .query_row("SELECT count(*) FROM order_writes", [], |r| r.get(0))
            .expect("count")
    };

    let mut once = case();
    let mut v4 = once.order.clone();
    v4.version = 4;
    v4.description = "first".into();
    once.store
        .record_push_results(&[applied(&once.edits[0], &v4)], now)
        .expect("answer");
    let writes_of_one = writes(&once.store);

    let mut twice = case();
    let mut v4 = twice.order.clone();
    v4.version = 4;
    v4.description = "first".into();
    let mut v5 = v4.clone();
    v5.version = 5;
    v5.title = "second".into();
    let summary = twice
        .store
        .record_push_results(
            &[applied(&twice.edits[0], &v4), applied(&twice.edits[1], &v5)],
            now,
        )
        .expect("answer");
    assert_eq!(summary.acknowledged, 2);
    assert_eq!(
        writes(&twice.store),
        writes_of_one,
        "two acknowledgements of one order in one answer write it as often as one does"
    );
    let stored = twice
        .store
        .order(&twice.order.id.to_string())
        .expect("order");
    assert_eq!(stored.order.version, 5, "the later of the server's rows");
    assert_eq!(stored.order.title, "second");
    assert_eq!(
        stored.order.description, "third, unsent",
        "the work still queued stays on top"
    );
    let left: Vec<String> = twice
        .store
        .outbox()
        .expect("outbox")
        .into_iter()
        .map(|r| r.mutation_id)
        .collect();
    assert_eq!(left, vec![twice.edits[2].mutation_id.to_string()]);
    assert!(twice.store.check().expect("check").sound);
}

/// A pulled order's row (the local view and the server's part) is written once: an
/// order's body spills onto overflow pages, and each write of the row encrypts them
/// again at commit. Priming a dispatcher's 100,000 orders wrote every row twice.
#[test]
fn a_pulled_order_is_written_once() {
    use outpost_protocol::wire::{Change, ChangeEntity};
    let tmp = tempfile::tempdir().expect("temp dir");
    let key = crate::DbKey::generate().expect("key");
    let mut store = Store::create(tmp.path(), &key).expect("store");
    let now = Utc::now();
    let mut known = WorkOrder::blank(Uuid::now_v7());
    known.title = "Already here".into();
    known.version = 1;
    store
        .put_server_orders(std::slice::from_ref(&known), now)
        .expect("seed");
    store
        .conn
        .execute_batch(
            "CREATE TEMP TABLE order_writes (id TEXT);
             CREATE TEMP TRIGGER order_inserted AFTER INSERT ON work_orders
             BEGIN INSERT INTO order_writes VALUES (NEW.id); END;
             CREATE TEMP TRIGGER order_updated AFTER UPDATE ON work_orders
             BEGIN INSERT INTO order_writes VALUES (NEW.id); END;",
        )
        .expect("counting triggers");
    let mut new = WorkOrder::blank(Uuid::now_v7());
    new.title = "New here".into();
    new.version = 1;
    known.title = "Changed on the server".into();
    known.version = 2;
    let change = |seq, row: &WorkOrder| Change {
        seq,
        entity: ChangeEntity::WorkOrder,
        id: row.id.to_string(),
        version: row.version,
        mutation_ids: Vec::new(),
        change: ChangeBody::WorkOrder(row.clone()),
    };
    let page = PullResponse {
        changes: vec![change(1, &new), change(2, &known)],
        cursor: "c2".into(),
        has_more: false,
        priming: None,
        server_time: now,
        epoch: None,
    };
    store.apply_pull_page(&page, now).expect("pull");
    let writes = |id: &Uuid| -> i64 {
        store
            .conn
            .query_row(
                "SELECT count(*) FROM order_writes WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .expect("count")
    };
    assert_eq!(
        (writes(&new.id), writes(&known.id)),
        (1, 1),
        "a new and a known order are each written once"
    );
    for o in [&new, &known] {
        let (body, server_body, version): (String, String, i64) = store
            .conn
            .query_row(
                "SELECT body, server_body, server_version FROM work_orders WHERE id = ?1",
                [o.id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .expect("row");
        let body: WorkOrder = serde_json::from_str(&body).expect("body");
        let server_body: WorkOrder = serde_json::from_str(&server_body).expect("server body");
        let expected_version = if o.id == new.id { 1 } else { 2 };
        assert_eq!((&body, &server_body, version), (o, o, expected_version));
    }
}
