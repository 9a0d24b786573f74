//! The merge rules: how the server applies a pushed mutation to its current row.
//!
//! [`merge`] is one deterministic, pure function (no clock, no I/O): given the order as
//! the server holds it, the version and device of each field's last change, the order
//! as it was at the mutation's `base_version`, and who is pushing, it decides which
//! operations apply, which `set`s wait in an open conflict, or why the mutation is
//! refused. [`resolve`] does the same for a person's decision on a conflict or failed
//! sync. The server stores what these return; the device may run them to predict.
//!
//! The rules (docs/protocol.md, "Push"):
//! - a `set` conflicts only if its field's last change is after the base, came from
//!   another device, and the value differs from the current one; a `set` equal to the
//!   current value changes nothing and bumps no version. The base is what [`base_of`]
//!   makes of `base_version`: unknown when it belongs to another epoch or is newer than
//!   the order (a timeline lost in a restore: then every field another device set
//!   counts as changed since), and the device's own create when an edit made before
//!   that create was acknowledged carries 0;
//! - list ops and notes never conflict (add is an upsert; removing a gone item does
//!   nothing; a note id is kept once);
//! - a completion against an order cancelled or reassigned after the base by another
//!   device holds the whole completion in a conflict, and so does an edit (anything but
//!   notes alone) against such a cancellation; so does any push by a technician who was
//!   the assignee at the base but is not now. These holds are decided before any
//!   validation against the changed row (a completion is never refused for a checklist
//!   or status its maker could not see): the completion and its evidence are kept;
//! - technicians push only on orders assigned to them (now or at the base), never
//!   reassign, cancel or reopen; their new orders are assigned to them; dispatchers and
//!   administrators may push on any order;
//! - validation and the status machine are [`crate::apply::apply_mutation`], the same
//!   function the device runs before saving.
//!
//! Left out on purpose: idempotency, attachments' presence and stock arithmetic are the
//! server's (they need storage); this module reports the stock deltas to apply.
//!
//! Layout: the push rules and the helpers both decisions share are here, [`resolve`]
//! is in `resolve.rs`, and the tests (scripted and property-based) are in `tests.rs`.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::apply::apply_mutation;
use crate::domain::{Role, WorkOrder};
use crate::mutation::{EntityKind, Mutation, MutationKind, Op, SetOp, FORMAT_VERSION};
use crate::status::Status;
use crate::validate::{validate_order, FieldError, ValidationErrors};
use crate::wire::{ConflictField, ConflictKind, ErrorCode};

mod resolve;

pub use resolve::{resolve, Resolvable, ResolveDecision, Resolved};

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
    /// What the server makes of the mutation's base ([`base_of`]).
    pub base: Base,
    /// The order as it was at the base, when the base is known and the server still
    /// has it (`None` for a base it never had or has forgotten).
    pub at_base: Option<&'a WorkOrder>,
    /// For an unknown base only: whether the order was assigned to the pushing user at
    /// some version the server keeps (so a push after a reassignment is held, not
    /// refused). False when the base is known.
    pub ever_assigned: bool,
}

/// The version a mutation was made on, as the server understands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// This version of the order in the server's current timeline.
    Known(u64),
    /// A version the server cannot place: from another epoch (before a restore), or
    /// newer than the order. Every field another device set after the order's create
    /// counts as changed since: whatever the base, it is a version of this order, so it
    /// holds the create (version 1, the same in every timeline that has the order).
    Unknown,
}

impl Base {
    /// Whether a change stamped at `version` happened after this base.
    fn precedes(self, version: u64) -> bool {
        match self {
            Base::Known(b) => version > b,
            Base::Unknown => version > 1,
        }
    }
}

/// Which device made the order's first version (every field is stamped at version 1
/// by its create; `None` once every one of them changed since).
fn created_by(stamps: &FieldStamps) -> Option<Uuid> {
    stamps
        .values()
        .find(|s| s.version == 1)
        .map(|s| s.device_id)
}

/// What the server makes of `m.base_version` for `order`. `same_epoch`: whether the
/// mutation's `base_epoch` is the server's current epoch (or absent: protocol 1, where
/// the current epoch is assumed).
pub fn base_of(order: &WorkOrder, stamps: &FieldStamps, m: &Mutation, same_epoch: bool) -> Base {
    if m.kind == MutationKind::Create {
        return Base::Known(0);
    }
    if !same_epoch || m.base_version > order.version {
        return Base::Unknown;
    }
    if m.base_version == 0 && created_by(stamps) == Some(m.device_id) {
        // An edit made on the device's own create before the create was acknowledged:
        // its base is that create, the order's version 1.
        return Base::Known(1);
    }
    Base::Known(m.base_version)
}

/// The value each `set` of `ops` finds on `order` now, as the same `set` (what a
/// person deciding on `order` saw; for a resolution's `seen`).
pub fn seen_on(order: &WorkOrder, ops: &[Op]) -> Vec<SetOp> {
    ops.iter()
        .filter_map(|op| match op {
            Op::Set(set) => current_as_set(order, set),
            _ => None,
        })
        .collect()
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
                server_set: None,
            }),
            _ => None,
        })
        .collect()
}

/// Whether [`merge`] may look at the order as it was at the (known) base: only when a
/// field was changed after the base by another device, or when a technician pushes on
/// an order that is no longer theirs. Otherwise `at_base: None` gives the same decision,
/// and the server need not load the old row.
pub fn needs_base(
    order: &WorkOrder,
    stamps: &FieldStamps,
    m: &Mutation,
    actor: &Actor,
    base: Base,
) -> bool {
    let Base::Known(b) = base else {
        return false;
    };
    if b == 0 || b >= order.version {
        return false;
    }
    not_theirs(order, actor)
        || stamps
            .values()
            .any(|s| s.version > b && s.device_id != m.device_id)
}

