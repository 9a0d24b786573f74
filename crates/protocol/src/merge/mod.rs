//! The merge rules: how the server applies a pushed mutation to its current row.
//!
//! [`merge`] is one deterministic, pure function (no clock, no I/O): given the order as
//! the server holds it, the version and device of each field's last change, the order
//! as it was at the mutation's `base_version`, and who is pushing, it decides which
//! operations apply, which `set`s wait in an open conflict, or why the mutation is
//! refused. [`resolve`] does the same for a person's decision on a conflict or failed
//! sync. The server stores what these return; the device may run them to predict.
//!
//! The rules (DESIGN.md, "Push"):
//! - a `set` conflicts only if its field's last change is after `base_version`, came
//!   from another device, and the value differs from the current one; a `set` equal to
//!   the current value changes nothing and bumps no version;
//! - list ops and notes never conflict (add is an upsert; removing a gone item does
//!   nothing; a note id is kept once);
//! - a completion against an order cancelled or reassigned after the base by another
//!   device holds the whole completion in a conflict, and so does an edit (anything but
//!   notes alone) against such a cancellation; so does any push by a technician who was
//!   the assignee at the base but is not now. These holds are decided before any
//!   validation against the changed row (a completion is never refused for a checklist
//!   or status its maker could not see): the completion and its evidence are kept;
//! - technicians push only on orders assigned to them (now or at the base), never
//!   reassign or cancel; their new orders are assigned to them; dispatchers and
//!   administrators may push on any order;
//! - validation and the status machine are [`crate::apply::apply_mutation`], the same
//!   function the device runs before saving.
//!
//! Left out on purpose: idempotency, attachments' presence and stock arithmetic are the
//! server's (they need storage); this module reports the stock deltas to apply.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::apply::{apply_mutation, apply_ops};
use crate::domain::{Role, WorkOrder};
use crate::mutation::{EntityKind, Mutation, MutationKind, Op, SetOp, FORMAT_VERSION};
use crate::status::Status;
use crate::validate::{validate_completion, validate_order, FieldError, ValidationErrors};
use crate::wire::{
    ConflictField, ConflictKind, ConflictRecord, ErrorCode, FailedSyncRecord, RecordStatus,
    Resolution, ResolutionOutcome,
};

/// The version and device of a field's last change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldStamp {
    pub version: u64,
    pub device_id: Uuid,
}

/// Per field key ([`SetOp::field_key`]), its last change.
pub type FieldStamps = BTreeMap<String, FieldStamp>;

/// Who is pushing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub username: String,
    pub role: Role,
    pub device_id: Uuid,
}

/// The server's current state of an order.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    pub order: &'a WorkOrder,
    pub stamps: &'a FieldStamps,
    /// The order as it was at the mutation's `base_version`, when the server still has
    /// it (`None` for a base it never had or has forgotten).
    pub at_base: Option<&'a WorkOrder>,
}

/// What became of one operation of an applied mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpFate {
    /// Took effect.
    Applied,
    /// A `set` to the value already there: nothing to do.
    Unchanged,
    /// A `set` held in the open conflict.
    Conflict,
    /// A `set` followed by a later `set` of the same field in the same mutation: only
    /// the last one counts.
    Superseded,
}

/// A stock change a mutation causes: `delta` thousandths of `sku` (negative when parts
/// are used). Deltas commute, so the server adds them, never overwrites a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockDelta {
    pub sku: String,
    pub delta_milli: i64,
}

/// The mutation applies (possibly with some `set`s held in a conflict).
#[derive(Debug, Clone, PartialEq)]
pub struct MergeApplied {
    /// The order after the mutation; its version is bumped only if it changed.
    pub order: WorkOrder,
    pub stamps: FieldStamps,
    pub changed: bool,
    /// One per op of the mutation, in order.
    pub fates: Vec<OpFate>,
    /// The held `set`s (empty when nothing conflicts).
    pub conflicts: Vec<ConflictField>,
    pub stock: Vec<StockDelta>,
    pub created: bool,
}

/// A refusal a person can see (it becomes a failed sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRejected {
    pub code: ErrorCode,
    pub message: String,
    pub field_errors: Vec<FieldError>,
}

