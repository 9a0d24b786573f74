//! The merge rules (`outpost_protocol::merge`) on cases built from the fuzzer's bytes:
//! an order as the server holds it (any status, checklist, timers, parts, assignee),
//! field stamps from three devices, the order at the base (or none), a base known or
//! unknown, and a mutation of any kind and ops by any role. The bytes choose among small
//! pools of ids and values, so that ops meet the order's items and each other.
//!
//! Checked for every case:
//! - no panic, and the same inputs give the same decision (the server and a device
//!   predicting it must agree);
//! - `at_base` is only looked at when `needs_base` says so (the server skips loading
//!   the old row otherwise);
//! - applied: one fate per op; no `set` dropped silently: each is applied (its value
//!   is on the new row unless a later op of the mutation touches the same field),
//!   unchanged (the value was already there), held in the conflict list with its value,
//!   or superseded by a later `set` of the same field; the version moves by one exactly
//!   when the row changed, every changed field is stamped with it and nothing else is;
//!   the stock deltas are the parts lines' difference;
//! - held whole: every `set` of the mutation is in the held fields;
//! - refused: a message a person can read.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use outpost_protocol::merge::{
    merge as merge_fn, needs_base, scalar_fields, Actor, Base, Current, Decision, FieldStamp,
    FieldStamps, OpFate,
};
use outpost_protocol::mutation::{EntityKind, ListItem};
use outpost_protocol::{
    ChecklistItem, ListName, Mutation, MutationKind, NoteEntry, Op, PartUsed, PhotoRef, Priority,
    Quantity, Role, SetOp, Signature, Status, TimeEntry, WorkOrder, FORMAT_VERSION,
};
use uuid::Uuid;

const ORDER: Uuid = Uuid::from_u128(0x0D);
const USERS: [&str; 3] = ["tech1", "tech2", "dispatcher"];
const ITEMS: [&str; 3] = ["a", "b", "c"];
const TEXTS: [&str; 4] = ["", "Pump", "Pump 2", "  "];

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default()
}

fn device(u: &mut Unstructured<'_>) -> Result<Uuid> {
    Ok(Uuid::from_u128(0xD0 + u.int_in_range(0..=2u128)?))
}

fn time(u: &mut Unstructured<'_>) -> Result<DateTime<Utc>> {
    Ok(t0() + Duration::minutes(u.int_in_range(0..=600i64)?))
}

fn pick<T: Copy>(u: &mut Unstructured<'_>, from: &[T]) -> Result<T> {
    u.choose(from).copied()
}

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(pick(u, &TEXTS)?.to_owned())
}

fn user(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(if u.ratio(1, 4)? {
        None
    } else {
        Some(pick(u, &USERS)?.to_owned())
    })
}

fn small_id(u: &mut Unstructured<'_>, base: u128) -> Result<Uuid> {
    Ok(Uuid::from_u128(base + u.int_in_range(0..=2u128)?))
}

fn photo_hash(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(format!("{:064x}", u.int_in_range(1..=3u8)?))
}

fn signature(u: &mut Unstructured<'_>) -> Result<Option<Signature>> {
    Ok(if u.arbitrary()? {
        Some(Signature {
            hash: photo_hash(u)?,
            signer: text(u)?,
        })
    } else {
        None
    })
}

fn item(u: &mut Unstructured<'_>) -> Result<ListItem> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => ListItem::Checklist(ChecklistItem {
            id: pick(u, &ITEMS)?.to_owned(),
            label: text(u)?,
            required: u.arbitrary()?,
            done: u.arbitrary()?,
        }),
        1 => ListItem::PartsUsed(PartUsed {
            id: small_id(u, 0xA0)?,
            sku: pick(u, &["S1", "S2", ""])?.to_owned(),
            quantity: Quantity(u.int_in_range(-1000..=5000i64)?),
        }),
        2 => ListItem::Photos(PhotoRef {
            hash: photo_hash(u)?,
            caption: text(u)?,
            media_type: pick(u, &["image/jpeg", "text/plain"])?.to_owned(),
        }),
        _ => ListItem::TimeEntries(TimeEntry {
            id: small_id(u, 0xB0)?,
            started_at: time(u)?,
            ended_at: if u.arbitrary()? { Some(time(u)?) } else { None },
            note: text(u)?,
        }),
    })
}

