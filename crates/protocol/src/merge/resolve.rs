//! Resolving: a person's decision on a conflict or failed sync, applied to the order
//! as the server holds it now.
//!
//! A resolution is authoritative about what the person saw, so it skips the conflict
//! checks of [`super::merge`] (and, for staff, its edit status machine; a technician's
//! resolution sets only the conflict's fields and is held to the status machine, since
//! a technician can open a conflict at will by pushing on an old base); but a field whose value
//! changed after the person looked (its current value differs from the one in the
//! resolution's `seen`, or, from a protocol 1 device, from the record's server side)
//! is not overwritten: that `set` becomes a new conflict. what it shares with a push (the envelope check, field
//! stamps, stock deltas, "unchanged bumps no version") is the parent module's, so each
//! rule has one home. Left out on purpose, as for a push: storage and the clock (the
//! caller passes `now`).

use uuid::Uuid;

use super::{
    check_envelope, current_as_set, restamp, same_ignoring_version, stock_deltas,
    technician_reopens, Actor, Current, FieldStamp, FieldStamps, MergeRejected, StockDelta,
};
use crate::apply::{apply_mutation, apply_ops};
use crate::domain::WorkOrder;
use crate::mutation::{EntityKind, Mutation, MutationKind, Op, SetOp};
use crate::status::Status;
use crate::validate::{validate_completion, validate_order};
use crate::wire::{
    ConflictField, ConflictRecord, ErrorCode, FailedSyncRecord, RecordStatus, Resolution,
    ResolutionChoice, ResolutionOutcome,
};

/// The result of a resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum ResolveDecision {
    /// The record is settled; the order takes the new row (when `changed`).
    Resolved(Box<Resolved>),
    /// Someone settled it first.
    AlreadyResolved(Resolution),
    Reject(MergeRejected),
}

/// A settled conflict or failed sync and its effect on the order.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub resolution: Resolution,
    pub order: WorkOrder,
    pub stamps: FieldStamps,
    pub changed: bool,
    pub stock: Vec<StockDelta>,
    /// The `set`s not applied because their field changed after the person looked:
    /// a new conflict for the order (empty when none).
    pub conflicts: Vec<ConflictField>,
}

