//! Tests of the merge rules: scripted pushes and resolutions against a tiny in-memory
//! server, property tests that replay random pushes from several devices, and a
//! property test holding `restamp` to its list-based definition.
//!
//! They live in their own file so the rules read without scrolling past them; they
//! reach the module's private helpers through `super::*`. Nothing here touches I/O.

use super::*;
use crate::domain::*;
use crate::mutation::{ListItem, ListName};
use crate::wire::{ConflictRecord, RecordStatus, ResolutionOutcome};
use chrono::{DateTime, Utc};
use proptest::prelude::*;

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid timestamp")
}

fn dev(n: u128) -> Uuid {
    Uuid::from_u128(0xD0 + n)
}

fn tech(n: u128, name: &str) -> Actor {
    Actor {
        username: name.into(),
        role: Role::Technician,
        device_id: dev(n),
    }
}

fn dispatcher() -> Actor {
    Actor {
        username: "dispatcher".into(),
        role: Role::Dispatcher,
        device_id: dev(99),
    }
}

fn mutation(actor: &Actor, id: Uuid, kind: MutationKind, base: u64, ops: Vec<Op>) -> Mutation {
    Mutation {
        mutation_id: Uuid::now_v7(),
        device_id: actor.device_id,
        entity: EntityKind::WorkOrder,
        entity_id: id,
        kind,
        base_version: base,
        format: FORMAT_VERSION,
        device_time: t0(),
        ops,
        base_epoch: None,
        reason: None,
        seen: Vec::new(),
    }
}

/// A tiny in-memory server: current rows, stamps and history, so tests can apply
/// decisions in sequence.
#[derive(Clone, Default, Debug)]
struct Server {
    order: Option<WorkOrder>,
    stamps: FieldStamps,
    history: BTreeMap<u64, WorkOrder>,
    held: Vec<ConflictField>,
    held_whole: usize,
    stock: BTreeMap<String, i64>,
}

impl Server {
    fn push(&mut self, m: &Mutation, actor: &Actor) -> Decision {
        let d = {
            let base = self
                .order
                .as_ref()
                .map(|o| base_of(o, &self.stamps, m, true));
            let cur = self.order.as_ref().map(|o| Current {
                order: o,
                stamps: &self.stamps,
                base: base.unwrap_or(Base::Known(0)),
                at_base: match base {
                    Some(Base::Known(v)) => self.history.get(&v),
                    _ => None,
                },
                ever_assigned: false,
            });
            let d = merge(cur, m, actor);
            // The server skips loading the base row when `needs_base` says so: the
            // decision must be the same without it.
            if let (Some(o), Some(base)) = (self.order.as_ref(), base) {
                if !needs_base(o, &self.stamps, m, actor, base) {
                    let without = merge(
                        Some(Current {
                            order: o,
                            stamps: &self.stamps,
                            base,
                            at_base: None,
                            ever_assigned: false,
                        }),
                        m,
                        actor,
                    );
                    assert_eq!(without, d, "needs_base said the base row was not needed");
                }
            }
            d
        };
        match &d {
            Decision::Apply(a) => {
                self.order = Some(a.order.clone());
                self.stamps = a.stamps.clone();
                self.history.insert(a.order.version, a.order.clone());
                self.held.extend(a.conflicts.iter().cloned());
                for s in &a.stock {
                    *self.stock.entry(s.sku.clone()).or_default() += s.delta_milli;
                }
            }
            Decision::HoldWhole { .. } => self.held_whole += 1,
            Decision::Reject(_) => {}
        }
        d
    }

    fn order(&self) -> &WorkOrder {
        self.order.as_ref().expect("order exists")
    }
}

fn created(server: &mut Server, by: &Actor, assignee: &str) -> Uuid {
    let id = Uuid::from_u128(42);
    let m = mutation(
        by,
        id,
        MutationKind::Create,
        0,
        vec![
            Op::Set(SetOp::Title("Boiler service".into())),
            Op::Set(SetOp::Assignee(Some(assignee.into()))),
            Op::Add(ListItem::Checklist(ChecklistItem {
                id: "c1".into(),
                label: "Check pressure".into(),
                required: true,
                done: false,
            })),
            Op::Add(ListItem::Checklist(ChecklistItem {
                id: "c2".into(),
                label: "Clean".into(),
                required: false,
                done: false,
            })),
        ],
    );
    assert!(
        matches!(server.push(&m, by), Decision::Apply(_)),
        "the create applies"
    );
    id
}

fn completion_ops() -> Vec<Op> {
    vec![
        Op::Set(SetOp::ChecklistDone {
            item_id: "c1".into(),
            done: true,
        }),
        Op::Set(SetOp::Signature(Some(Signature {
            hash: "a".repeat(64),
            signer: "Grace".into(),
        }))),
    ]
}

#[test]
fn a_set_conflicts_only_with_a_newer_change_from_another_device() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    // The dispatcher edits the title at v1 → v2.
    let m = mutation(
        &d,
        id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Title("A".into()))],
    );
    assert!(matches!(s.push(&m, &d), Decision::Apply(_)));
    // The technician, still at v1, sets a different title: a conflict.
    let m = mutation(
        &t1,
        id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Title("B".into()))],
    );
    let Decision::Apply(a) = s.push(&m, &t1) else {
        panic!("applies with conflicts")
    };
    assert_eq!(a.fates, vec![OpFate::Conflict]);
    assert!(!a.changed, "nothing else changed, so no version bump");
    assert_eq!(a.conflicts[0].field, "title");
    assert_eq!(a.conflicts[0].server, Some(SetOp::Title("A".into())));
    assert_eq!(
        a.conflicts[0].base,
        Some(SetOp::Title("Boiler service".into()))
    );
    // Setting the value already there is no conflict and no version bump.
    let m = mutation(
        &t1,
        id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Title("A".into()))],
    );
    let Decision::Apply(a) = s.push(&m, &t1) else {
        panic!("applies")
    };
    assert_eq!(a.fates, vec![OpFate::Unchanged]);
    assert!(!a.changed);
}