fn set_op(u: &mut Unstructured<'_>) -> Result<SetOp> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => SetOp::Title(text(u)?),
        1 => SetOp::Description(text(u)?),
        2 => SetOp::Priority(pick(u, &Priority::ALL)?),
        3 => SetOp::Status(pick(u, &Status::ALL)?),
        4 => SetOp::Assignee(user(u)?),
        5 => SetOp::Signature(signature(u)?),
        6 => SetOp::CompletedAt(if u.arbitrary()? { Some(time(u)?) } else { None }),
        7 => SetOp::ChecklistDone {
            item_id: pick(u, &ITEMS)?.to_owned(),
            done: u.arbitrary()?,
        },
        8 => SetOp::TimeEntryEnded {
            entry_id: small_id(u, 0xB0)?,
            ended_at: time(u)?,
        },
        _ => SetOp::Scheduled(None),
    })
}

fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=5 => Op::Set(set_op(u)?),
        6 | 7 => Op::Add(item(u)?),
        8 => {
            let list = pick(
                u,
                &[
                    ListName::Checklist,
                    ListName::PartsUsed,
                    ListName::Photos,
                    ListName::TimeEntries,
                ],
            )?;
            let item_id = match list {
                ListName::Checklist => pick(u, &ITEMS)?.to_owned(),
                ListName::PartsUsed => small_id(u, 0xA0)?.to_string(),
                ListName::Photos => photo_hash(u)?,
                ListName::TimeEntries => small_id(u, 0xB0)?.to_string(),
            };
            Op::Remove { list, item_id }
        }
        _ => Op::AppendNote {
            note: NoteEntry {
                id: small_id(u, 0xC0)?,
                author: pick(u, &USERS)?.to_owned(),
                text: text(u)?,
                at: time(u)?,
            },
        },
    })
}

/// An order the server could hold: a valid create, then some ops applied.
fn order(u: &mut Unstructured<'_>, version: u64) -> Result<WorkOrder> {
    let mut o = WorkOrder::blank(ORDER);
    o.title = "Pump".into();
    o.priority = pick(u, &Priority::ALL)?;
    o.status = pick(u, &Status::ALL)?;
    o.assignee = user(u)?;
    for _ in 0..u.int_in_range(0..=4u8)? {
        let _ = outpost_protocol::apply::apply_op(&mut o, &Op::Add(item(u)?));
    }
    o.signature = signature(u)?;
    if o.status == Status::Completed {
        o.completed_at = Some(time(u)?);
    }
    o.version = version;
    o.number = Some(7);
    Ok(o)
}

/// One generated case: the server's state and a push.
#[derive(Debug)]
pub struct Case {
    pub order: Option<WorkOrder>,
    pub stamps: FieldStamps,
    pub at_base: Option<WorkOrder>,
    pub base: Base,
    pub ever_assigned: bool,
    pub m: Mutation,
    pub actor: Actor,
}

