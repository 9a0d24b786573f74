//! How operations change a work order, and which mutations are allowed on which order.
//!
//! `apply_ops` is the mechanical part (used for optimistic local edits, for rebasing
//! pending work on pulled rows, and by the server). `apply_mutation` adds the rules of
//! the action: the status machine, what a completion needs, the field rules.

use uuid::Uuid;

use crate::domain::WorkOrder;
use crate::mutation::{EntityKind, ListItem, ListName, Mutation, MutationKind, Op, SetOp};
use crate::status::Status;
use crate::validate::{validate_completion, validate_order, ValidationErrors};

/// An operation that cannot apply to the order it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("checklist item {0:?} does not exist on this order")]
    UnknownChecklistItem(String),
    #[error("time entry {0} does not exist on this order")]
    UnknownTimeEntry(Uuid),
}

impl ApplyError {
    pub fn into_validation(self) -> ValidationErrors {
        let field = match &self {
            ApplyError::UnknownChecklistItem(id) => format!("checklist.{id}"),
            ApplyError::UnknownTimeEntry(id) => format!("time_entries.{id}"),
        };
        ValidationErrors::single(field, "unknown_item", self.to_string())
    }
}

fn upsert<T>(list: &mut Vec<T>, item: T, same: impl Fn(&T) -> bool) {
    match list.iter_mut().find(|x| same(x)) {
        Some(slot) => *slot = item,
        None => list.push(item),
    }
}

/// Apply one operation. List adds are upserts by item id ("add wins"); removing an item
/// that is already gone does nothing; a note with an id already present is not added
/// twice.
pub fn apply_op(order: &mut WorkOrder, op: &Op) -> Result<(), ApplyError> {
    match op {
        Op::Set(set) => match set {
            SetOp::Title(v) => order.title = v.clone(),
            SetOp::Description(v) => order.description = v.clone(),
            SetOp::Priority(v) => order.priority = *v,
            SetOp::Status(v) => order.status = *v,
            SetOp::Customer(v) => order.customer = v.clone(),
            SetOp::Site(v) => order.site = v.clone(),
            SetOp::Equipment(v) => order.equipment = v.clone(),
            SetOp::Scheduled(v) => order.scheduled = v.clone(),
            SetOp::Assignee(v) => order.assignee = v.clone(),
            SetOp::Signature(v) => order.signature = v.clone(),
            SetOp::CompletedAt(v) => order.completed_at = *v,
            SetOp::ChecklistDone { item_id, done } => {
                let item = order
                    .checklist
                    .iter_mut()
                    .find(|i| &i.id == item_id)
                    .ok_or_else(|| ApplyError::UnknownChecklistItem(item_id.clone()))?;
                item.done = *done;
            }
            SetOp::TimeEntryEnded { entry_id, ended_at } => {
                let entry = order
                    .time_entries
                    .iter_mut()
                    .find(|t| &t.id == entry_id)
                    .ok_or(ApplyError::UnknownTimeEntry(*entry_id))?;
                entry.ended_at = Some(*ended_at);
            }
        },
        Op::Add(item) => match item {
            ListItem::Checklist(c) => upsert(&mut order.checklist, c.clone(), |x| x.id == c.id),
            ListItem::PartsUsed(p) => upsert(&mut order.parts_used, p.clone(), |x| x.id == p.id),
            ListItem::Photos(p) => upsert(&mut order.photos, p.clone(), |x| x.hash == p.hash),
            ListItem::TimeEntries(t) => {
                upsert(&mut order.time_entries, t.clone(), |x| x.id == t.id)
            }
        },
        Op::Remove { list, item_id } => match list {
            ListName::Checklist => order.checklist.retain(|x| &x.id != item_id),
            ListName::PartsUsed => order.parts_used.retain(|x| &x.id.to_string() != item_id),
            ListName::Photos => order.photos.retain(|x| &x.hash != item_id),
            ListName::TimeEntries => order.time_entries.retain(|x| &x.id.to_string() != item_id),
        },
        Op::AppendNote { note } => {
            if !order.notes.iter().any(|n| n.id == note.id) {
                order.notes.push(note.clone());
            }
        }
    }
    Ok(())
}