#[test]
fn a_device_never_conflicts_with_its_own_earlier_edits() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    for title in ["x", "y", "z"] {
        // Every edit is made on base 1 (the earlier ones were in flight).
        let m = mutation(
            &t1,
            id,
            MutationKind::Update,
            1,
            vec![Op::Set(SetOp::Title(title.into()))],
        );
        let Decision::Apply(a) = s.push(&m, &t1) else {
            panic!("applies")
        };
        assert!(a.conflicts.is_empty(), "own edits never conflict");
    }
    assert_eq!(s.order().title, "z");
    assert_eq!(s.order().version, 4);
}

#[test]
fn completion_after_a_cancellation_by_another_device_is_held_whole() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    let cancel = mutation(
        &d,
        id,
        MutationKind::Cancel,
        1,
        vec![Op::AppendNote {
            note: NoteEntry {
                id: Uuid::from_u128(1),
                author: "dispatcher".into(),
                text: "customer cancelled".into(),
                at: t0(),
            },
        }],
    );
    assert!(matches!(s.push(&cancel, &d), Decision::Apply(_)));
    let complete = mutation(&t1, id, MutationKind::Complete, 1, completion_ops());
    match s.push(&complete, &t1) {
        Decision::HoldWhole { kind, fields } => {
            assert_eq!(kind, ConflictKind::CompletionAfterCancel);
            assert_eq!(fields.len(), 2, "the evidence is kept");
        }
        other => panic!("expected a held completion, got {other:?}"),
    }
    assert_eq!(s.order().status, Status::Cancelled, "nothing applied yet");
}

fn tick(actor: &Actor, id: Uuid, base: u64) -> Mutation {
    mutation(
        actor,
        id,
        MutationKind::Update,
        base,
        vec![Op::Set(SetOp::ChecklistDone {
            item_id: "c1".into(),
            done: true,
        })],
    )
}

fn signature_only() -> Vec<Op> {
    vec![Op::Set(SetOp::Signature(Some(Signature {
        hash: "a".repeat(64),
        signer: "Grace".into(),
    })))]
}

fn a_note(n: u128) -> Op {
    Op::AppendNote {
        note: NoteEntry {
            id: Uuid::from_u128(n),
            author: "tech1".into(),
            text: "on site".into(),
            at: t0(),
        },
    }
}

/// The order found by the end-to-end tests: the technician ticks the checklist and
/// completes, both offline on base 1, while the dispatcher cancels. The tick and the
/// completion are each held for a person (never refused for the cancelled state or
/// for the checklist the held tick did not tick), notes still apply, and accepting
/// both in order completes the order with its evidence.
#[test]
fn edits_and_a_completion_behind_a_cancellation_are_held_not_refused() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    let cancel = mutation(&d, id, MutationKind::Cancel, 1, vec![a_note(1)]);
    assert!(matches!(s.push(&cancel, &d), Decision::Apply(_)));

    let tick = tick(&t1, id, 1);
    let Decision::HoldWhole { kind, fields } = s.push(&tick, &t1) else {
        panic!("the tick is held")
    };
    assert_eq!(kind, ConflictKind::UpdateAfterCancel);
    assert_eq!(fields[0].field, "checklist.c1.done");

    let complete = mutation(&t1, id, MutationKind::Complete, 1, signature_only());
    let Decision::HoldWhole { kind, fields } = s.push(&complete, &t1) else {
        panic!("the completion is held, not refused for checklist.c1")
    };
    assert_eq!(kind, ConflictKind::CompletionAfterCancel);
    assert_eq!(fields.len(), 1, "the signature is kept");
    assert_eq!(fields[0].field, "signature");

    let note = mutation(&t1, id, MutationKind::Update, 1, vec![a_note(2)]);
    let Decision::Apply(a) = s.push(&note, &t1) else {
        panic!("notes alone still apply")
    };
    assert!(a.changed);
    assert_eq!(s.order().status, Status::Cancelled);
    assert_eq!(s.order().notes.len(), 2);
    assert!(
        !s.order().checklist[0].done,
        "nothing of the held edits applied"
    );

    // A person accepts the tick, then the completion.
    let record = |kind, m: &Mutation, fields| ConflictRecord {
        id: Uuid::now_v7(),
        version: 1,
        status: RecordStatus::Open,
        kind,
        order_id: id,
        order_number: None,
        assignee: Some("tech1".into()),
        username: "tech1".into(),
        device_id: t1.device_id,
        created_at: t0(),
        device_time: None,
        fields,
        held_by: None,
        mutation: m.clone(),
        resolution: None,
    };
    let tick_fields = whole_fields(&tick, s.order(), s.history.get(&1));
    let done_fields = whole_fields(&complete, s.order(), s.history.get(&1));
    for c in [
        record(ConflictKind::UpdateAfterCancel, &tick, tick_fields),
        record(ConflictKind::CompletionAfterCancel, &complete, done_fields),
    ] {
        let r = c.resolve_mutation(
            &crate::wire::ResolutionChoice::AcceptDevice,
            Uuid::now_v7(),
            d.device_id,
            t0(),
        );
        let cur = Current {
            order: s.order(),
            stamps: &s.stamps,
            base: Base::Known(0),
            at_base: None,
            ever_assigned: false,
        };
        let ResolveDecision::Resolved(done) =
            resolve(Resolvable::Conflict(&c), Some(cur), &r, &d, t0())
        else {
            panic!("resolves")
        };
        s.order = Some(done.order.clone());
        s.stamps = done.stamps.clone();
    }
    assert_eq!(s.order().status, Status::Completed);
    assert!(s.order().checklist[0].done && s.order().signature.is_some());
}