impl MergeRejected {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        MergeRejected {
            code,
            message: message.into(),
            field_errors: Vec::new(),
        }
    }

    fn validation(e: ValidationErrors) -> Self {
        MergeRejected {
            code: ErrorCode::ValidationFailed,
            message: e.summary(),
            field_errors: e.errors,
        }
    }
}

/// The decision for one mutation.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Apply(Box<MergeApplied>),
    /// Nothing applies; the whole mutation waits in an open conflict of this kind.
    HoldWhole {
        kind: ConflictKind,
        fields: Vec<ConflictField>,
    },
    Reject(MergeRejected),
}

/// Every scalar field key the order has, with its value as a `set` operation.
pub fn scalar_fields(order: &WorkOrder) -> Vec<SetOp> {
    let mut out = vec![
        SetOp::Title(order.title.clone()),
        SetOp::Description(order.description.clone()),
        SetOp::Priority(order.priority),
        SetOp::Status(order.status),
        SetOp::Customer(order.customer.clone()),
        SetOp::Site(order.site.clone()),
        SetOp::Equipment(order.equipment.clone()),
        SetOp::Scheduled(order.scheduled.clone()),
        SetOp::Assignee(order.assignee.clone()),
        SetOp::Signature(order.signature.clone()),
        SetOp::CompletedAt(order.completed_at),
    ];
    for item in &order.checklist {
        out.push(SetOp::ChecklistDone {
            item_id: item.id.clone(),
            done: item.done,
        });
    }
    for entry in &order.time_entries {
        if let Some(ended_at) = entry.ended_at {
            out.push(SetOp::TimeEntryEnded {
                entry_id: entry.id,
                ended_at,
            });
        }
    }
    out
}

/// The order's current value of the field `set` writes, as a `set` of the same field
/// (`None` when the field does not exist on the order, e.g. an unknown checklist item
/// or a running timer).
pub fn current_as_set(order: &WorkOrder, set: &SetOp) -> Option<SetOp> {
    Some(match set {
        SetOp::Title(_) => SetOp::Title(order.title.clone()),
        SetOp::Description(_) => SetOp::Description(order.description.clone()),
        SetOp::Priority(_) => SetOp::Priority(order.priority),
        SetOp::Status(_) => SetOp::Status(order.status),
        SetOp::Customer(_) => SetOp::Customer(order.customer.clone()),
        SetOp::Site(_) => SetOp::Site(order.site.clone()),
        SetOp::Equipment(_) => SetOp::Equipment(order.equipment.clone()),
        SetOp::Scheduled(_) => SetOp::Scheduled(order.scheduled.clone()),
        SetOp::Assignee(_) => SetOp::Assignee(order.assignee.clone()),
        SetOp::Signature(_) => SetOp::Signature(order.signature.clone()),
        SetOp::CompletedAt(_) => SetOp::CompletedAt(order.completed_at),
        SetOp::ChecklistDone { item_id, .. } => {
            let item = order.checklist.iter().find(|i| &i.id == item_id)?;
            SetOp::ChecklistDone {
                item_id: item_id.clone(),
                done: item.done,
            }
        }
        SetOp::TimeEntryEnded { entry_id, .. } => {
            let entry = order.time_entries.iter().find(|t| &t.id == entry_id)?;
            SetOp::TimeEntryEnded {
                entry_id: *entry_id,
                ended_at: entry.ended_at?,
            }
        }
    })
}

/// Whether `after` equals `before` but for its version and number (compared in place,
/// without a copy of the row).
fn same_ignoring_version(before: &WorkOrder, after: &mut WorkOrder) -> bool {
    let kept = (after.version, after.number);
    after.version = before.version;
    after.number = before.number;
    let same = *before == *after;
    (after.version, after.number) = kept;
    same
}

