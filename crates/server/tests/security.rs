//! The server's authorization and abuse controls found missing by the security review
//! (issue 19), each reproduced over real HTTP on both backends: what a technician may
//! do with a resolution, who may reopen an order, what a former assignee learns from a
//! conflict, who may touch an upload. docs/SECURITY.md names these tests per actor.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use outpost_protocol::wire::*;
use outpost_protocol::*;
use uuid::Uuid;

both!(
    a_technician_settles_a_conflict_only_with_its_fields_and_within_the_status_machine,
    only_staff_may_reopen_a_cancelled_order,
);

async fn order_now(d: &Session, id: Uuid) -> WorkOrder {
    d.get(&format!("{}/{id}", paths::ORDERS))
        .send()
        .await
        .expect("get order")
        .json()
        .await
        .expect("order")
}

async fn open_conflicts(s: &Session) -> Vec<ConflictRecord> {
    let list: ConflictList = s
        .get(paths::CONFLICTS)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list.items
}

/// A `resolve` of `record` by `s` carrying exactly `ops` (what a modified client could
/// send), with what the record showed as `seen`.
fn resolve_with(s: &Session, record: &ConflictRecord, ops: Vec<Op>) -> Mutation {
    let mut m = record.resolve_mutation(
        &ResolutionChoice::KeepServer,
        Uuid::now_v7(),
        s.device,
        chrono::Utc::now(),
    );
    m.seen = record.seen_for(&ops);
    m.ops = ops;
    m
}

/// Item 1: a technician can open a conflict at will (a push on an old base); its
/// resolution must not become a way to cancel, reopen or rewrite the order.
async fn a_technician_settles_a_conflict_only_with_its_fields_and_within_the_status_machine(
    kind: Kind,
) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(
            order.id,
            MutationKind::Update,
            1,
            vec![
                Op::Set(SetOp::Title("Dispatcher's title".into())),
                Op::Set(SetOp::Status(Status::EnRoute)),
            ],
        ))
        .await
    else {
        panic!("the dispatcher's edit applies")
    };
    // The technician pushes on the old base: title and status conflict.
    let PushOutcome::AppliedWithConflicts(c) = t1
        .push1(t1.mutation(
            order.id,
            MutationKind::Update,
            1,
            vec![
                Op::Set(SetOp::Title("Technician's title".into())),
                Op::Set(SetOp::Status(Status::InProgress)),
            ],
        ))
        .await
    else {
        panic!("a field conflict")
    };
    let record = open_conflicts(&t1)
        .await
        .into_iter()
        .find(|r| r.id == c.conflict_id)
        .expect("the technician sees their conflict");

    // A field of the conflict, but a value only cancel may set.
    let cancel = t1
        .push1(resolve_with(
            &t1,
            &record,
            vec![Op::Set(SetOp::Status(Status::Cancelled))],
        ))
        .await;
    assert!(
        matches!(&cancel, PushOutcome::Rejected(_)),
        "a technician cannot cancel through a resolution: {cancel:?}"
    );
    // A field that is not the conflict's.
    let other = t1
        .push1(resolve_with(
            &t1,
            &record,
            vec![Op::Set(SetOp::Description("rewritten".into()))],
        ))
        .await;
    assert!(
        matches!(&other, PushOutcome::Rejected(r) if r.code == ErrorCode::Forbidden),
        "a technician's resolution sets only the conflict's fields: {other:?}"
    );
    let now = order_now(&d, order.id).await;
    assert_eq!(now.status, Status::EnRoute, "not cancelled");
    assert_eq!(now.description, order.description, "not rewritten");

    // The Conflicts screen's choices still work: a merged title and the device's status.
    let merged = t1
        .push1(resolve_with(
            &t1,
            &record,
            vec![
                Op::Set(SetOp::Title("Dispatcher's and technician's title".into())),
                Op::Set(SetOp::Status(Status::InProgress)),
            ],
        ))
        .await;
    assert!(
        matches!(&merged, PushOutcome::Applied(_)),
        "a merged value and the device's value settle it: {merged:?}"
    );
    let now = order_now(&d, order.id).await;
    assert_eq!(now.title, "Dispatcher's and technician's title");
    assert_eq!(now.status, Status::InProgress);
}

/// Item 3: reopening a cancelled order (back to scheduled) is for dispatchers and
/// administrators, whether pushed as an edit or as a resolution.
async fn only_staff_may_reopen_a_cancelled_order(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(
            order.id,
            MutationKind::Cancel,
            1,
            vec![Op::Set(SetOp::Status(Status::Cancelled))],
        ))
        .await
    else {
        panic!("the dispatcher cancels")
    };
    let reopen = vec![Op::Set(SetOp::Status(Status::Scheduled))];
    let edit = t1
        .push1(t1.mutation(order.id, MutationKind::Update, 2, reopen.clone()))
        .await;
    assert!(
        matches!(&edit, PushOutcome::Rejected(r) if r.code == ErrorCode::Forbidden),
        "a technician's edit does not reopen: {edit:?}"
    );
    assert_eq!(order_now(&d, order.id).await.status, Status::Cancelled);

    // The same change on the old base is held; settling it must not reopen either.
    let PushOutcome::AppliedWithConflicts(c) = t1
        .push1(t1.mutation(order.id, MutationKind::Update, 1, reopen.clone()))
        .await
    else {
        panic!("held behind the cancellation")
    };
    let record = open_conflicts(&t1)
        .await
        .into_iter()
        .find(|r| r.id == c.conflict_id)
        .expect("the technician sees their conflict");
    let settle = t1.push1(resolve_with(&t1, &record, reopen.clone())).await;
    assert!(
        matches!(&settle, PushOutcome::Rejected(r) if r.code == ErrorCode::Forbidden),
        "a technician's resolution does not reopen: {settle:?}"
    );
    assert_eq!(order_now(&d, order.id).await.status, Status::Cancelled);

    let staff = d
        .push1(d.mutation(order.id, MutationKind::Update, 2, reopen))
        .await;
    assert!(
        matches!(&staff, PushOutcome::Applied(_)),
        "a dispatcher reopens: {staff:?}"
    );
    assert_eq!(order_now(&d, order.id).await.status, Status::Scheduled);
}