impl Case {
    pub fn arbitrary(u: &mut Unstructured<'_>) -> Result<Case> {
        let version = u.int_in_range(1..=6u64)?;
        let exists = u.ratio(7, 8)?;
        let order_now = order(u, version)?;
        let mut stamps = FieldStamps::new();
        for set in scalar_fields(&order_now) {
            stamps.insert(
                set.field_key(),
                FieldStamp {
                    version: u.int_in_range(1..=version)?,
                    device_id: device(u)?,
                },
            );
        }
        let base = if u.ratio(1, 5)? {
            Base::Unknown
        } else {
            Base::Known(u.int_in_range(0..=version)?)
        };
        // What the server can hold for the base: the order at that version (the order
        // itself when the base is current), or nothing (never for version 0, an
        // unknown base, or a version it has forgotten).
        let at_base = match base {
            Base::Known(b) if b == version && u.arbitrary()? => Some(order_now.clone()),
            Base::Known(b) if b >= 1 && u.arbitrary()? => Some(order(u, b)?),
            _ => None,
        };
        let kind = pick(
            u,
            &[
                MutationKind::Update,
                MutationKind::Update,
                MutationKind::Complete,
                MutationKind::Assign,
                MutationKind::Cancel,
                MutationKind::Create,
                MutationKind::Resolve,
            ],
        )?;
        let device_id = device(u)?;
        let mut ops = Vec::new();
        for _ in 0..u.int_in_range(0..=6u8)? {
            ops.push(op(u)?);
        }
        let m = Mutation {
            mutation_id: Uuid::from_u128(0xE0),
            device_id,
            entity: if u.ratio(1, 16)? {
                EntityKind::Conflict
            } else {
                EntityKind::WorkOrder
            },
            entity_id: ORDER,
            kind,
            base_version: match base {
                Base::Known(b) => b,
                Base::Unknown => version + 1,
            },
            format: if u.ratio(1, 32)? { 2 } else { FORMAT_VERSION },
            device_time: time(u)?,
            ops,
            base_epoch: None,
            reason: None,
            seen: Vec::new(),
        };
        let role = pick(u, &[Role::Technician, Role::Dispatcher, Role::Admin])?;
        let actor = Actor {
            username: pick(u, &USERS[..2])?.to_owned(),
            role,
            device_id: if u.ratio(1, 16)? {
                Uuid::from_u128(0xDF)
            } else {
                device_id
            },
        };
        Ok(Case {
            order: exists.then_some(order_now),
            stamps,
            at_base,
            base,
            ever_assigned: u.arbitrary()?,
            m,
            actor,
        })
    }

    fn current(&self, at_base: bool) -> Option<Current<'_>> {
        self.order.as_ref().map(|order| Current {
            order,
            stamps: &self.stamps,
            base: self.base,
            at_base: if at_base { self.at_base.as_ref() } else { None },
            ever_assigned: matches!(self.base, Base::Unknown) && self.ever_assigned,
        })
    }

    pub fn decide(&self) -> Decision {
        merge_fn(self.current(true), &self.m, &self.actor)
    }
}

/// Whether an op other than a `set` of the same field touches what `set` writes (a
/// checklist item or timer added or removed, a completion's status and time).
fn touched_later(m: &Mutation, i: usize, set: &SetOp) -> bool {
    let later = &m.ops[i + 1..];
    let key = set.field_key();
    let by_action = match m.kind {
        MutationKind::Complete => matches!(key.as_str(), "status" | "completed_at"),
        MutationKind::Cancel => key == "status",
        _ => false,
    };
    by_action
        || later.iter().any(|op| match (op, set) {
            (Op::Add(ListItem::Checklist(c)), SetOp::ChecklistDone { item_id, .. }) => {
                c.id == *item_id
            }
            (
                Op::Remove {
                    list: ListName::Checklist,
                    item_id: r,
                },
                SetOp::ChecklistDone { item_id, .. },
            ) => r == item_id,
            (Op::Add(ListItem::TimeEntries(t)), SetOp::TimeEntryEnded { entry_id, .. }) => {
                t.id == *entry_id
            }
            (
                Op::Remove {
                    list: ListName::TimeEntries,
                    item_id: r,
                },
                SetOp::TimeEntryEnded { entry_id, .. },
            ) => *r == entry_id.to_string(),
            _ => false,
        })
}