/// Apply operations in order; stops at the first that cannot apply.
pub fn apply_ops(order: &mut WorkOrder, ops: &[Op]) -> Result<(), ApplyError> {
    ops.iter().try_for_each(|op| apply_op(order, op))
}

fn status_set_by(ops: &[Op]) -> Option<Status> {
    ops.iter().rev().find_map(|op| match op {
        Op::Set(SetOp::Status(s)) => Some(*s),
        _ => None,
    })
}

/// Check a work-order mutation against the order it applies to (`None` when the order
/// does not exist yet) and return the order as it would be after it. Both the device
/// (before saving) and the server (before applying) run this; it writes nothing.
pub fn apply_mutation(
    before: Option<&WorkOrder>,
    m: &Mutation,
) -> Result<WorkOrder, ValidationErrors> {
    if m.entity != EntityKind::WorkOrder {
        return Err(ValidationErrors::single(
            "entity",
            "invalid",
            format!("{} is not a work-order change", m.entity.as_str()),
        ));
    }
    if m.ops.is_empty() {
        return Err(ValidationErrors::single(
            "ops",
            "required",
            "the change contains no operations",
        ));
    }
    let mut after = match (m.kind, before) {
        (MutationKind::Create, None) => WorkOrder::blank(m.entity_id),
        (MutationKind::Create, Some(_)) => {
            return Err(ValidationErrors::single(
                "id",
                "already_exists",
                "a work order with this id already exists",
            ))
        }
        (_, None) => {
            return Err(ValidationErrors::single(
                "id",
                "unknown_entity",
                "this work order does not exist",
            ))
        }
        (_, Some(b)) => b.clone(),
    };
    let from = after.status;
    apply_ops(&mut after, &m.ops).map_err(ApplyError::into_validation)?;
    let requested = status_set_by(&m.ops);

    match m.kind {
        MutationKind::Create => {
            if after.status.is_terminal() {
                return Err(ValidationErrors::single(
                    "status",
                    "invalid_transition",
                    "a new order cannot start completed or cancelled",
                ));
            }
        }
        MutationKind::Update | MutationKind::Assign => {
            if from.is_terminal() {
                let only_notes = m.ops.iter().all(|op| matches!(op, Op::AppendNote { .. }));
                let reopen = from == Status::Cancelled && after.status == Status::Scheduled;
                if !only_notes && !reopen {
                    return Err(ValidationErrors::single(
                        "status",
                        "order_closed",
                        format!("the order is {from}; only notes can be added"),
                    ));
                }
            }
            if let Some(to) = requested {
                if !from.can_edit_to(to) {
                    let hint = match to {
                        Status::Completed => " (use complete)",
                        Status::Cancelled => " (use cancel)",
                        _ => "",
                    };
                    return Err(ValidationErrors::single(
                        "status",
                        "invalid_transition",
                        format!("cannot change status from {from} to {to}{hint}"),
                    ));
                }
            }
            if m.kind == MutationKind::Assign
                && !m
                    .ops
                    .iter()
                    .all(|op| matches!(op, Op::Set(SetOp::Assignee(_) | SetOp::Scheduled(_))))
            {
                return Err(ValidationErrors::single(
                    "ops",
                    "invalid",
                    "an assignment may only change the assignee and the schedule",
                ));
            }
        }
        MutationKind::Complete => {
            if !from.can_complete() {
                return Err(ValidationErrors::single(
                    "status",
                    "invalid_transition",
                    format!("an order that is {from} cannot be completed"),
                ));
            }
            if requested.is_some_and(|s| s != Status::Completed) {
                return Err(ValidationErrors::single(
                    "status",
                    "invalid_transition",
                    "a completion can only set the status to completed",
                ));
            }
            after.status = Status::Completed;
            if after.completed_at.is_none() {
                after.completed_at = Some(m.device_time);
            }
            validate_completion(&after)?;
        }
        MutationKind::Cancel => {
            if !from.can_cancel() {
                return Err(ValidationErrors::single(
                    "status",
                    "invalid_transition",
                    format!("an order that is {from} cannot be cancelled"),
                ));
            }
            after.status = Status::Cancelled;
        }
        MutationKind::Resolve => {
            return Err(ValidationErrors::single(
                "kind",
                "invalid",
                "a resolution applies to a conflict or failed sync, not to an order",
            ))
        }
    }
    validate_order(&after)?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;
    use crate::mutation::FORMAT_VERSION;
    use chrono::{DateTime, Utc};

    fn now() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid timestamp")
    }

    fn mutation(id: Uuid, kind: MutationKind, ops: Vec<Op>) -> Mutation {
        Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: Uuid::nil(),
            entity: EntityKind::WorkOrder,
            entity_id: id,
            kind,
            base_version: 0,
            format: FORMAT_VERSION,
            device_time: now(),
            ops,
            base_epoch: None,
            reason: None,
            seen: Vec::new(),
        }
    }

    fn created() -> WorkOrder {
        let id = Uuid::now_v7();
        apply_mutation(
            None,
            &mutation(
                id,
                MutationKind::Create,
                vec![
                    Op::Set(SetOp::Title("Fix".into())),
                    Op::Add(ListItem::Checklist(ChecklistItem {
                        id: "c1".into(),
                        label: "Test".into(),
                        required: true,
                        done: false,
                    })),
                ],
            ),
        )
        .expect("valid create")
    }

    #[test]
    fn a_create_builds_the_order_from_its_ops() {
        let o = created();
        assert_eq!(o.title, "Fix");
        assert_eq!(o.status, Status::Scheduled);
        assert_eq!(o.version, 0);
    }

    #[test]
    fn an_update_cannot_complete() {
        let o = created();
        let m = mutation(
            o.id,
            MutationKind::Update,
            vec![Op::Set(SetOp::Status(Status::Completed))],
        );
        let e = apply_mutation(Some(&o), &m).expect_err("refused");
        assert_eq!(e.errors[0].code, "invalid_transition");
    }

    #[test]
    fn a_completion_needs_its_evidence_and_then_completes() {
        let o = created();
        let bare = mutation(
            o.id,
            MutationKind::Complete,
            vec![Op::Set(SetOp::Title("Fix".into()))],
        );
        let e = apply_mutation(Some(&o), &bare).expect_err("no evidence");
        let fields: Vec<_> = e.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["checklist.c1", "signature"]);

        let full = mutation(
            o.id,
            MutationKind::Complete,
            vec![
                Op::Set(SetOp::ChecklistDone {
                    item_id: "c1".into(),
                    done: true,
                }),
                Op::Set(SetOp::Signature(Some(Signature {
                    hash: "b".repeat(64),
                    signer: "Grace".into(),
                }))),
            ],
        );
        let done = apply_mutation(Some(&o), &full).expect("complete");
        assert_eq!(done.status, Status::Completed);
        assert_eq!(done.completed_at, Some(now()));
    }

    #[test]
    fn list_ops_are_idempotent_and_removing_a_missing_item_does_nothing() {
        let mut o = created();
        let part = ListItem::PartsUsed(PartUsed {
            id: Uuid::nil(),
            sku: "A".into(),
            quantity: Quantity(1000),
        });
        apply_ops(&mut o, &[Op::Add(part.clone()), Op::Add(part)]).expect("apply");
        assert_eq!(o.parts_used.len(), 1);
        let remove = Op::Remove {
            list: ListName::PartsUsed,
            item_id: "nope".into(),
        };
        apply_ops(&mut o, &[remove]).expect("apply");
        assert_eq!(o.parts_used.len(), 1);
    }

    #[test]
    fn a_closed_order_takes_only_notes() {
        let mut o = created();
        o.status = Status::Completed;
        let edit = mutation(
            o.id,
            MutationKind::Update,
            vec![Op::Set(SetOp::Title("x".into()))],
        );
        assert!(apply_mutation(Some(&o), &edit).is_err());
        let note = mutation(
            o.id,
            MutationKind::Update,
            vec![Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::nil(),
                    author: "t".into(),
                    text: "after the fact".into(),
                    at: now(),
                },
            }],
        );
        assert!(apply_mutation(Some(&o), &note).is_ok());
    }
}