/// Whether `actor` is a technician and the order is not assigned to them now.
pub fn not_theirs(order: &WorkOrder, actor: &Actor) -> bool {
    !actor.role.sees_all_orders() && order.assignee.as_deref() != Some(actor.username.as_str())
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
    let (base_ok, theirs_at_base) = match cur.base {
        Base::Known(b) => (
            b < order.version,
            cur.at_base.and_then(|b| b.assignee.as_deref()) == me,
        ),
        Base::Unknown => (true, cur.ever_assigned),
    };
    let changed_by_other = |key: &str| {
        cur.stamps
            .get(key)
            .is_some_and(|s| cur.base.precedes(s.version) && s.device_id != m.device_id)
    };
    // Cancelled by another device after the base: the pusher did not know. Decided
    // before any validation against the cancelled row, so nothing is refused for a state
    // its maker never saw.
    let cancelled_since_base = order.status == Status::Cancelled && changed_by_other("status");
    if technician {
        if order.assignee.as_deref() != me {
            if base_ok && theirs_at_base && !sets_assignee {
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
    if technician {
        if let Err(r) = technician_reopens(order, &whole) {
            return Decision::Reject(r);
        }
    }

    // Decide each op in order against the row as the earlier ops of this mutation left
    // it. Only the last `set` of a field in a mutation counts (coalescing makes that the
    // common case); earlier ones are superseded.
    let mut fates = Vec::with_capacity(m.ops.len());
    let mut conflicts = Vec::new();
    // The row as the earlier ops left it, copied only once an op must be applied to it
    // for a later `set` to be compared against (list ops and notes alone need no copy).
    let mut working = Cow::Borrowed(order);
    // What a later op of the mutation does to each op, found in one pass from the end
    // (linear in the ops: the merge runs inside the server's write transaction).
    let later = LaterOps::of(&m.ops);
    for (i, op) in m.ops.iter().enumerate() {
        let fate = match op {
            Op::Set(set) => {
                let key = set.field_key();
                let superseded = later.set_again[i];
                let now = current_as_set(&working, set);
                if superseded {
                    OpFate::Superseded
                } else if now.as_ref() == Some(set) {
                    OpFate::Unchanged
                } else if changed_by_other(&key) {
                    conflicts.push(ConflictField {
                        field: key,
                        device: set.clone(),
                        server: now,
                        base: cur.at_base.and_then(|b| current_as_set(b, set)),
                        server_set: None,
                    });
                    OpFate::Conflict
                } else {
                    OpFate::Applied
                }
            }
            // A removal followed by a re-add of the same item is the add alone (an
            // upsert in place), so that a replay does not move the item in its list.
            Op::Remove { .. } if later.added_again[i] => OpFate::Superseded,
            _ => OpFate::Applied,
        };
        if fate == OpFate::Applied && later.last_set.is_some_and(|last| i < last) {
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

/// For each op of a mutation, what a later op of the same mutation does to it, found
/// in one pass from the end: whether a later `set` writes the same field (this one is
/// superseded), whether a later `add` puts back the item a `remove` takes out (the
/// removal is the add alone), and where the last `set` is.
struct LaterOps {
    set_again: Vec<bool>,
    added_again: Vec<bool>,
    last_set: Option<usize>,
}

impl LaterOps {
    fn of(ops: &[Op]) -> LaterOps {
        let mut set_again = vec![false; ops.len()];
        let mut added_again = vec![false; ops.len()];
        let mut keys = std::collections::HashSet::new();
        let mut added = std::collections::HashSet::new();
        for (i, op) in ops.iter().enumerate().rev() {
            match op {
                Op::Set(set) => set_again[i] = !keys.insert(set.field_key()),
                Op::Add(item) => {
                    added.insert((item.list(), item.item_id()));
                }
                Op::Remove { list, item_id } => {
                    added_again[i] = added.contains(&(*list, item_id.clone()));
                }
                Op::AppendNote { .. } => {}
            }
        }
        LaterOps {
            set_again,
            added_again,
            last_set: ops.iter().rposition(|op| matches!(op, Op::Set(_))),
        }
    }
}

/// Reopening (cancelled back to scheduled) is for dispatchers and administrators: a
/// technician's change that would take `before` out of cancelled into `after` is
/// refused, whether pushed as an edit or as a resolution.
fn technician_reopens(before: &WorkOrder, after: &WorkOrder) -> Result<(), MergeRejected> {
    if before.status == Status::Cancelled && after.status != Status::Cancelled {
        return Err(MergeRejected::new(
            ErrorCode::Forbidden,
            "only a dispatcher may reopen a cancelled order",
        ));
    }
    Ok(())
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
    // As for an edit: only the last `set` of a field counts, and a removal followed by
    // a re-add of the same item is the add alone (issue 17, found by the merge fuzz
    // target: every op of a create was reported applied).
    let later = LaterOps::of(&m.ops);
    let fates = m
        .ops
        .iter()
        .enumerate()
        .map(|(i, op)| match op {
            Op::Set(_) if later.set_again[i] => OpFate::Superseded,
            Op::Remove { .. } if later.added_again[i] => OpFate::Superseded,
            _ => OpFate::Applied,
        })
        .collect();
    Decision::Apply(Box::new(MergeApplied {
        fates,
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

#[cfg(test)]
mod tests;