/// Stamp every scalar field whose value differs between `before` and `after` (every
/// field of `after` when there is no `before`): the keys and values of
/// [`scalar_fields`], compared in place instead of through copies of both lists.
fn restamp(
    stamps: &mut FieldStamps,
    before: Option<&WorkOrder>,
    after: &WorkOrder,
    stamp: FieldStamp,
) {
    let Some(b) = before else {
        for set in scalar_fields(after) {
            stamps.insert(set.field_key(), stamp);
        }
        return;
    };
    // Every member by name, without `..`: a member added to `WorkOrder` does not
    // compile here until this function (and `scalar_fields`) say what it is.
    let WorkOrder {
        id: _,
        number: _,
        title,
        description,
        priority,
        status,
        customer,
        site,
        equipment,
        scheduled,
        assignee,
        checklist,
        notes: _,
        time_entries,
        parts_used: _,
        photos: _,
        signature,
        completed_at,
        version: _,
    } = after;
    macro_rules! scalar {
        ($($name:ident),*) => {$(
            if b.$name != *$name {
                stamps.insert(stringify!($name).to_owned(), stamp);
            }
        )*};
    }
    scalar!(
        title,
        description,
        priority,
        status,
        customer,
        site,
        equipment,
        scheduled,
        assignee,
        signature,
        completed_at
    );
    if !checklist.is_empty() {
        // Per item id, the last item's state (as a map built from the list keeps).
        let old: HashMap<&str, bool> = b
            .checklist
            .iter()
            .map(|i| (i.id.as_str(), i.done))
            .collect();
        for item in checklist {
            if old.get(item.id.as_str()) != Some(&item.done) {
                stamps.insert(format!("checklist.{}.done", item.id), stamp);
            }
        }
    }
    if time_entries.iter().any(|t| t.ended_at.is_some()) {
        // Only stopped timers are fields (a running one has no end to set).
        let old: HashMap<Uuid, _> = b
            .time_entries
            .iter()
            .filter_map(|t| Some((t.id, t.ended_at?)))
            .collect();
        for t in time_entries {
            if let Some(ended_at) = t.ended_at {
                if old.get(&t.id) != Some(&ended_at) {
                    stamps.insert(format!("time_entries.{}.ended_at", t.id), stamp);
                }
            }
        }
    }
}

/// Stock deltas between two states of the parts-used list (used parts decrement).
pub fn stock_deltas(before: Option<&WorkOrder>, after: &WorkOrder) -> Vec<StockDelta> {
    let mut by_sku: BTreeMap<String, i64> = BTreeMap::new();
    if let Some(b) = before {
        for p in &b.parts_used {
            *by_sku.entry(p.sku.clone()).or_default() += p.quantity.milli();
        }
    }
    for p in &after.parts_used {
        *by_sku.entry(p.sku.clone()).or_default() -= p.quantity.milli();
    }
    by_sku
        .into_iter()
        .filter(|(_, d)| *d != 0)
        .map(|(sku, delta_milli)| StockDelta { sku, delta_milli })
        .collect()
}

fn whole_fields(
    m: &Mutation,
    current: &WorkOrder,
    at_base: Option<&WorkOrder>,
) -> Vec<ConflictField> {
    m.ops
        .iter()
        .filter_map(|op| match op {
            Op::Set(set) => Some(ConflictField {
                field: set.field_key(),
                device: set.clone(),
                server: current_as_set(current, set),
                base: at_base.and_then(|b| current_as_set(b, set)),
            }),
            _ => None,
        })
        .collect()
}

/// Whether [`merge`] may look at the order as it was at `m.base_version`: only when a
/// field was changed after the base by another device, or when a technician pushes on
/// an order that is no longer theirs. Otherwise `at_base: None` gives the same decision,
/// and the server need not load the old row.
pub fn needs_base(order: &WorkOrder, stamps: &FieldStamps, m: &Mutation, actor: &Actor) -> bool {
    if m.base_version == 0 || m.base_version >= order.version {
        return false;
    }
    let not_mine =
        !actor.role.sees_all_orders() && order.assignee.as_deref() != Some(actor.username.as_str());
    not_mine
        || stamps
            .values()
            .any(|s| s.version > m.base_version && s.device_id != m.device_id)
}