#[test]
fn a_completion_behind_a_held_edit_after_reassignment_is_held_too() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    let reassign = mutation(
        &d,
        id,
        MutationKind::Assign,
        1,
        vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
    );
    assert!(matches!(s.push(&reassign, &d), Decision::Apply(_)));
    assert!(matches!(
        s.push(&tick(&t1, id, 1), &t1),
        Decision::HoldWhole {
            kind: ConflictKind::Reassigned,
            ..
        }
    ));
    let complete = mutation(&t1, id, MutationKind::Complete, 1, signature_only());
    assert!(matches!(
        s.push(&complete, &t1),
        Decision::HoldWhole {
            kind: ConflictKind::CompletionAfterReassign,
            ..
        }
    ));
    // A dispatcher completing on the old base after the reassignment is held too.
    let d2 = Actor {
        device_id: dev(98),
        ..dispatcher()
    };
    let mut ops = completion_ops();
    ops.push(a_note(3));
    let m = mutation(&d2, id, MutationKind::Complete, 1, ops);
    assert!(matches!(
        s.push(&m, &d2),
        Decision::HoldWhole {
            kind: ConflictKind::CompletionAfterReassign,
            ..
        }
    ));
}

#[test]
fn a_held_mutation_with_a_broken_field_rule_is_refused_and_own_cancel_is_not_held() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    let cancel = mutation(&d, id, MutationKind::Cancel, 1, vec![a_note(1)]);
    assert!(matches!(s.push(&cancel, &d), Decision::Apply(_)));
    // An empty title is wrong whatever the order's state.
    let bad = mutation(
        &t1,
        id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Title(String::new()))],
    );
    let Decision::Reject(r) = s.push(&bad, &t1) else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::ValidationFailed);
    assert_eq!(r.field_errors[0].field, "title");
    // The device that cancelled knew: its own later edit follows the usual rules.
    let own = mutation(
        &d,
        id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Title("x".into()))],
    );
    let Decision::Reject(r) = s.push(&own, &d) else {
        panic!("refused")
    };
    assert_eq!(r.field_errors[0].code, "order_closed");
    // A technician who saw the cancellation (base 2) is refused too.
    let Decision::Reject(r) = s.push(&tick(&t1, id, 2), &t1) else {
        panic!("refused")
    };
    assert_eq!(r.field_errors[0].code, "order_closed");
}

#[test]
fn a_push_after_reassignment_is_a_conflict_and_a_stranger_is_refused() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let t2 = tech(2, "tech2");
    let id = created(&mut s, &d, "tech1");
    let reassign = mutation(
        &d,
        id,
        MutationKind::Assign,
        1,
        vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
    );
    assert!(matches!(s.push(&reassign, &d), Decision::Apply(_)));
    let edit = mutation(
        &t1,
        id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Description("done half".into()))],
    );
    assert!(matches!(
        s.push(&edit, &t1),
        Decision::HoldWhole {
            kind: ConflictKind::Reassigned,
            ..
        }
    ));
    // tech1 at the new version has no claim at all.
    let edit = mutation(
        &t1,
        id,
        MutationKind::Update,
        2,
        vec![Op::Set(SetOp::Description("x".into()))],
    );
    assert!(matches!(
        s.push(&edit, &t1),
        Decision::Reject(MergeRejected {
            code: ErrorCode::Forbidden,
            ..
        })
    ));
    // tech2 may edit.
    let edit = mutation(
        &t2,
        id,
        MutationKind::Update,
        2,
        vec![Op::Set(SetOp::Description("mine".into()))],
    );
    assert!(matches!(s.push(&edit, &t2), Decision::Apply(_)));
}

#[test]
fn a_technicians_new_order_is_assigned_to_them() {
    let mut s = Server::default();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &t1, "somebody-else");
    assert_eq!(s.order().assignee.as_deref(), Some("tech1"));
    let again = mutation(
        &t1,
        id,
        MutationKind::Create,
        0,
        vec![Op::Set(SetOp::Title("dup".into()))],
    );
    assert!(matches!(
        s.push(&again, &t1),
        Decision::Reject(MergeRejected {
            code: ErrorCode::AlreadyExists,
            ..
        })
    ));
}