/// Check every property of the module header on one case.
pub fn check(case: &Case) {
    let d = case.decide();
    assert_eq!(case.decide(), d, "the same push decided twice differently");
    if let (Some(order), Base::Known(_)) = (&case.order, case.base) {
        if !needs_base(order, &case.stamps, &case.m, &case.actor, case.base) {
            let without = merge_fn(case.current(false), &case.m, &case.actor);
            assert_eq!(
                without, d,
                "at_base changed a decision needs_base said it would not"
            );
        }
    }
    match &d {
        Decision::Apply(a) => {
            assert_eq!(a.fates.len(), case.m.ops.len(), "one fate per op");
            let before = case.order.as_ref();
            for (i, (op, fate)) in case.m.ops.iter().zip(&a.fates).enumerate() {
                let Op::Set(set) = op else { continue };
                match fate {
                    OpFate::Applied if !touched_later(&case.m, i, set) => {
                        let now = outpost_protocol::merge::current_as_set(&a.order, set);
                        // A technician's create is theirs whatever the body says.
                        let forced = a.created && matches!(set, SetOp::Assignee(_));
                        assert!(
                            forced || now.as_ref() == Some(set),
                            "an applied set is not on the new row: {set:?}, row has {now:?}"
                        );
                    }
                    OpFate::Conflict => assert!(
                        a.conflicts
                            .iter()
                            .any(|c| c.field == set.field_key() && c.device == *set),
                        "a set held in conflict is missing from the conflict list: {set:?}"
                    ),
                    OpFate::Superseded => assert!(
                        case.m.ops[i + 1..]
                            .iter()
                            .any(|o| matches!(o, Op::Set(s) if s.field_key() == set.field_key())),
                        "a set marked superseded has no later set of its field: {set:?}"
                    ),
                    _ => {}
                }
            }
            let held = a.fates.iter().filter(|f| **f == OpFate::Conflict).count();
            assert_eq!(held, a.conflicts.len(), "one conflict entry per held set");
            if let Some(b) = before {
                let expect = if a.changed { b.version + 1 } else { b.version };
                assert_eq!(a.order.version, expect, "the version moves once per change");
                if !a.changed {
                    assert_eq!(a.stamps, case.stamps, "no change, yet stamps moved");
                }
                let mut stock: BTreeMap<&str, i64> = BTreeMap::new();
                for p in &b.parts_used {
                    *stock.entry(&p.sku).or_default() += p.quantity.milli();
                }
                for p in &a.order.parts_used {
                    *stock.entry(&p.sku).or_default() -= p.quantity.milli();
                }
                stock.retain(|_, d| *d != 0);
                let got: BTreeMap<&str, i64> = a
                    .stock
                    .iter()
                    .map(|s| (s.sku.as_str(), s.delta_milli))
                    .collect();
                assert_eq!(got, stock, "stock deltas are the parts lines' difference");
                if a.changed {
                    for set in scalar_fields(&a.order) {
                        let key = set.field_key();
                        let was = outpost_protocol::merge::current_as_set(b, &set);
                        if was.as_ref() != Some(&set) {
                            assert_eq!(
                                a.stamps.get(&key).map(|s| s.version),
                                Some(a.order.version),
                                "a changed field {key} is not stamped with the new version"
                            );
                        }
                    }
                }
            }
        }
        Decision::HoldWhole { fields, .. } => {
            let sets = case
                .m
                .ops
                .iter()
                .filter(|o| matches!(o, Op::Set(_)))
                .count();
            assert_eq!(fields.len(), sets, "a held mutation keeps every set");
        }
        Decision::Reject(r) => assert!(!r.message.trim().is_empty(), "a refusal says why"),
    }
}

/// The fuzz target: a case from the bytes, checked.
pub fn merge(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(case) = Case::arbitrary(&mut u) {
        // To read a crash: run the target on its input with OUTPOST_FUZZ_PRINT=1.
        if std::env::var_os("OUTPOST_FUZZ_PRINT").is_some() {
            eprintln!("{case:#?}\ndecision: {:#?}", case.decide());
        }
        check(&case);
    }
}