/// Decide how `m` applies to the server's `current` state (`None`: no such order).
pub fn merge(current: Option<Current<'_>>, m: &Mutation, actor: &Actor) -> Decision {
    if let Err(r) = check_envelope(m, actor) {
        return Decision::Reject(r);
    }
    if m.entity != EntityKind::WorkOrder || m.kind == MutationKind::Resolve {
        return Decision::Reject(MergeRejected::new(
            ErrorCode::InvalidBody,
            "a resolution is applied with resolve, not merge",
        ));
    }
    let technician = !actor.role.sees_all_orders();
    if technician && matches!(m.kind, MutationKind::Assign | MutationKind::Cancel) {
        return Decision::Reject(MergeRejected::new(
            ErrorCode::Forbidden,
            format!(
                "a technician may not {} an order; ask a dispatcher",
                m.kind.as_str()
            ),
        ));
    }
    let sets_assignee = m
        .ops
        .iter()
        .any(|op| matches!(op, Op::Set(SetOp::Assignee(_))));
    let Some(cur) = current else {
        return merge_create(m, actor, technician);
    };
    if m.kind == MutationKind::Create {
        return Decision::Reject(MergeRejected::new(
            ErrorCode::AlreadyExists,
            "a work order with this id already exists",
        ));
    }
    let order = cur.order;
    let me = Some(actor.username.as_str());
    let base_ok = m.base_version < order.version;
    let assignee_at_base = cur.at_base.and_then(|b| b.assignee.as_deref());
    let changed_by_other = |key: &str| {
        cur.stamps
            .get(key)
            .is_some_and(|s| s.version > m.base_version && s.device_id != m.device_id)
    };
    // Cancelled by another device after the base: the pusher did not know. Decided
    // before any validation against the cancelled row, so nothing is refused for a state
    // its maker never saw.
    let cancelled_since_base = order.status == Status::Cancelled && changed_by_other("status");
    if technician {
        if order.assignee.as_deref() != me {
            if base_ok && assignee_at_base == me && !sets_assignee {
                // The push rule: it was theirs at the base, so the work is kept for a
                // person, not refused.
                let kind = match m.kind {
                    MutationKind::Complete if cancelled_since_base => {
                        ConflictKind::CompletionAfterCancel
                    }
                    MutationKind::Complete => ConflictKind::CompletionAfterReassign,
                    _ => ConflictKind::Reassigned,
                };
                return hold_whole(m, order, cur.at_base, kind);
            }
            return Decision::Reject(MergeRejected::new(
                ErrorCode::Forbidden,
                "this work order is not assigned to you",
            ));
        }
        if sets_assignee {
            return Decision::Reject(MergeRejected::new(
                ErrorCode::Forbidden,
                "a technician may not reassign an order; ask a dispatcher",
            ));
        }
    }

    // A completion or an edit against a cancellation made after the base by another
    // device, and a completion against a reassignment made after the base: the whole
    // mutation (with a completion's evidence) is kept for a person. Notes alone still
    // apply to a cancelled order.
    let only_notes = m.ops.iter().all(|op| matches!(op, Op::AppendNote { .. }));
    let held = match m.kind {
        MutationKind::Complete if cancelled_since_base => Some(ConflictKind::CompletionAfterCancel),
        MutationKind::Complete
            if changed_by_other("assignee")
                && cur.at_base.is_some_and(|b| b.assignee != order.assignee) =>
        {
            Some(ConflictKind::CompletionAfterReassign)
        }
        MutationKind::Update if cancelled_since_base && !only_notes => {
            Some(ConflictKind::UpdateAfterCancel)
        }
        _ => None,
    };
    if let Some(kind) = held {
        return hold_whole(m, order, cur.at_base, kind);
    }

    // The whole mutation must be valid on the current row (field rules, status machine,
    // completion evidence); otherwise it is refused as a whole.
    let whole = match apply_mutation(Some(order), m) {
        Ok(a) => a,
        Err(e) => return Decision::Reject(MergeRejected::validation(e)),
    };

    // Decide each op in order against the row as the earlier ops of this mutation left
    // it. Only the last `set` of a field in a mutation counts (coalescing makes that the
    // common case); earlier ones are superseded.
    let mut fates = Vec::with_capacity(m.ops.len());
    let mut conflicts = Vec::new();
    // The row as the earlier ops left it, copied only once an op must be applied to it
    // for a later `set` to be compared against (list ops and notes alone need no copy).
    let mut working = Cow::Borrowed(order);
    for (i, op) in m.ops.iter().enumerate() {
        let fate = match op {
            Op::Set(set) => {
                let key = set.field_key();
                let superseded = m.ops[i + 1..]
                    .iter()
                    .any(|later| matches!(later, Op::Set(l) if l.field_key() == key));
                let now = current_as_set(&working, set);
                if superseded {
                    OpFate::Superseded
                } else if now.as_ref() == Some(set) {
                    OpFate::Unchanged
                } else if cur
                    .stamps
                    .get(&key)
                    .is_some_and(|s| s.version > m.base_version && s.device_id != m.device_id)
                {
                    conflicts.push(ConflictField {
                        field: key,
                        device: set.clone(),
                        server: now,
                        base: cur.at_base.and_then(|b| current_as_set(b, set)),
                    });
                    OpFate::Conflict
                } else {
                    OpFate::Applied
                }
            }
            // A removal followed by a re-add of the same item is the add alone (an
            // upsert in place), so that a replay does not move the item in its list.
            Op::Remove { list, item_id }
                if m.ops[i + 1..].iter().any(|later| {
                    matches!(later, Op::Add(item) if item.list() == *list && item.item_id() == *item_id)
                }) =>
            {
                OpFate::Superseded
            }
            _ => OpFate::Applied,
        };
        if fate == OpFate::Applied
            && m.ops[i + 1..]
                .iter()
                .any(|later| matches!(later, Op::Set(_)))
        {
            // Validity was checked above on the whole mutation; an op that cannot apply
            // here is caught again by `apply_mutation` on the kept ops below.
            let _ = crate::apply::apply_op(working.to_mut(), op);
        }
        fates.push(fate);
    }
    let kept = fates.iter().filter(|f| **f == OpFate::Applied).count();

    let mut after = if kept == m.ops.len() {
        // Every op applies: the result is the whole mutation's, already computed.
        whole
    } else if kept == 0 && !matches!(m.kind, MutationKind::Complete | MutationKind::Cancel) {
        order.clone()
    } else {
        let mut filtered = m.clone();
        filtered.ops = m
            .ops
            .iter()
            .zip(&fates)
            .filter(|(_, fate)| **fate == OpFate::Applied)
            .map(|(op, _)| op.clone())
            .collect();
        if filtered.ops.is_empty() {
            // The action itself (complete, cancel) still applies; a set of the title to
            // its own value is the neutral operation `apply_mutation` needs.
            filtered
                .ops
                .push(Op::Set(SetOp::Title(order.title.clone())));
        }
        match apply_mutation(Some(order), &filtered) {
            Ok(a) => a,
            Err(e) => return Decision::Reject(MergeRejected::validation(e)),
        }
    };
    after.number = order.number;
    let changed = !same_ignoring_version(order, &mut after);
    let mut stamps = cur.stamps.clone();
    after.version = if changed {
        order.version + 1
    } else {
        order.version
    };
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
    let stock = stock_deltas(Some(order), &after);
    Decision::Apply(Box::new(MergeApplied {
        order: after,
        stamps,
        changed,
        fates,
        conflicts,
        stock,
        created: false,
    }))
}