#[test]
fn parts_used_decrement_stock_and_removal_gives_it_back() {
    let mut s = Server::default();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &dispatcher(), "tech1");
    let line = PartUsed {
        id: Uuid::from_u128(7),
        sku: "FLT".into(),
        quantity: Quantity(2500),
    };
    let add = mutation(
        &t1,
        id,
        MutationKind::Update,
        1,
        vec![Op::Add(ListItem::PartsUsed(line.clone()))],
    );
    s.push(&add, &t1);
    assert_eq!(s.stock["FLT"], -2500);
    s.push(&add, &t1);
    assert_eq!(s.stock["FLT"], -2500, "a replayed add changes nothing");
    let rm = mutation(
        &t1,
        id,
        MutationKind::Update,
        2,
        vec![Op::Remove {
            list: ListName::PartsUsed,
            item_id: line.id.to_string(),
        }],
    );
    s.push(&rm, &t1);
    assert_eq!(s.stock["FLT"], 0);
}

#[test]
fn resolving_a_conflict_applies_the_chosen_side_once() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    s.push(
        &mutation(
            &d,
            id,
            MutationKind::Update,
            1,
            vec![Op::Set(SetOp::Title("A".into()))],
        ),
        &d,
    );
    let m = mutation(
        &t1,
        id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Title("B".into()))],
    );
    let Decision::Apply(a) = s.push(&m, &t1) else {
        panic!("applies")
    };
    let mut record = ConflictRecord {
        id: Uuid::from_u128(5),
        version: 1,
        status: RecordStatus::Open,
        kind: ConflictKind::Fields,
        order_id: id,
        order_number: None,
        assignee: Some("tech1".into()),
        username: "tech1".into(),
        device_id: t1.device_id,
        created_at: t0(),
        device_time: None,
        fields: a.conflicts.clone(),
        held_by: None,
        mutation: m.clone(),
        resolution: None,
    };
    let choice = crate::wire::ResolutionChoice::AcceptDevice;
    let r = record.resolve_mutation(&choice, Uuid::now_v7(), d.device_id, t0());
    let cur = Current {
        order: s.order(),
        stamps: &s.stamps,
        base: Base::Known(0),
        at_base: None,
        ever_assigned: false,
    };
    let ResolveDecision::Resolved(done) =
        resolve(Resolvable::Conflict(&record), Some(cur), &r, &d, t0())
    else {
        panic!("resolves")
    };
    let Resolved {
        resolution,
        order,
        changed,
        ..
    } = *done;
    assert!(changed);
    assert_eq!(order.title, "B");
    assert_eq!(resolution.outcome, ResolutionOutcome::AcceptedDevice);
    record.status = RecordStatus::Resolved;
    record.version = 2;
    record.resolution = Some(resolution.clone());
    let again = resolve(Resolvable::Conflict(&record), Some(cur), &r, &d, t0());
    assert_eq!(again, ResolveDecision::AlreadyResolved(resolution));
}

// ---- Property tests: invariants, not the function against itself ----------------

fn arb_set() -> impl Strategy<Value = SetOp> {
    prop_oneof![
        "[a-c]{1,2}".prop_map(SetOp::Title),
        "[a-c]{0,2}".prop_map(SetOp::Description),
        prop::sample::select(Priority::ALL.to_vec()).prop_map(SetOp::Priority),
        (0usize..2, any::<bool>()).prop_map(|(i, done)| SetOp::ChecklistDone {
            item_id: format!("c{}", i + 1),
            done
        }),
        prop::sample::select(vec![
            Status::Scheduled,
            Status::EnRoute,
            Status::InProgress,
            Status::OnHold
        ])
        .prop_map(SetOp::Status),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => arb_set().prop_map(Op::Set),
        1 => (0u128..3, prop::sample::select(vec!["A", "B"]), 1i64..4).prop_map(|(i, sku, q)| {
            Op::Add(ListItem::PartsUsed(PartUsed {
                id: Uuid::from_u128(100 + i),
                sku: sku.into(),
                quantity: Quantity(q * 1000),
            }))
        }),
        1 => (0u128..3).prop_map(|i| Op::Remove {
            list: ListName::PartsUsed,
            item_id: Uuid::from_u128(100 + i).to_string()
        }),
        1 => (0u128..50).prop_map(|i| Op::AppendNote {
            note: NoteEntry { id: Uuid::from_u128(1000 + i), author: "t".into(), text: "n".into(), at: t0() }
        }),
    ]
}

#[derive(Debug, Clone)]
struct Step {
    who: usize,
    kind: MutationKind,
    base_back: u64,
    ops: Vec<Op>,
}

fn arb_step() -> impl Strategy<Value = Step> {
    (
        0usize..3,
        prop::sample::select(vec![
            MutationKind::Update,
            MutationKind::Update,
            MutationKind::Update,
            MutationKind::Complete,
            MutationKind::Cancel,
            MutationKind::Assign,
        ]),
        0u64..3,
        prop::collection::vec(arb_op(), 1..5),
    )
        .prop_map(|(who, kind, base_back, ops)| Step {
            who,
            kind,
            base_back,
            ops,
        })
}

fn actors() -> Vec<Actor> {
    vec![dispatcher(), tech(1, "tech1"), tech(2, "tech2")]
}

fn step_mutation(s: &Server, step: &Step, id: Uuid) -> (Mutation, Actor) {
    let actor = actors()[step.who].clone();
    let version = s.order.as_ref().map_or(0, |o| o.version);
    let mut ops = step.ops.clone();
    match step.kind {
        MutationKind::Complete => ops.extend(completion_ops()),
        MutationKind::Assign => {
            ops = vec![Op::Set(SetOp::Assignee(Some(
                if version & 1 == 0 { "tech1" } else { "tech2" }.into(),
            )))]
        }
        _ => {}
    }
    let base = version.saturating_sub(step.base_back).max(1);
    (mutation(&actor, id, step.kind, base, ops), actor)
}