/// What is being resolved.
#[derive(Debug, Clone, Copy)]
pub enum Resolvable<'a> {
    Conflict(&'a ConflictRecord),
    FailedSync(&'a FailedSyncRecord),
}

/// Apply a person's decision (`m`, a `resolve` mutation) on a conflict or failed sync,
/// to the order as it is now. A resolution is authoritative: its ops are applied
/// without conflict checks or the edit status machine (a person looked at both sides),
/// but the result must still be a valid order, and a completed one must carry its
/// evidence. A `set` of a field whose current value is neither what the person saw
/// nor the chosen value is withheld ([`Resolved::conflicts`]). `now` is the server's
/// time, recorded as the decision time.
pub fn resolve(
    target: Resolvable<'_>,
    current: Option<Current<'_>>,
    m: &Mutation,
    actor: &Actor,
    now: chrono::DateTime<chrono::Utc>,
) -> ResolveDecision {
    if let Err(r) = check_envelope(m, actor) {
        return ResolveDecision::Reject(r);
    }
    if m.kind != MutationKind::Resolve {
        return ResolveDecision::Reject(MergeRejected::new(
            ErrorCode::InvalidBody,
            "a change to a conflict or failed sync must be a resolve",
        ));
    }
    let (status, version, existing, is_conflict, assignee_then) = match target {
        Resolvable::Conflict(c) => (c.status, c.version, &c.resolution, true, c.assignee.clone()),
        Resolvable::FailedSync(f) => (
            f.status,
            f.version,
            &f.resolution,
            false,
            f.assignee.clone(),
        ),
    };
    if status == RecordStatus::Resolved {
        if let Some(r) = existing {
            return ResolveDecision::AlreadyResolved(r.clone());
        }
    }
    let technician = !actor.role.sees_all_orders();
    let Some(cur) = current else {
        // An order that never existed (a refused create): only dismissal makes sense.
        if technician {
            return ResolveDecision::Reject(MergeRejected::new(
                ErrorCode::Forbidden,
                "only a dispatcher may settle this",
            ));
        }
        if !m.ops.is_empty() {
            return ResolveDecision::Reject(MergeRejected::new(
                ErrorCode::UnknownEntity,
                "the order does not exist; the failed sync can only be dismissed",
            ));
        }
        let resolution = Resolution {
            outcome: ResolutionOutcome::Dismissed,
            decided_by: actor.username.clone(),
            decided_at: now,
            mutation_id: m.mutation_id,
            ops: Vec::new(),
            order_version: None,
            reason: m.reason.clone(),
        };
        let _ = assignee_then;
        let blank = WorkOrder::blank(Uuid::nil());
        return ResolveDecision::Resolved(Box::new(Resolved {
            resolution,
            order: blank,
            stamps: FieldStamps::new(),
            changed: false,
            stock: Vec::new(),
            conflicts: Vec::new(),
        }));
    };
    if technician {
        let mine = cur.order.assignee.as_deref() == Some(actor.username.as_str());
        if !is_conflict || !mine {
            return ResolveDecision::Reject(MergeRejected::new(
                ErrorCode::Forbidden,
                "you may settle only the conflicts of orders assigned to you",
            ));
        }
        if m.ops
            .iter()
            .any(|op| matches!(op, Op::Set(SetOp::Assignee(_))))
        {
            return ResolveDecision::Reject(MergeRejected::new(
                ErrorCode::Forbidden,
                "a technician may not reassign an order; ask a dispatcher",
            ));
        }
        if let Resolvable::Conflict(c) = target {
            if let Err(r) = technician_may_apply(c, cur.order, &m.ops) {
                return ResolveDecision::Reject(r);
            }
        }
    }
    if m.base_version != version {
        return ResolveDecision::Reject(MergeRejected::new(
            ErrorCode::VersionMismatch,
            format!(
                "the resolution expects version {} but the record is at {version}",
                m.base_version
            ),
        ));
    }
    let order = cur.order;
    // What the person saw: the device says (protocol 2); from a protocol 1 device, the
    // record's server side is what its review screen showed.
    let seen = match target {
        _ if !m.seen.is_empty() => m.seen.clone(),
        Resolvable::Conflict(c) => c.seen_for(&m.ops),
        Resolvable::FailedSync(_) => Vec::new(),
    };
    let (ops, conflicts) = withhold_changed_since_seen(order, &m.ops, &seen);
    let mut after = order.clone();
    if let Err(e) = apply_ops(&mut after, &ops) {
        return ResolveDecision::Reject(MergeRejected::validation(e.into_validation()));
    }
    if let Err(e) = validate_order(&after) {
        return ResolveDecision::Reject(MergeRejected::validation(e));
    }
    if after.status == Status::Completed && order.status != Status::Completed {
        if let Err(e) = validate_completion(&after) {
            return ResolveDecision::Reject(MergeRejected::validation(e));
        }
    }
    let changed = !same_ignoring_version(order, &mut after);
    after.version = if changed {
        order.version + 1
    } else {
        order.version
    };
    let mut stamps = cur.stamps.clone();
    if changed {
        restamp(
            &mut stamps,
            Some(order),
            &after,
            FieldStamp {
                version: after.version,
                device_id: m.device_id,
            },
        );
    }
    let outcome = match target {
        Resolvable::FailedSync(_) if m.ops.is_empty() => ResolutionOutcome::Dismissed,
        Resolvable::FailedSync(_) => ResolutionOutcome::Applied,
        Resolvable::Conflict(_) if m.ops.is_empty() => ResolutionOutcome::KeptServer,
        Resolvable::Conflict(c) => {
            if conflicts.is_empty()
                && m.ops == c.resolution_ops(&crate::wire::ResolutionChoice::AcceptDevice)
            {
                ResolutionOutcome::AcceptedDevice
            } else {
                ResolutionOutcome::Merged
            }
        }
    };
    let stock = stock_deltas(Some(order), &after);
    ResolveDecision::Resolved(Box::new(Resolved {
        resolution: Resolution {
            outcome,
            decided_by: actor.username.clone(),
            decided_at: now,
            mutation_id: m.mutation_id,
            ops,
            order_version: changed.then_some(after.version),
            reason: m.reason.clone(),
        },
        order: after,
        stamps,
        changed,
        stock,
        conflicts,
    }))
}

/// What a technician's resolution of conflict `c` may do to `order`: keep the server's
/// side (no ops), take the held change whole (exactly the record's accept-the-device
/// ops), or set the conflict's own fields to the device's, the server's or an edited
/// value (the Conflicts screen's merged text). Either way the result must be a change
/// the technician could have pushed as an edit (or, for a held completion, as that
/// completion): the status machine applies, so a resolution never cancels, reopens or
/// un-completes an order.
fn technician_may_apply(
    c: &ConflictRecord,
    order: &WorkOrder,
    ops: &[Op],
) -> Result<(), MergeRejected> {
    if ops.is_empty() {
        return Ok(());
    }
    let whole = c.kind.holds_whole_mutation()
        && ops == c.resolution_ops(&ResolutionChoice::AcceptDevice).as_slice();
    if !whole {
        let outside = ops.iter().find(|op| match op {
            Op::Set(set) => {
                let key = set.field_key();
                !c.fields.iter().any(|f| f.field == key)
            }
            _ => true,
        });
        if let Some(op) = outside {
            let what = match op {
                Op::Set(set) => format!("the field {}", set.field_key()),
                _ => "anything but the conflict's fields".to_owned(),
            };
            return Err(MergeRejected::new(
                ErrorCode::Forbidden,
                format!(
                    "a technician's resolution may set only the fields of the conflict ({}), not {what}; ask a dispatcher",
                    c.fields.iter().map(|f| f.field.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let kind = if whole && c.mutation.kind == MutationKind::Complete {
        MutationKind::Complete
    } else {
        MutationKind::Update
    };
    let as_edit = Mutation {
        entity: EntityKind::WorkOrder,
        entity_id: order.id,
        kind,
        ops: ops.to_vec(),
        ..c.mutation.clone()
    };
    let after = apply_mutation(Some(order), &as_edit).map_err(MergeRejected::validation)?;
    technician_reopens(order, &after)
}

/// Split a resolution's ops into those that apply and the `set`s withheld because
/// their field's current value differs both from what the person saw (`seen`, by field
/// key) and from the chosen value. A `set` with no seen value is not checked.
fn withhold_changed_since_seen(
    order: &WorkOrder,
    ops: &[Op],
    seen: &[SetOp],
) -> (Vec<Op>, Vec<ConflictField>) {
    let mut kept = Vec::with_capacity(ops.len());
    let mut withheld = Vec::new();
    for op in ops {
        if let Op::Set(set) = op {
            let key = set.field_key();
            let saw = seen.iter().find(|s| s.field_key() == key);
            let now = current_as_set(order, set);
            if let Some(saw) = saw {
                if now.as_ref() != Some(saw) && now.as_ref() != Some(set) {
                    withheld.push(ConflictField {
                        field: key,
                        device: set.clone(),
                        server: now,
                        base: Some(saw.clone()),
                        server_set: None,
                    });
                    continue;
                }
            }
        }
        kept.push(op.clone());
    }
    (kept, withheld)
}