fn check_envelope(m: &Mutation, actor: &Actor) -> Result<(), MergeRejected> {
    if m.format != FORMAT_VERSION {
        return Err(MergeRejected::new(
            ErrorCode::UnsupportedFormat,
            format!(
                "mutation format {} is not supported (this server speaks {FORMAT_VERSION}); update the app",
                m.format
            ),
        ));
    }
    if m.device_id != actor.device_id {
        return Err(MergeRejected::new(
            ErrorCode::DeviceMismatch,
            "the mutation was made on another device than the one signed in",
        ));
    }
    Ok(())
}

fn merge_create(m: &Mutation, actor: &Actor, technician: bool) -> Decision {
    if m.kind != MutationKind::Create {
        return Decision::Reject(MergeRejected::new(
            ErrorCode::UnknownEntity,
            "this work order does not exist",
        ));
    }
    let mut after = match apply_mutation(None, m) {
        Ok(a) => a,
        Err(e) => return Decision::Reject(MergeRejected::validation(e)),
    };
    if technician {
        // A technician's own new order is theirs, whatever the body says.
        after.assignee = Some(actor.username.clone());
    }
    after.version = 1;
    after.number = None;
    let mut stamps = FieldStamps::new();
    restamp(
        &mut stamps,
        None,
        &after,
        FieldStamp {
            version: 1,
            device_id: m.device_id,
        },
    );
    let stock = stock_deltas(None, &after);
    Decision::Apply(Box::new(MergeApplied {
        fates: vec![OpFate::Applied; m.ops.len()],
        order: after,
        stamps,
        changed: true,
        conflicts: Vec::new(),
        stock,
        created: true,
    }))
}