fn note_ids(o: &WorkOrder) -> Vec<Uuid> {
    o.notes.iter().map(|n| n.id).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every op of every mutation is applied (visible in the row), left unchanged
    /// because the value was already there, kept in an open conflict, or part of a
    /// whole-mutation hold or a rejection a person can see.
    #[test]
    fn every_op_is_applied_held_or_rejected(steps in prop::collection::vec(arb_step(), 1..8)) {
        let mut s = Server::default();
        let id = created(&mut s, &dispatcher(), "tech1");
        for step in &steps {
            let (m, actor) = step_mutation(&s, step, id);
            let held_before = s.held.len();
            match s.push(&m, &actor) {
                Decision::Reject(r) => prop_assert!(!r.message.is_empty(), "a rejection says why"),
                Decision::HoldWhole { fields, .. } => {
                    let sets = m.ops.iter().filter(|o| matches!(o, Op::Set(_))).count();
                    prop_assert_eq!(fields.len(), sets, "every set of a held mutation is listed");
                }
                Decision::Apply(a) => {
                    prop_assert_eq!(a.fates.len(), m.ops.len());
                    let after = s.order();
                    let conflicts = s.held.len() - held_before;
                    prop_assert_eq!(conflicts, a.fates.iter().filter(|f| **f == OpFate::Conflict).count());
                    for (i, (op, fate)) in m.ops.iter().zip(&a.fates).enumerate() {
                        let later = &m.ops[i + 1..];
                        match (op, fate) {
                            (Op::Set(set), OpFate::Applied | OpFate::Unchanged) => {
                                let overwritten = later.iter().any(|o| matches!(o, Op::Set(x) if x.field_key() == set.field_key()));
                                let implied = matches!(set, SetOp::Status(_)) && m.kind != MutationKind::Update;
                                if !overwritten && !implied {
                                    let now = current_as_set(after, set);
                                    prop_assert_eq!(now.as_ref(), Some(set), "an applied set is visible");
                                }
                            }
                            (Op::Remove { item_id, .. }, OpFate::Superseded) => {
                                prop_assert!(later.iter().any(|o| matches!(o, Op::Add(ListItem::PartsUsed(q)) if q.id.to_string() == *item_id)));
                            }
                            (Op::Set(set), OpFate::Superseded) => {
                                prop_assert!(later.iter().any(|o| matches!(o, Op::Set(x) if x.field_key() == set.field_key())));
                            }
                            (Op::Set(set), OpFate::Conflict) => {
                                prop_assert!(a.conflicts.iter().any(|c| &c.device == set), "a held set is in the conflict");
                            }
                            (Op::Add(ListItem::PartsUsed(p)), OpFate::Applied) => {
                                let removed = later.iter().any(|o| matches!(o, Op::Remove { item_id, .. } if *item_id == p.id.to_string()));
                                let replaced = later.iter().any(|o| matches!(o, Op::Add(ListItem::PartsUsed(q)) if q.id == p.id));
                                if !removed && !replaced {
                                    prop_assert!(after.parts_used.contains(p), "an added line is present");
                                }
                            }
                            (Op::Remove { item_id, .. }, OpFate::Applied) => {
                                let readded = later.iter().any(|o| matches!(o, Op::Add(ListItem::PartsUsed(q)) if q.id.to_string() == *item_id));
                                if !readded {
                                    prop_assert!(!after.parts_used.iter().any(|p| p.id.to_string() == *item_id));
                                }
                            }
                            (Op::AppendNote { note }, OpFate::Applied) => {
                                prop_assert!(note_ids(after).contains(&note.id), "a note is kept");
                            }
                            (op, fate) => prop_assert!(false, "unexpected fate {fate:?} for {op:?}"),
                        }
                    }
                }
            }
            // Stock always mirrors the parts lines: deltas commute and nothing is lost.
            let mut expected: BTreeMap<String, i64> = BTreeMap::new();
            for p in &s.order().parts_used {
                *expected.entry(p.sku.clone()).or_default() -= p.quantity.milli();
            }
            let actual: BTreeMap<String, i64> = s.stock.iter().filter(|(_, v)| **v != 0).map(|(k, v)| (k.clone(), *v)).collect();
            expected.retain(|_, v| *v != 0);
            prop_assert_eq!(actual, expected, "stock equals minus the parts used");
        }
    }

    /// Whatever a technician made offline on a base before another device's
    /// cancellation (edits, completions with or without their evidence, in any order,
    /// each possibly relying on an earlier one that was itself held) is never
    /// refused: notes alone apply, everything else is held whole with every `set`
    /// listed, and the cancelled order changes by nothing but notes.
    #[test]
    fn nothing_made_before_a_cancellation_is_refused(
        before in prop::collection::vec(arb_op(), 0..3),
        steps in prop::collection::vec((any::<bool>(), prop::collection::vec(arb_op(), 1..4)), 1..6),
    ) {
        let mut s = Server::default();
        let d = dispatcher();
        let t1 = tech(1, "tech1");
        let id = created(&mut s, &d, "tech1");
        if !before.is_empty() {
            s.push(&mutation(&t1, id, MutationKind::Update, 1, before), &t1);
        }
        let base = s.order().version;
        let cancel = mutation(&d, id, MutationKind::Cancel, base, vec![a_note(9_999)]);
        prop_assert!(matches!(s.push(&cancel, &d), Decision::Apply(_)));
        let cancelled = s.order().clone();
        for (complete, ops) in &steps {
            let mut ops = ops.clone();
            // Status edits by a technician are part of the edit being held.
            let kind = if *complete { MutationKind::Complete } else { MutationKind::Update };
            if *complete {
                ops.retain(|o| !matches!(o, Op::Set(SetOp::Status(_))));
                ops.extend(signature_only());
            }
            let m = mutation(&t1, id, kind, base, ops);
            let only_notes = m.ops.iter().all(|o| matches!(o, Op::AppendNote { .. }));
            match s.push(&m, &t1) {
                Decision::Reject(r) => prop_assert!(false, "refused: {r:?}"),
                Decision::Apply(_) => prop_assert!(only_notes, "only notes apply"),
                Decision::HoldWhole { kind: held, fields } => {
                    prop_assert!(!only_notes);
                    prop_assert_eq!(held, if *complete { ConflictKind::CompletionAfterCancel } else { ConflictKind::UpdateAfterCancel });
                    let sets: Vec<&SetOp> = m.ops.iter().filter_map(|o| match o { Op::Set(x) => Some(x), _ => None }).collect();
                    prop_assert_eq!(fields.iter().map(|f| &f.device).collect::<Vec<_>>(), sets, "every set is kept");
                }
            }
            let mut now = s.order().clone();
            prop_assert_eq!(now.status, Status::Cancelled);
            now.notes.retain(|n| cancelled.notes.contains(n));
            now.version = cancelled.version;
            prop_assert_eq!(&now, &cancelled, "only notes were added");
        }
    }

    /// Re-applying a mutation right after itself (the retry after a lost reply)
    /// changes nothing: same row, same stock. Replays further apart are caught by
    /// the server's idempotency records before they reach `merge`.
    #[test]
    fn a_mutation_applied_twice_changes_nothing_the_second_time(steps in prop::collection::vec(arb_step(), 1..8)) {
        let mut s = Server::default();
        let id = created(&mut s, &dispatcher(), "tech1");
        for step in &steps {
            let (m, actor) = step_mutation(&s, step, id);
            s.push(&m, &actor);
            let before = s.clone();
            if let Decision::Apply(a) = s.push(&m, &actor) {
                prop_assert!(a.stock.is_empty(), "a replay moves no stock");
                prop_assert!(!a.changed, "a replay bumps no version");
            }
            prop_assert_eq!(s.order(), before.order(), "the row is unchanged by a replay");
            prop_assert_eq!(&s.stock, &before.stock);
        }
    }

    /// Mutations from different devices on disjoint fields give the same state in
    /// either order.
    #[test]
    fn disjoint_mutations_commute(
        a_ops in prop::collection::vec(arb_op(), 1..4),
        b_ops in prop::collection::vec(arb_op(), 1..4),
    ) {
        let t1 = tech(1, "tech1");
        let d = dispatcher();
        let mut base = Server::default();
        let id = created(&mut base, &d, "tech1");
        // Make the ops disjoint: A keeps title/description/notes, B the rest, and
        // part lines are split by id.
        let a_ops: Vec<Op> = a_ops.into_iter().filter(|o| match o {
            Op::Set(s) => matches!(s, SetOp::Title(_) | SetOp::Description(_)),
            Op::Add(ListItem::PartsUsed(p)) => p.id.as_u128() & 1 == 0,
            Op::Remove { item_id, .. } => item_id.ends_with('4') || item_id.ends_with('6'),
            Op::AppendNote { note } => note.id.as_u128() & 1 == 0,
            _ => true,
        }).collect();
        let b_ops: Vec<Op> = b_ops.into_iter().filter(|o| match o {
            Op::Set(s) => matches!(s, SetOp::Priority(_) | SetOp::ChecklistDone { .. }),
            Op::Add(ListItem::PartsUsed(p)) => p.id.as_u128() & 1 == 1,
            Op::Remove { item_id, .. } => item_id.ends_with('5'),
            Op::AppendNote { note } => note.id.as_u128() & 1 == 1,
            _ => true,
        }).collect();
        prop_assume!(!a_ops.is_empty() && !b_ops.is_empty());
        let ma = mutation(&t1, id, MutationKind::Update, 1, a_ops);
        let mb = mutation(&d, id, MutationKind::Update, 1, b_ops);
        let mut ab = base.clone();
        ab.push(&ma, &t1);
        ab.push(&mb, &d);
        let mut ba = base.clone();
        ba.push(&mb, &d);
        ba.push(&ma, &t1);
        let (mut x, mut y) = (ab.order().clone(), ba.order().clone());
        // Notes keep arrival order; as a set they are equal.
        x.notes.sort_by_key(|n| n.id);
        y.notes.sort_by_key(|n| n.id);
        x.parts_used.sort_by_key(|p| p.id);
        y.parts_used.sort_by_key(|p| p.id);
        prop_assert_eq!(x, y);
        prop_assert_eq!(&ab.stock, &ba.stock);
        prop_assert!(ab.held.is_empty() && ba.held.is_empty(), "disjoint edits never conflict");
    }
}

// ---- restamp: the in-place comparison agrees with the list-based definition ----

/// `restamp` as it was first written: both orders as lists of `set`s, compared
/// by key. The one in use compares in place; they must agree.
fn restamp_by_lists(
    stamps: &mut FieldStamps,
    before: Option<&WorkOrder>,
    after: &WorkOrder,
    stamp: FieldStamp,
) {
    let old: BTreeMap<String, SetOp> = before
        .map(|b| {
            scalar_fields(b)
                .into_iter()
                .map(|s| (s.field_key(), s))
                .collect()
        })
        .unwrap_or_default();
    for set in scalar_fields(after) {
        let key = set.field_key();
        if old.get(&key) != Some(&set) {
            stamps.insert(key, stamp);
        }
    }
}

/// Small orders that share ids, so items keep, flip, appear and disappear between
/// two of them (duplicate checklist ids and running timers included).
fn arb_stamp_order() -> impl Strategy<Value = WorkOrder> {
    (
        prop::sample::select(vec!["a", "b"]),
        prop::sample::select(vec!["", "d"]),
        prop::sample::select(Priority::ALL.to_vec()),
        prop::option::of(prop::sample::select(vec!["tech1", "tech2"])),
        prop::collection::vec((0u8..3, any::<bool>()), 0..4),
        prop::collection::vec((0u128..3, prop::option::of(0i64..2)), 0..4),
        prop::option::of(0i64..2),
    )
        .prop_map(
            |(title, description, priority, assignee, checklist, times, done_at)| {
                let mut o = WorkOrder::blank(Uuid::from_u128(1));
                o.title = title.into();
                o.description = description.into();
                o.priority = priority;
                o.assignee = assignee.map(Into::into);
                o.completed_at = done_at.map(|s| t0() + chrono::Duration::seconds(s));
                o.checklist = checklist
                    .into_iter()
                    .map(|(i, done)| ChecklistItem {
                        id: format!("c{i}"),
                        label: "L".into(),
                        required: false,
                        done,
                    })
                    .collect();
                o.time_entries = times
                    .into_iter()
                    .map(|(i, end)| TimeEntry {
                        id: Uuid::from_u128(500 + i),
                        started_at: t0(),
                        ended_at: end.map(|s| t0() + chrono::Duration::seconds(60 + s)),
                        note: String::new(),
                    })
                    .collect();
                o
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn restamp_agrees_with_the_list_based_definition(
        before in prop::option::of(arb_stamp_order()),
        after in arb_stamp_order(),
        seeded in prop::collection::vec((prop::sample::select(vec!["title", "checklist.c1.done", "status"]), 1u64..4), 0..3),
    ) {
        let start: FieldStamps = seeded
            .into_iter()
            .map(|(k, v)| (k.to_owned(), FieldStamp { version: v, device_id: dev(1) }))
            .collect();
        let stamp = FieldStamp { version: 9, device_id: dev(2) };
        let (mut fast, mut lists) = (start.clone(), start);
        restamp(&mut fast, before.as_ref(), &after, stamp);
        restamp_by_lists(&mut lists, before.as_ref(), &after, stamp);
        prop_assert_eq!(fast, lists);
    }
}

#[test]
fn a_base_is_unknown_when_it_is_from_another_epoch_or_newer_than_the_order() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    let edit = |base| mutation(&t1, id, MutationKind::Update, base, vec![]);
    let (o, st) = (s.order().clone(), s.stamps.clone());
    assert_eq!(base_of(&o, &st, &edit(1), true), Base::Known(1));
    assert_eq!(base_of(&o, &st, &edit(1), false), Base::Unknown);
    assert_eq!(base_of(&o, &st, &edit(2), true), Base::Unknown);
    // Base 0 on an order this device did not create stays 0.
    assert_eq!(base_of(&o, &st, &edit(0), true), Base::Known(0));
    let create = mutation(&t1, id, MutationKind::Create, 0, vec![]);
    assert_eq!(base_of(&o, &st, &create, false), Base::Known(0));
}

#[test]
fn an_unknown_base_conflicts_on_every_field_another_device_set() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    // The technician's own change at v2, then the dispatcher's at v3.
    let own = mutation(
        &t1,
        id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Priority(Priority::Urgent))],
    );
    assert!(matches!(s.push(&own, &t1), Decision::Apply(_)));
    let theirs = mutation(
        &d,
        id,
        MutationKind::Update,
        2,
        vec![Op::Set(SetOp::Title("After".into()))],
    );
    assert!(matches!(s.push(&theirs, &d), Decision::Apply(_)));
    // A base of the current number, but from another epoch: title (the dispatcher's)
    // conflicts, priority (the technician's own) applies.
    let mut m = mutation(
        &t1,
        id,
        MutationKind::Update,
        3,
        vec![
            Op::Set(SetOp::Title("Lost timeline".into())),
            Op::Set(SetOp::Priority(Priority::Low)),
        ],
    );
    m.base_epoch = Some("before-the-restore".into());
    let o = s.order().clone();
    let cur = Current {
        order: &o,
        stamps: &s.stamps,
        base: base_of(&o, &s.stamps, &m, false),
        at_base: None,
        ever_assigned: false,
    };
    let Decision::Apply(a) = merge(Some(cur), &m, &t1) else {
        panic!("applies with a conflict")
    };
    assert_eq!(a.fates, vec![OpFate::Conflict, OpFate::Applied]);
    assert_eq!(a.order.title, "After");
    assert_eq!(a.order.priority, Priority::Low);
}