/// Hold the whole mutation in a conflict of `kind`, unless its own values break a field
/// rule (an empty title, a bad e-mail address): that is refused whatever the order's
/// state, and kept as a failed sync with its full payload.
fn hold_whole(
    m: &Mutation,
    current: &WorkOrder,
    at_base: Option<&WorkOrder>,
    kind: ConflictKind,
) -> Decision {
    if let Some(r) = held_ops_problem(m, current, at_base) {
        return Decision::Reject(r);
    }
    Decision::HoldWhole {
        kind,
        fields: whole_fields(m, current, at_base),
    }
}

/// For a held mutation: the field-rule errors of its own values, judged on the order as
/// it stood at the base (or now, if the base is gone) with the ops applied. Deliberately
/// not judged: the status machine and what a completion needs (checklist, signature),
/// since the order moved on without the device knowing (an earlier edit of the same
/// device may itself be held), and ops naming items the server does not have (they may
/// come from such a held edit). A person sees all of it when deciding; the resolution
/// is validated in full.
fn held_ops_problem(
    m: &Mutation,
    current: &WorkOrder,
    at_base: Option<&WorkOrder>,
) -> Option<MergeRejected> {
    if m.ops.is_empty() {
        return Some(MergeRejected::validation(ValidationErrors::single(
            "ops",
            "required",
            "the change contains no operations",
        )));
    }
    let mut probe = at_base.unwrap_or(current).clone();
    for op in &m.ops {
        // An op on an item the server does not have is left to the person deciding.
        let _ = crate::apply::apply_op(&mut probe, op);
    }
    validate_order(&probe).err().map(MergeRejected::validation)
}

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
/// evidence. `now` is the server's time, recorded as the decision time.
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
        };
        let _ = assignee_then;
        let blank = WorkOrder::blank(Uuid::nil());
        return ResolveDecision::Resolved(Box::new(Resolved {
            resolution,
            order: blank,
            stamps: FieldStamps::new(),
            changed: false,
            stock: Vec::new(),
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
    let mut after = order.clone();
    if let Err(e) = apply_ops(&mut after, &m.ops) {
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
            if m.ops == c.resolution_ops(&crate::wire::ResolutionChoice::AcceptDevice) {
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
            ops: m.ops.clone(),
            order_version: changed.then_some(after.version),
        },
        order: after,
        stamps,
        changed,
        stock,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;
    use crate::mutation::{ListItem, ListName};
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
                let cur = self.order.as_ref().map(|o| Current {
                    order: o,
                    stamps: &self.stamps,
                    at_base: self.history.get(&m.base_version),
                });
                let d = merge(cur, m, actor);
                // The server skips loading the base row when `needs_base` says so: the
                // decision must be the same without it.
                if let Some(o) = self.order.as_ref() {
                    if !needs_base(o, &self.stamps, m, actor) {
                        let without = merge(
                            Some(Current {
                                order: o,
                                stamps: &self.stamps,
                                at_base: None,
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
            fields,
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
                at_base: None,
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
            fields: a.conflicts.clone(),
            mutation: m.clone(),
            resolution: None,
        };
        let choice = crate::wire::ResolutionChoice::AcceptDevice;
        let r = record.resolve_mutation(&choice, Uuid::now_v7(), d.device_id, t0());
        let cur = Current {
            order: s.order(),
            stamps: &s.stamps,
            at_base: None,
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
}