#[test]
fn a_push_with_an_unknown_base_on_an_order_once_theirs_is_held_not_refused() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    let reassign = mutation(
        &d,
        id,
        MutationKind::Assign,
        1,
        vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
    );
    assert!(matches!(s.push(&reassign, &d), Decision::Apply(_)));
    let m = mutation(
        &t1,
        id,
        MutationKind::Update,
        7,
        vec![Op::Set(SetOp::Title("x".into()))],
    );
    let o = s.order().clone();
    for (ever, held) in [(true, true), (false, false)] {
        let cur = Current {
            order: &o,
            stamps: &s.stamps,
            base: Base::Unknown,
            at_base: None,
            ever_assigned: ever,
        };
        let d = merge(Some(cur), &m, &t1);
        assert_eq!(
            matches!(
                d,
                Decision::HoldWhole {
                    kind: ConflictKind::Reassigned,
                    ..
                }
            ),
            held,
            "{d:?}"
        );
    }
}

#[test]
fn an_edit_on_an_unacknowledged_own_create_has_that_create_as_its_base() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &t1, "tech1");
    let reassign = mutation(
        &d,
        id,
        MutationKind::Assign,
        1,
        vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
    );
    assert!(matches!(s.push(&reassign, &d), Decision::Apply(_)));
    let m = mutation(
        &t1,
        id,
        MutationKind::Update,
        0,
        vec![Op::Set(SetOp::Title("x".into()))],
    );
    assert_eq!(base_of(s.order(), &s.stamps, &m, true), Base::Known(1));
    assert!(matches!(
        s.push(&m, &t1),
        Decision::HoldWhole {
            kind: ConflictKind::Reassigned,
            ..
        }
    ));
}

#[test]
fn a_resolution_withholds_a_field_changed_after_the_person_looked() {
    let mut s = Server::default();
    let d = dispatcher();
    let t1 = tech(1, "tech1");
    let id = created(&mut s, &d, "tech1");
    let m = mutation(
        &d,
        id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Title("Seen".into()))],
    );
    assert!(matches!(s.push(&m, &d), Decision::Apply(_)));
    let record = ConflictRecord {
        id: Uuid::from_u128(77),
        version: 1,
        status: RecordStatus::Open,
        kind: ConflictKind::Fields,
        order_id: id,
        order_number: None,
        assignee: Some("tech1".into()),
        username: "tech1".into(),
        device_id: t1.device_id,
        created_at: t0(),
        device_time: None,
        fields: vec![
            ConflictField {
                field: "title".into(),
                device: SetOp::Title("Mine".into()),
                server: Some(SetOp::Title("Seen".into())),
                base: None,
                server_set: None,
            },
            ConflictField {
                field: "description".into(),
                device: SetOp::Description("Mine too".into()),
                server: Some(SetOp::Description(String::new())),
                base: None,
                server_set: None,
            },
        ],
        held_by: None,
        mutation: mutation(&t1, id, MutationKind::Update, 1, vec![]),
        resolution: None,
    };
    // Someone retitles after the person looked.
    let later = mutation(
        &d,
        id,
        MutationKind::Update,
        2,
        vec![Op::Set(SetOp::Title("Newer".into()))],
    );
    assert!(matches!(s.push(&later, &d), Decision::Apply(_)));
    let r = record.resolve_mutation(
        &crate::wire::ResolutionChoice::AcceptDevice,
        Uuid::now_v7(),
        d.device_id,
        t0(),
    );
    assert_eq!(r.seen.len(), 2, "the record's server side is what was seen");
    let cur = Current {
        order: s.order(),
        stamps: &s.stamps,
        base: Base::Known(0),
        at_base: None,
        ever_assigned: false,
    };
    let ResolveDecision::Resolved(done) =
        resolve(Resolvable::Conflict(&record), Some(cur), &r, &d, t0())
    else {
        panic!("resolves")
    };
    assert_eq!(done.order.title, "Newer", "not overwritten");
    assert_eq!(
        done.order.description, "Mine too",
        "the unchanged field applies"
    );
    assert_eq!(done.conflicts.len(), 1);
    assert_eq!(done.conflicts[0].server, Some(SetOp::Title("Newer".into())));
    assert_eq!(done.conflicts[0].base, Some(SetOp::Title("Seen".into())));
    assert_eq!(done.resolution.outcome, ResolutionOutcome::Merged);
}

/// Found by the `merge` fuzz target (issue 17 item 2; fuzz/src/merge.rs), replayed here
/// as the case it decoded to: a create whose title is set four times to "" and then to
/// "Pump". Only the last `set` of a field counts, and the fates must say so: the earlier
/// ones were reported `Applied` although their value is not on the new row, so a
/// reader of the fates would believe an empty title had been written.
#[test]
fn a_create_reports_earlier_sets_of_the_same_field_as_superseded_not_applied() {
    let admin = Actor {
        username: "tech1".into(),
        role: Role::Admin,
        device_id: dev(1),
    };
    let mut ops: Vec<Op> = (0..4)
        .map(|_| Op::Set(SetOp::Title(String::new())))
        .collect();
    ops.push(Op::Set(SetOp::Title("Pump".into())));
    let m = mutation(&admin, Uuid::from_u128(0x0D), MutationKind::Create, 0, ops);
    let Decision::Apply(a) = merge(None, &m, &admin) else {
        panic!("a valid create applies");
    };
    assert_eq!(a.order.title, "Pump");
    assert_eq!(
        a.fates,
        vec![
            OpFate::Superseded,
            OpFate::Superseded,
            OpFate::Superseded,
            OpFate::Superseded,
            OpFate::Applied
        ]
    );
}
