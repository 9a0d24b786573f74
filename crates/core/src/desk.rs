//! The dispatcher's desk (issue 20): every open conflict and failed sync of an order
//! is one item, oldest first, shown side by side in words — for each field the value
//! when the technician started, the technician's value and the current one with who
//! set it and when; checklists as ticks, notes as text, parts with the stock effect
//! of accepting (`outpost_protocol::stock`, the rule the server applies), time entries
//! as durations, the signature and photos fetched and cached on this device, a
//! cancellation with its reason. A decision settles all of an item's records as one
//! unit, held a few seconds (undo) before the engine sends it.
//!
//! Nothing here talks to the server except [`Outpost::fetch_desk_evidence`]; the view
//! is built from the records and orders this device pulled.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use outpost_protocol::mutation::{EntityKind, ListItem};
use outpost_protocol::wire::{
    ConflictKind, ConflictRecord, FailedSyncRecord, RecordStatus, Resolution, ResolutionChoice,
    ResolutionOutcome,
};
use outpost_protocol::{
    apply_ops, merge, stock, InventoryItem, Mutation, MutationKind, Op, Priority, SetOp, Status,
    WorkOrder, FORMAT_VERSION,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

use crate::{ClientOptions, CoreError, Outpost};

/// How long a decision waits on this device before the engine sends it: the undo
/// window.
pub const UNDO_WINDOW_SECS: i64 = 5;

/// The desk's filters and page.
#[derive(Debug, Clone, Default, Deserialize, TS)]
pub struct DeskFilter {
    /// Only items with a record of this technician.
    pub technician: Option<String>,
    /// Only items with a record of this reason (a conflict kind such as
    /// `completion_after_cancel`, or a refusal code such as `validation_failed`).
    pub reason: Option<String>,
    /// Only items whose oldest record is at least this old.
    #[ts(type = "number | null")]
    pub older_than_secs: Option<i64>,
    pub offset: Option<u32>,
    /// Items per page (default 50).
    pub limit: Option<u32>,
}

/// The counts the navigation shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, TS)]
pub struct DeskCounts {
    /// Open items (orders).
    pub open: u32,
    pub conflicts: u32,
    pub failed_syncs: u32,
}

/// One page of the desk.
#[derive(Debug, Clone, Serialize, TS)]
pub struct DeskPage {
    pub items: Vec<DeskItemView>,
    /// Items matching the filter (all pages).
    pub total: u32,
    pub counts: DeskCounts,
    /// The technicians and reasons of open items, for the filters.
    pub technicians: Vec<String>,
    pub reasons: Vec<String>,
    /// Records another dispatcher decided before this device's decision arrived.
    pub decided_elsewhere: Vec<DecidedElsewhereView>,
    /// Decisions in their undo window.
    pub held: Vec<HeldDecisionView>,
}

/// A record someone else decided first (`already_resolved`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DecidedElsewhereView {
    pub order_id: String,
    pub order_number: Option<u32>,
    pub record_id: String,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
    /// Their decision, in words.
    pub outcome: String,
}

/// A decision still on this device, in its undo window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct HeldDecisionView {
    pub order_id: String,
    pub resolutions: u32,
    pub sends_at: DateTime<Utc>,
}

/// One record (a conflict or a failed sync) of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskRecordView {
    pub id: String,
    /// `conflict` or `failed_sync`.
    pub entity: String,
    pub version: u64,
    /// The conflict kind or refusal code.
    pub reason: String,
    /// What happened, in words.
    pub summary: String,
    pub technician: String,
    /// The technician's device clock when they acted.
    pub device_time: Option<DateTime<Utc>>,
    /// When the server received it.
    pub received_at: DateTime<Utc>,
}

/// One field, side by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskFieldView {
    /// The field key (`status`, `description`, `checklist.c1.done`…).
    pub field: String,
    /// Its name in words.
    pub label: String,
    /// When the technician started (unknown for a failed sync).
    pub base: Option<String>,
    pub technician: Option<String>,
    pub technician_at: Option<DateTime<Utc>>,
    pub current: Option<String>,
    /// Who set the current value and when (device time, server receive time), when
    /// known.
    pub current_by: Option<String>,
    pub current_at: Option<DateTime<Utc>>,
    pub current_received_at: Option<DateTime<Utc>>,
    /// Free text: an edited value may be typed.
    pub text: bool,
}

/// A checklist step as ticks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskCheckView {
    pub id: String,
    pub label: String,
    pub required: bool,
    pub current_done: bool,
    pub technician_done: bool,
}

/// A note the technician wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskNoteView {
    pub author: String,
    pub at: DateTime<Utc>,
    pub text: String,
}

/// A parts line and what accepting it does to stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskPartView {
    pub sku: String,
    pub name: String,
    /// `2 each`, `1.5 m`.
    pub quantity: String,
    /// Where accepting takes it from, and the quantity there before and after (in
    /// thousandths), by the server's own rule.
    pub stock_location: Option<String>,
    #[ts(type = "number | null")]
    pub stock_before_milli: Option<i64>,
    #[ts(type = "number | null")]
    pub stock_after_milli: Option<i64>,
    /// The effect in words ("takes 2 each from van-tech1: 5 → 3").
    pub effect: String,
}

/// A time entry as a duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskTimeView {
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// `1 h 25 min`, or `running`.
    pub duration: String,
    pub note: String,
}

/// A signature or photo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskEvidenceView {
    /// `signature` or `photo`.
    pub kind: String,
    pub hash: String,
    /// The signer's name or the photo's caption.
    pub label: String,
    /// `cached` (on this device) or `not_downloaded` (fetch it while online).
    pub state: String,
}

/// A cancellation, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskCancellationView {
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// One order on the desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeskItemView {
    pub order_id: String,
    pub order_number: Option<u32>,
    pub title: String,
    pub technicians: Vec<String>,
    pub reasons: Vec<String>,
    /// What happened, in words.
    pub summary: String,
    pub oldest_at: DateTime<Utc>,
    #[ts(type = "number")]
    pub age_secs: i64,
    pub records: Vec<DeskRecordView>,
    pub fields: Vec<DeskFieldView>,
    pub checklist: Vec<DeskCheckView>,
    pub notes: Vec<DeskNoteView>,
    pub parts: Vec<DeskPartView>,
    pub time_entries: Vec<DeskTimeView>,
    pub evidence: Vec<DeskEvidenceView>,
    pub cancellation: Option<DeskCancellationView>,
    /// Every field a per-field decision may choose (the technician's sets).
    pub choosable: Vec<String>,
    /// The records as JSON, for support ("technical details").
    pub technical_details: String,
}

/// A decision on one desk item (or many, for a bulk decision).
#[derive(Debug, Clone, Deserialize, TS)]
pub struct DecisionInput {
    pub order_ids: Vec<String>,
    /// `accept` (the technician's work, all of it), `keep` (the order as it is),
    /// `per_field` (the `fields` chosen take the technician's value, `edits` an edited
    /// one), `reopen` (reopen, optionally reassigned to `assignee`) or `discard` (a
    /// failed sync: set aside).
    pub action: String,
    pub reason: String,
    #[serde(default)]
    pub fields: Vec<String>,
    #[serde(default)]
    pub edits: Vec<FieldEdit>,
    pub assignee: Option<String>,
}

/// An edited value for a field.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct FieldEdit {
    pub field: String,
    pub value: String,
}

impl DecisionInput {
    /// Keep one order as it is.
    pub fn keep(order_id: &str, reason: &str) -> Self {
        Self::of(order_id, "keep", reason)
    }

    /// Accept all of the technician's work on one order.
    pub fn accept(order_id: &str, reason: &str) -> Self {
        Self::of(order_id, "accept", reason)
    }

    pub fn of(order_id: &str, action: &str, reason: &str) -> Self {
        DecisionInput {
            order_ids: vec![order_id.to_owned()],
            action: action.to_owned(),
            reason: reason.to_owned(),
            fields: Vec::new(),
            edits: Vec::new(),
            assignee: None,
        }
    }
}

/// What a decision queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DecisionReceipt {
    pub orders: u32,
    pub resolutions: u32,
    /// The engine sends them at this time unless undone before.
    pub sends_at: DateTime<Utc>,
    /// The mutation ids, for the undo.
    pub mutation_ids: Vec<String>,
}

/// The order as a decision would leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DecisionPreview {
    pub order_id: String,
    pub status: String,
    pub fields: Vec<DeskFieldView>,
    pub parts: Vec<DeskPartView>,
    /// In words: "The order will be completed; 2 each of Filter 0 leave van-tech1."
    pub summary: String,
}

/// The open records by order, and the ones decided elsewhere.
type DeskRecords = (BTreeMap<Uuid, Vec<Rec>>, Vec<DecidedElsewhereView>);

/// A record of the desk, either kind.
#[derive(Debug, Clone)]
enum Rec {
    Conflict(Box<ConflictRecord>),
    Failed(Box<FailedSyncRecord>),
}

impl Rec {
    fn id(&self) -> Uuid {
        match self {
            Rec::Conflict(c) => c.id,
            Rec::Failed(f) => f.id,
        }
    }
    fn order_id(&self) -> Uuid {
        match self {
            Rec::Conflict(c) => c.order_id,
            Rec::Failed(f) => f.order_id,
        }
    }
    fn username(&self) -> &str {
        match self {
            Rec::Conflict(c) => &c.username,
            Rec::Failed(f) => &f.username,
        }
    }
    fn received_at(&self) -> DateTime<Utc> {
        match self {
            Rec::Conflict(c) => c.created_at,
            Rec::Failed(f) => f.received_at,
        }
    }
    fn mutation(&self) -> &Mutation {
        match self {
            Rec::Conflict(c) => &c.mutation,
            Rec::Failed(f) => &f.mutation,
        }
    }
    fn reason(&self) -> String {
        match self {
            Rec::Conflict(c) => enum_name(&c.kind),
            Rec::Failed(f) => f.code.as_str().to_owned(),
        }
    }
    fn view(&self) -> DeskRecordView {
        let (entity, version, device_time, summary) = match self {
            Rec::Conflict(c) => (
                "conflict",
                c.version,
                c.device_time,
                conflict_words(c.kind, &c.username, c.mutation.kind),
            ),
            Rec::Failed(f) => (
                "failed_sync",
                f.version,
                f.device_time,
                format!(
                    "The server refused {}'s {}: {}",
                    f.username,
                    kind_words(f.mutation.kind),
                    f.message
                ),
            ),
        };
        DeskRecordView {
            id: self.id().to_string(),
            entity: entity.into(),
            version,
            reason: self.reason(),
            summary,
            technician: self.username().to_owned(),
            device_time,
            received_at: self.received_at(),
        }
    }
}

fn enum_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn kind_words(k: MutationKind) -> &'static str {
    match k {
        MutationKind::Create => "new order",
        MutationKind::Update => "changes",
        MutationKind::Complete => "completion",
        MutationKind::Assign => "assignment",
        MutationKind::Cancel => "cancellation",
        MutationKind::Resolve => "decision",
    }
}

fn conflict_words(kind: ConflictKind, who: &str, mk: MutationKind) -> String {
    match kind {
        ConflictKind::Fields => {
            format!("{who} and someone else changed the same fields from the same version.")
        }
        ConflictKind::CompletionAfterCancel => {
            format!("{who} completed the order after it was cancelled.")
        }
        ConflictKind::CompletionAfterReassign => {
            format!("{who} completed the order after it was reassigned.")
        }
        ConflictKind::UpdateAfterCancel => {
            format!(
                "{who}'s {} arrived after the order was cancelled.",
                kind_words(mk)
            )
        }
        _ => format!(
            "{who}'s {} arrived after the order was reassigned.",
            kind_words(mk)
        ),
    }
}

/// A status in words.
pub fn status_words(s: Status) -> &'static str {
    match s {
        Status::Scheduled => "Scheduled",
        Status::EnRoute => "En route",
        Status::InProgress => "In progress",
        Status::OnHold => "On hold",
        Status::Completed => "Completed",
        Status::Cancelled => "Cancelled",
    }
}

fn priority_words(p: Priority) -> &'static str {
    match p {
        Priority::Low => "Low",
        Priority::Normal => "Normal",
        Priority::High => "High",
        Priority::Urgent => "Urgent",
    }
}

fn time_words(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A field's value in words (never JSON).
pub fn set_words(op: &SetOp, order: Option<&WorkOrder>) -> String {
    let join = |parts: &[&str]| {
        parts
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(", ")
    };
    match op {
        SetOp::Title(t) | SetOp::Description(t) => t.clone(),
        SetOp::Priority(p) => priority_words(*p).into(),
        SetOp::Status(s) => status_words(*s).into(),
        SetOp::Customer(c) => join(&[&c.name, &c.phone, &c.email]),
        SetOp::Site(s) => s.address.clone(),
        SetOp::Equipment(e) => join(&[&e.model, &e.serial, &e.asset_tag]),
        SetOp::Scheduled(None) => "Not scheduled".into(),
        SetOp::Scheduled(Some(w)) => format!("{} – {}", time_words(w.start), time_words(w.end)),
        SetOp::Assignee(None) => "Unassigned".into(),
        SetOp::Assignee(Some(a)) => a.clone(),
        SetOp::Signature(None) => "Not signed".into(),
        SetOp::Signature(Some(s)) => format!("Signed by {}", s.signer),
        SetOp::CompletedAt(None) => "Not completed".into(),
        SetOp::CompletedAt(Some(t)) => time_words(*t),
        SetOp::ChecklistDone { done, .. } => if *done { "Done" } else { "Not done" }.into(),
        SetOp::TimeEntryEnded { ended_at, entry_id } => {
            let started = order
                .and_then(|o| o.time_entries.iter().find(|t| t.id == *entry_id))
                .map(|t| t.started_at);
            match started {
                Some(s) => format!(
                    "Ended {} ({})",
                    time_words(*ended_at),
                    duration_words(s, Some(*ended_at))
                ),
                None => format!("Ended {}", time_words(*ended_at)),
            }
        }
    }
}

/// A field key's name in words.
fn field_label(field: &str, order: Option<&WorkOrder>) -> String {
    if let Some(rest) = field.strip_prefix("checklist.") {
        let id = rest.trim_end_matches(".done");
        let label = order
            .and_then(|o| o.checklist.iter().find(|c| c.id == id))
            .map(|c| c.label.clone())
            .unwrap_or_else(|| id.to_owned());
        return format!("Checklist: {label}");
    }
    if field.starts_with("time_entries.") {
        return "Time entry".into();
    }
    let mut s = field.replace('_', " ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

/// `1 h 25 min`, `12 min`, or `running`.
pub fn duration_words(start: DateTime<Utc>, end: Option<DateTime<Utc>>) -> String {
    let Some(end) = end else {
        return "running".into();
    };
    let mins = (end - start).num_minutes().max(0);
    match (mins / 60, mins % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

fn quantity_words(milli: i64, unit: &str) -> String {
    let units = if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{}", milli as f64 / 1000.0)
    };
    format!("{units} {unit}")
}

/// The parts lines of `after` with the stock effect of going from `before` to `after`.
fn parts_view(
    before: &WorkOrder,
    after: &WorkOrder,
    item: &impl Fn(&str) -> Option<InventoryItem>,
) -> Vec<DeskPartView> {
    let effects = stock::preview(Some(before), after, item);
    let mut skus: Vec<&str> = after.parts_used.iter().map(|p| p.sku.as_str()).collect();
    skus.extend(before.parts_used.iter().map(|p| p.sku.as_str()));
    skus.sort_unstable();
    skus.dedup();
    skus.into_iter()
        .map(|sku| {
            let found = item(sku);
            let (name, unit) = found
                .as_ref()
                .map(|i| (i.name.clone(), i.unit.clone()))
                .unwrap_or_else(|| (format!("{sku} (not in the inventory)"), String::new()));
            let qty: i64 = after
                .parts_used
                .iter()
                .filter(|p| p.sku == sku)
                .map(|p| p.quantity.milli())
                .sum();
            let effect = effects.iter().find(|e| e.sku == sku);
            let moved = effect.and_then(|e| e.moved.as_ref());
            let words = match (effect, moved) {
                (None, _) => "no stock change".to_owned(),
                (Some(_), None) => "the server does not know this part: it would refuse it".into(),
                (Some(e), Some(m)) => format!(
                    "{} {} {} {}: {} → {}",
                    if e.delta_milli < 0 {
                        "takes"
                    } else {
                        "returns"
                    },
                    quantity_words(e.delta_milli.abs(), &unit),
                    if e.delta_milli < 0 { "from" } else { "to" },
                    m.location,
                    quantity_words(m.before.milli(), &unit),
                    quantity_words(m.after.milli(), &unit),
                ),
            };
            DeskPartView {
                sku: sku.to_owned(),
                name,
                quantity: quantity_words(qty, &unit),
                stock_location: moved.map(|m| m.location.clone()),
                stock_before_milli: moved.map(|m| m.before.milli()),
                stock_after_milli: moved.map(|m| m.after.milli()),
                effect: words,
            }
        })
        .collect()
}

/// The order with every record's ops applied as far as they apply (what accepting
/// all of the technician's work shows).
fn with_all_ops(current: &WorkOrder, recs: &[Rec]) -> WorkOrder {
    let mut after = current.clone();
    for r in recs {
        for op in &r.mutation().ops {
            let mut next = after.clone();
            if apply_ops(&mut next, std::slice::from_ref(op)).is_ok() {
                after = next;
            }
        }
    }
    after
}

/// The cancellation of `order` (its status) with the reason from its note.
fn cancellation_of(order: &WorkOrder) -> Option<DeskCancellationView> {
    if order.status != Status::Cancelled {
        return None;
    }
    let note = order
        .notes
        .iter()
        .rev()
        .find(|n| n.text.starts_with("Cancelled: "))?;
    Some(DeskCancellationView {
        by: note.author.clone(),
        at: note.at,
        reason: note.text.trim_start_matches("Cancelled: ").to_owned(),
    })
}

impl Outpost {
    /// The open records this device holds, by order, with the held decisions and the
    /// ones decided elsewhere.
    fn desk_records(&self) -> Result<DeskRecords, CoreError> {
        let queued: Vec<String> = self
            .store
            .outbox()?
            .into_iter()
            .filter(|r| r.kind == "resolve")
            .map(|r| r.entity_id)
            .collect();
        let elsewhere_ids = self.store.decided_elsewhere()?;
        let mut by_order: BTreeMap<Uuid, Vec<Rec>> = BTreeMap::new();
        let mut elsewhere = Vec::new();
        for entity in ["conflict", "failed_sync"] {
            for r in self.store.records(entity)? {
                let elsewhere_flag = elsewhere_ids.contains(&r.id);
                let rec = if entity == "conflict" {
                    serde_json::from_value::<ConflictRecord>(r.body)
                        .ok()
                        .map(|c| Rec::Conflict(Box::new(c)))
                } else {
                    serde_json::from_value::<FailedSyncRecord>(r.body)
                        .ok()
                        .map(|f| Rec::Failed(Box::new(f)))
                };
                let Some(rec) = rec else { continue };
                let (status, resolution) = match &rec {
                    Rec::Conflict(c) => (c.status, c.resolution.clone()),
                    Rec::Failed(f) => (f.status, f.resolution.clone()),
                };
                if elsewhere_flag {
                    if let Some(res) = resolution {
                        elsewhere.push(self.decided_elsewhere(&rec, &res));
                    }
                    continue;
                }
                if status != RecordStatus::Open || queued.contains(&rec.id().to_string()) {
                    continue;
                }
                by_order.entry(rec.order_id()).or_default().push(rec);
            }
        }
        Ok((by_order, elsewhere))
    }

    fn decided_elsewhere(&self, rec: &Rec, res: &Resolution) -> DecidedElsewhereView {
        let number = self
            .store
            .order(&rec.order_id().to_string())
            .ok()
            .and_then(|o| o.order.number)
            .and_then(|n| u32::try_from(n).ok());
        DecidedElsewhereView {
            order_id: rec.order_id().to_string(),
            order_number: number,
            record_id: rec.id().to_string(),
            decided_by: res.decided_by.clone(),
            decided_at: res.decided_at,
            outcome: outcome_words(res.outcome).into(),
        }
    }

    /// The desk: one item per order, oldest first, filtered and paged.
    pub fn desk(&self, filter: &DeskFilter) -> Result<DeskPage, CoreError> {
        let now = self.clock.now();
        let (by_order, decided_elsewhere) = self.desk_records()?;
        let mut counts = DeskCounts::default();
        let mut technicians = Vec::new();
        let mut reasons = Vec::new();
        let mut groups: Vec<(DateTime<Utc>, Uuid, Vec<Rec>)> = Vec::new();
        for (order_id, mut recs) in by_order {
            recs.sort_by_key(Rec::received_at);
            counts.open += 1;
            for r in &recs {
                match r {
                    Rec::Conflict(_) => counts.conflicts += 1,
                    Rec::Failed(_) => counts.failed_syncs += 1,
                }
                technicians.push(r.username().to_owned());
                reasons.push(r.reason());
            }
            let oldest = recs.first().map(Rec::received_at).unwrap_or(now);
            let keep = filter
                .technician
                .as_ref()
                .is_none_or(|t| recs.iter().any(|r| r.username() == t))
                && filter
                    .reason
                    .as_ref()
                    .is_none_or(|why| recs.iter().any(|r| &r.reason() == why))
                && filter
                    .older_than_secs
                    .is_none_or(|s| (now - oldest).num_seconds() >= s);
            if keep {
                groups.push((oldest, order_id, recs));
            }
        }
        technicians.sort();
        technicians.dedup();
        reasons.sort();
        reasons.dedup();
        groups.sort_by_key(|(oldest, id, _)| (*oldest, *id));
        let total = u32::try_from(groups.len()).unwrap_or(u32::MAX);
        let offset = filter.offset.unwrap_or(0) as usize;
        let limit = filter.limit.unwrap_or(50).max(1) as usize;
        let items = groups
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(oldest, id, recs)| self.desk_item(id, oldest, &recs, now))
            .collect::<Result<Vec<_>, _>>()?;
        let held = self.held_decisions(now)?;
        Ok(DeskPage {
            items,
            total,
            counts,
            technicians,
            reasons,
            decided_elsewhere,
            held,
        })
    }

    fn held_decisions(&self, now: DateTime<Utc>) -> Result<Vec<HeldDecisionView>, CoreError> {
        let mut by_order: BTreeMap<String, HeldDecisionView> = BTreeMap::new();
        let mut orders_of: Option<BTreeMap<String, String>> = None;
        for row in self.store.outbox()? {
            let Some(at) = row
                .next_attempt_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
            else {
                continue;
            };
            if row.kind != "resolve" || row.state != crate::OutboxState::Pending || at <= now {
                continue;
            }
            if orders_of.is_none() {
                let mut m = BTreeMap::new();
                for entity in ["conflict", "failed_sync"] {
                    for r in self.store.records(entity)? {
                        m.insert(r.id, r.order_id.unwrap_or_default());
                    }
                }
                orders_of = Some(m);
            }
            let order = orders_of
                .as_ref()
                .and_then(|m| m.get(&row.entity_id).cloned())
                .unwrap_or_default();
            let e = by_order.entry(order.clone()).or_insert(HeldDecisionView {
                order_id: order,
                resolutions: 0,
                sends_at: at,
            });
            e.resolutions += 1;
        }
        Ok(by_order.into_values().collect())
    }

    fn desk_item(
        &self,
        order_id: Uuid,
        oldest: DateTime<Utc>,
        recs: &[Rec],
        now: DateTime<Utc>,
    ) -> Result<DeskItemView, CoreError> {
        let current = self
            .store
            .order(&order_id.to_string())
            .ok()
            .map(|r| r.order)
            .unwrap_or_else(|| WorkOrder::blank(order_id));
        let after = with_all_ops(&current, recs);
        let cancellation = cancellation_of(&current);
        let lookup = |sku: &str| self.store.inventory_item(sku).ok().flatten();

        // Fields: the status a completion or cancellation implies, then every `set`
        // of the technician's changes, in the order first met. Who set the current
        // value and when: the record's `server_set` (the server's field stamp) or, for
        // the status of a held record, its `held_by` (who cancelled, their device's
        // time, the server's receive time); else for a cancellation its note (device
        // time only: a record from a server that did not stamp it).
        let status_set = recs.iter().find_map(|r| match r {
            Rec::Conflict(c) if c.kind.held_by_field() == Some("status") => c.held_by.clone(),
            _ => None,
        });
        let (status_by, status_at, status_received) = match (&status_set, &cancellation) {
            (Some(s), _) if current.status == Status::Cancelled => {
                (Some(s.username.clone()), s.device_time, Some(s.received_at))
            }
            (_, Some(c)) => (Some(c.by.clone()), Some(c.at), None),
            _ => (None, None, None),
        };
        let mut fields: Vec<DeskFieldView> = Vec::new();
        for r in recs {
            let implied = match r.mutation().kind {
                MutationKind::Complete => Some(Status::Completed),
                MutationKind::Cancel => Some(Status::Cancelled),
                _ => None,
            };
            if let Some(s) = implied.filter(|_| fields.iter().all(|f| f.field != "status")) {
                fields.push(DeskFieldView {
                    field: "status".into(),
                    label: "Status".into(),
                    base: None,
                    technician: Some(status_words(s).into()),
                    technician_at: r.view().device_time,
                    current: Some(status_words(current.status).into()),
                    current_by: status_by.clone(),
                    current_at: status_at,
                    current_received_at: status_received,
                    text: false,
                });
            }
        }
        for r in recs {
            let conflict_fields = match r {
                Rec::Conflict(c) => c.fields.clone(),
                Rec::Failed(_) => Vec::new(),
            };
            for op in &r.mutation().ops {
                let Op::Set(set) = op else { continue };
                let key = set.field_key();
                let known = conflict_fields.iter().find(|f| f.field == key);
                let cur = merge::current_as_set(&current, set);
                let stamped = known.and_then(|f| f.server_set.as_ref()).filter(|_| {
                    // Only while the value is still the one the record names.
                    known.and_then(|f| f.server.as_ref()) == cur.as_ref()
                });
                let (by, at, received) = match (stamped, &cur, &cancellation) {
                    (Some(s), _, _) => {
                        (Some(s.username.clone()), s.device_time, Some(s.received_at))
                    }
                    (None, Some(SetOp::Status(Status::Cancelled)), Some(_)) => {
                        (status_by.clone(), status_at, status_received)
                    }
                    _ => (None, None, None),
                };
                let view = DeskFieldView {
                    field: key.clone(),
                    label: field_label(&key, Some(&current)),
                    base: known
                        .and_then(|f| f.base.as_ref())
                        .map(|b| set_words(b, Some(&current))),
                    technician: Some(set_words(set, Some(&after))),
                    technician_at: r.view().device_time,
                    current: cur.as_ref().map(|c| set_words(c, Some(&current))),
                    current_by: by,
                    current_at: at,
                    current_received_at: received,
                    text: matches!(set, SetOp::Title(_) | SetOp::Description(_)),
                };
                match fields.iter_mut().find(|f| f.field == key) {
                    Some(f) => {
                        *f = DeskFieldView {
                            base: f.base.clone().or(view.base.clone()),
                            ..view
                        }
                    }
                    None => fields.push(view),
                }
            }
        }
        let choosable = fields.iter().map(|f| f.field.clone()).collect();
        let checklist = after
            .checklist
            .iter()
            .map(|c| DeskCheckView {
                id: c.id.clone(),
                label: c.label.clone(),
                required: c.required,
                current_done: current.checklist.iter().any(|x| x.id == c.id && x.done),
                technician_done: c.done,
            })
            .collect();
        let mut notes = Vec::new();
        let mut time_entries = Vec::new();
        let mut evidence: Vec<DeskEvidenceView> = Vec::new();
        for r in recs {
            for op in &r.mutation().ops {
                match op {
                    Op::AppendNote { note } => notes.push(DeskNoteView {
                        author: note.author.clone(),
                        at: note.at,
                        text: note.text.clone(),
                    }),
                    Op::Add(ListItem::TimeEntries(t)) => time_entries.push(DeskTimeView {
                        started_at: t.started_at,
                        ended_at: t.ended_at,
                        duration: duration_words(t.started_at, t.ended_at),
                        note: t.note.clone(),
                    }),
                    Op::Add(ListItem::Photos(p)) => {
                        evidence.push(self.evidence_view("photo", &p.hash, &p.caption))
                    }
                    Op::Set(SetOp::Signature(Some(s))) => {
                        evidence.push(self.evidence_view("signature", &s.hash, &s.signer))
                    }
                    _ => {}
                }
            }
        }
        evidence.dedup_by(|a, b| a.hash == b.hash);
        let mut technicians: Vec<String> = recs.iter().map(|r| r.username().to_owned()).collect();
        technicians.sort();
        technicians.dedup();
        let mut reasons: Vec<String> = recs.iter().map(Rec::reason).collect();
        reasons.sort();
        reasons.dedup();
        let records: Vec<DeskRecordView> = recs.iter().map(Rec::view).collect();
        let summary = records
            .iter()
            .map(|r| r.summary.clone())
            .collect::<Vec<_>>()
            .join(" ");
        let technical: Vec<serde_json::Value> = recs
            .iter()
            .map(|r| match r {
                Rec::Conflict(c) => serde_json::to_value(c),
                Rec::Failed(f) => serde_json::to_value(f),
            })
            .collect::<Result<_, _>>()
            .map_err(|e| CoreError::BadInput(format!("a record cannot be shown: {e}")))?;
        Ok(DeskItemView {
            order_id: order_id.to_string(),
            order_number: current.number.and_then(|n| u32::try_from(n).ok()),
            title: current.title.clone(),
            technicians,
            reasons,
            summary,
            oldest_at: oldest,
            age_secs: (now - oldest).num_seconds().max(0),
            records,
            fields,
            checklist,
            notes,
            parts: parts_view(&current, &after, &lookup),
            time_entries,
            evidence,
            cancellation,
            choosable,
            technical_details: serde_json::to_string_pretty(&technical).unwrap_or_default(),
        })
    }

    fn evidence_view(&self, kind: &str, hash: &str, label: &str) -> DeskEvidenceView {
        // Its row is written with the file (`put_attachment`): no decryption to know.
        let cached = matches!(self.store.attachment_meta(hash), Ok(Some(_)));
        DeskEvidenceView {
            kind: kind.into(),
            hash: hash.into(),
            label: label.into(),
            state: if cached { "cached" } else { "not_downloaded" }.into(),
        }
    }

    /// Fetch the signature and photos of a desk item that are not on this device yet,
    /// and keep them (encrypted, as every attachment). Returns how many were fetched.
    pub async fn fetch_desk_evidence(
        &mut self,
        order_id: &str,
        client: &ClientOptions,
    ) -> Result<usize, CoreError> {
        self.prepare_evidence_fetch(order_id, client)?.run().await
    }

    /// The files of a desk item still to fetch, on a connection of its own so that the
    /// download runs without holding this one (the desktop's commands share it).
    pub fn prepare_evidence_fetch(
        &self,
        order_id: &str,
        client: &ClientOptions,
    ) -> Result<EvidenceFetch, CoreError> {
        let page = self.desk(&DeskFilter {
            limit: Some(u32::MAX),
            ..DeskFilter::default()
        })?;
        let files = page
            .items
            .into_iter()
            .filter(|i| i.order_id == order_id)
            .flat_map(|i| i.evidence)
            .filter(|e| e.state != "cached")
            .map(|e| {
                let media = if e.kind == "signature" {
                    "image/png"
                } else {
                    "image/jpeg"
                };
                (e.hash, media.to_owned())
            })
            .collect();
        Ok(EvidenceFetch {
            store: self.connect()?,
            client: client.clone(),
            clock: self.clock.clone(),
            files,
        })
    }

    /// A cached signature or photo as a `data:` URL for an `<img>` (none while it is
    /// not downloaded).
    pub fn desk_evidence_url(&self, hash: &str) -> Result<Option<String>, CoreError> {
        use base64::Engine as _;
        let Ok(bytes) = self.store.attachment(hash) else {
            return Ok(None);
        };
        let media = self
            .store
            .attachment_meta(hash)?
            .map(|m| m.media_type)
            .filter(|m| m.starts_with("image/"))
            .unwrap_or_else(|| "image/png".into());
        Ok(Some(format!(
            "data:{media};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )))
    }

    /// A cached signature or photo of the desk (decrypted, checked).
    pub fn desk_evidence_bytes(&self, hash: &str) -> Result<Vec<u8>, CoreError> {
        self.attachment(hash)
    }

    /// The resolutions a decision makes for one order's records.
    fn decision_mutations(
        &self,
        recs: &[Rec],
        input: &DecisionInput,
    ) -> Result<Vec<Mutation>, CoreError> {
        let now = self.clock.now();
        let current = recs
            .first()
            .and_then(|r| self.store.order(&r.order_id().to_string()).ok())
            .map(|r| r.order);
        let mut out = Vec::new();
        for r in recs {
            let ops: Vec<Op> = match input.action.as_str() {
                "keep" | "discard" => Vec::new(),
                "accept" => match r {
                    Rec::Conflict(c) => c.resolution_ops(&ResolutionChoice::AcceptDevice),
                    Rec::Failed(f) => f.mutation.ops.clone(),
                },
                "per_field" => {
                    let mut ops: Vec<Op> = r
                        .mutation()
                        .ops
                        .iter()
                        .filter(
                            |op| matches!(op, Op::Set(s) if input.fields.contains(&s.field_key())),
                        )
                        .cloned()
                        .collect();
                    for e in &input.edits {
                        if r.mutation()
                            .ops
                            .iter()
                            .any(|op| matches!(op, Op::Set(s) if s.field_key() == e.field))
                        {
                            ops.retain(|op| !matches!(op, Op::Set(s) if s.field_key() == e.field));
                            ops.push(Op::Set(crate::records::set_from_text(&e.field, &e.value)?));
                        }
                    }
                    ops
                }
                "reopen" => {
                    let mut ops = vec![Op::Set(SetOp::Status(Status::Scheduled))];
                    if let Some(a) = &input.assignee {
                        ops.push(Op::Set(SetOp::Assignee(Some(a.clone()))));
                    }
                    // Once: the first record of the order carries it, the others are kept.
                    if !out.is_empty() {
                        ops.clear();
                    }
                    ops
                }
                other => {
                    return Err(CoreError::BadInput(format!(
                        "{other:?} is not a decision (accept, keep, per_field, reopen or discard)"
                    )))
                }
            };
            let mut m = match r {
                Rec::Conflict(c) => {
                    let mut m = Mutation {
                        mutation_id: Uuid::now_v7(),
                        device_id: self.device_id,
                        entity: EntityKind::Conflict,
                        entity_id: c.id,
                        kind: MutationKind::Resolve,
                        base_version: c.version,
                        format: FORMAT_VERSION,
                        device_time: now,
                        seen: Vec::new(),
                        ops,
                        base_epoch: None,
                        reason: None,
                    };
                    m.seen = c.seen_for(&m.ops);
                    m
                }
                Rec::Failed(f) => {
                    let mut m = f.resolve_mutation(ops, Uuid::now_v7(), self.device_id, now);
                    if let Some(o) = &current {
                        m.seen = merge::seen_on(o, &m.ops);
                    }
                    m
                }
            };
            m.reason = Some(input.reason.trim().to_owned()).filter(|s| !s.is_empty());
            out.push(m);
        }
        Ok(out)
    }

    /// Decide one or more desk items with one reason: every record of each order is
    /// settled by one resolution, all saved in one transaction, and held for
    /// [`UNDO_WINDOW_SECS`] before the engine sends them.
    pub fn decide(&mut self, input: DecisionInput) -> Result<DecisionReceipt, CoreError> {
        if input.reason.trim().is_empty() {
            return Err(outpost_protocol::ValidationErrors::single(
                "reason",
                "required",
                "say why: the technician sees it",
            )
            .into());
        }
        let (mut by_order, _) = self.desk_records()?;
        let mut all = Vec::new();
        for id in &input.order_ids {
            let key = Uuid::parse_str(id)
                .map_err(|_| CoreError::BadInput(format!("{id:?} is not an order id")))?;
            let recs = by_order.remove(&key).ok_or_else(|| {
                CoreError::NotFound(format!(
                    "order {id} has nothing open on the desk (decided already?)"
                ))
            })?;
            all.extend(self.decision_mutations(&recs, &input)?);
        }
        let now = self.clock.now();
        let sends_at = now + chrono::Duration::seconds(UNDO_WINDOW_SECS);
        let mutation_ids = all.iter().map(|m| m.mutation_id.to_string()).collect();
        let resolutions = u32::try_from(all.len()).unwrap_or(u32::MAX);
        self.store.enqueue_decision(all, now, sends_at)?;
        Ok(DecisionReceipt {
            orders: u32::try_from(input.order_ids.len()).unwrap_or(u32::MAX),
            resolutions,
            sends_at,
            mutation_ids,
        })
    }

    /// Take back a decision in its undo window; returns how many resolutions were
    /// taken back (none once the engine sent them: decide again to reverse it).
    pub fn undo_decision(&mut self, mutation_ids: &[String]) -> Result<usize, CoreError> {
        Ok(self.store.undo_held(mutation_ids)?)
    }

    /// End the undo window of every held decision (they go with the next pass).
    pub fn send_held_decisions_now(&mut self) -> Result<usize, CoreError> {
        Ok(self.store.release_held()?)
    }

    /// The order as a decision on it would leave it, before confirming.
    pub fn preview_decision(
        &self,
        input: &DecisionInput,
    ) -> Result<Vec<DecisionPreview>, CoreError> {
        let (by_order, _) = self.desk_records()?;
        let lookup = |sku: &str| self.store.inventory_item(sku).ok().flatten();
        let mut out = Vec::new();
        for id in &input.order_ids {
            let key = Uuid::parse_str(id)
                .map_err(|_| CoreError::BadInput(format!("{id:?} is not an order id")))?;
            let Some(recs) = by_order.get(&key) else {
                continue;
            };
            let current = self
                .store
                .order(id)
                .map(|r| r.order)
                .unwrap_or_else(|_| WorkOrder::blank(key));
            let muts = self.decision_mutations(recs, input)?;
            let mut after = current.clone();
            for m in &muts {
                for op in &m.ops {
                    let mut next = after.clone();
                    if apply_ops(&mut next, std::slice::from_ref(op)).is_ok() {
                        after = next;
                    }
                }
            }
            let fields = muts
                .iter()
                .flat_map(|m| m.ops.iter())
                .filter_map(|op| match op {
                    Op::Set(s) => Some(DeskFieldView {
                        field: s.field_key(),
                        label: field_label(&s.field_key(), Some(&current)),
                        base: None,
                        technician: None,
                        technician_at: None,
                        current: Some(set_words(s, Some(&after))),
                        current_by: None,
                        current_at: None,
                        current_received_at: None,
                        text: false,
                    }),
                    _ => None,
                })
                .collect();
            let parts = parts_view(&current, &after, &lookup);
            let moved: Vec<String> = parts
                .iter()
                .filter(|p| p.stock_location.is_some())
                .map(|p| format!("{} {}", p.name, p.effect))
                .collect();
            let name = current
                .number
                .map(|n| format!("#{n}"))
                .unwrap_or_else(|| "The order".into());
            let summary = format!(
                "{name} {} {}{}.",
                if after.status == current.status {
                    "stays"
                } else {
                    "will be"
                },
                status_words(after.status).to_lowercase(),
                if moved.is_empty() {
                    "; no stock moves".to_owned()
                } else {
                    format!("; {}", moved.join("; "))
                }
            );
            out.push(DecisionPreview {
                order_id: id.clone(),
                status: status_words(after.status).into(),
                fields,
                parts,
                summary,
            });
        }
        Ok(out)
    }
}

/// Files of a desk item to download ([`Outpost::prepare_evidence_fetch`]).
pub struct EvidenceFetch {
    store: outpost_store::Store,
    client: ClientOptions,
    clock: std::sync::Arc<dyn outpost_protocol::Clock>,
    files: Vec<(String, String)>,
}

impl EvidenceFetch {
    /// Download each file (checked against its name), keep it encrypted, and mark it
    /// as on the server (nothing to upload). Returns how many were fetched.
    pub async fn run(mut self) -> Result<usize, CoreError> {
        if self.files.is_empty() {
            return Ok(0);
        }
        let session = self
            .store
            .session()?
            .ok_or(outpost_sync::SyncError::NotSignedIn)?;
        let c = outpost_sync::SyncClient::new(&session.server_url, &self.client)?;
        let mut fetched = 0;
        for (hash, media) in &self.files {
            let now = self.clock.now();
            let bytes = outpost_sync::fetch_attachment(&mut self.store, &c, now, hash).await?;
            self.store.put_attachment(&bytes, media, now)?;
            self.store.mark_uploaded(hash)?;
            fetched += 1;
        }
        Ok(fetched)
    }
}

/// A decision's outcome in words.
pub fn outcome_words(o: ResolutionOutcome) -> &'static str {
    match o {
        ResolutionOutcome::AcceptedDevice => "accepted the technician's work",
        ResolutionOutcome::KeptServer => "kept the order as it was",
        ResolutionOutcome::Merged => "chose per field",
        ResolutionOutcome::Dismissed => "set the change aside",
        ResolutionOutcome::Applied => "applied the change",
    }
}

/// A decision on a technician's own change, as their device tells them (issue 20
/// item 4): on the order and as a notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct NoticeView {
    /// The record decided.
    pub id: String,
    pub order_id: String,
    pub order_number: Option<u32>,
    /// "Your completion of #122 was set aside: customer cancelled by phone".
    pub text: String,
    pub decided_by: String,
    pub decided_at: DateTime<Utc>,
    pub reason: Option<String>,
    /// Read (dismissed) already.
    pub read: bool,
}

const READ_NOTICES: &str = "desk_notices_read";
const ANNOUNCED_NOTICES: &str = "desk_notices_announced";

fn notice_text(kind: MutationKind, number: Option<u64>, res: &Resolution) -> String {
    let what = kind_words(kind);
    let order = number
        .map(|n| format!("#{n}"))
        .unwrap_or_else(|| "an order".into());
    let be = if kind == MutationKind::Update {
        "were"
    } else {
        "was"
    };
    let verdict = match res.outcome {
        ResolutionOutcome::AcceptedDevice | ResolutionOutcome::Applied => "accepted",
        ResolutionOutcome::Merged => "partly accepted",
        ResolutionOutcome::KeptServer | ResolutionOutcome::Dismissed => "set aside",
    };
    let verdict = format!("{be} {verdict}");
    match &res.reason {
        Some(r) => format!("Your {what} of {order} {verdict}: {r}"),
        None => format!("Your {what} of {order} {verdict} by {}", res.decided_by),
    }
}

impl Outpost {
    /// Decisions others made on this user's changes (newest first), for the order
    /// screen and the notifications.
    pub fn decision_notices(&self) -> Result<Vec<NoticeView>, CoreError> {
        let me = self.username()?;
        let read: Vec<String> = self
            .store
            .get_setting(READ_NOTICES)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        let mut out = Vec::new();
        for entity in ["conflict", "failed_sync"] {
            for r in self.store.records(entity)? {
                let rec = if entity == "conflict" {
                    serde_json::from_value::<ConflictRecord>(r.body)
                        .ok()
                        .map(|c| Rec::Conflict(Box::new(c)))
                } else {
                    serde_json::from_value::<FailedSyncRecord>(r.body)
                        .ok()
                        .map(|f| Rec::Failed(Box::new(f)))
                };
                let Some(rec) = rec else { continue };
                let res = match &rec {
                    Rec::Conflict(c) => c.resolution.clone(),
                    Rec::Failed(f) => f.resolution.clone(),
                };
                let Some(res) = res else { continue };
                if rec.username() != me || res.decided_by == me {
                    continue;
                }
                let number = match &rec {
                    Rec::Conflict(c) => c.order_number,
                    Rec::Failed(_) => None,
                }
                .or_else(|| {
                    self.store
                        .order(&rec.order_id().to_string())
                        .ok()
                        .and_then(|o| o.order.number)
                });
                let id = rec.id().to_string();
                out.push(NoticeView {
                    read: read.contains(&id),
                    text: notice_text(rec.mutation().kind, number, &res),
                    id,
                    order_id: rec.order_id().to_string(),
                    order_number: number.and_then(|n| u32::try_from(n).ok()),
                    decided_by: res.decided_by.clone(),
                    decided_at: res.decided_at,
                    reason: res.reason.clone(),
                });
            }
        }
        out.sort_by_key(|n| std::cmp::Reverse(n.decided_at));
        Ok(out)
    }

    /// The decisions on one order's changes (the order screen).
    pub fn order_decisions(&self, order_id: &str) -> Result<Vec<NoticeView>, CoreError> {
        Ok(self
            .decision_notices()?
            .into_iter()
            .filter(|n| n.order_id == order_id)
            .collect())
    }

    /// The notices not announced yet (each once: the shell's notification after a
    /// pass), remembered as announced.
    pub fn take_new_decision_notices(&mut self) -> Result<Vec<NoticeView>, CoreError> {
        let announced: Vec<String> = self
            .store
            .get_setting(ANNOUNCED_NOTICES)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        let fresh: Vec<NoticeView> = self
            .decision_notices()?
            .into_iter()
            .filter(|n| !n.read && !announced.contains(&n.id))
            .collect();
        if !fresh.is_empty() {
            let mut all = announced;
            all.extend(fresh.iter().map(|n| n.id.clone()));
            let json = serde_json::to_string(&all)
                .map_err(|e| CoreError::BadInput(format!("notices cannot be saved: {e}")))?;
            self.store.set_setting(ANNOUNCED_NOTICES, &json)?;
        }
        Ok(fresh)
    }

    /// Mark notices read (the notification was shown or dismissed).
    pub fn mark_notices_read(&mut self, ids: &[String]) -> Result<(), CoreError> {
        let mut read: Vec<String> = self
            .store
            .get_setting(READ_NOTICES)?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default();
        for id in ids {
            if !read.contains(id) {
                read.push(id.clone());
            }
        }
        let json = serde_json::to_string(&read)
            .map_err(|e| CoreError::BadInput(format!("notices cannot be saved: {e}")))?;
        Ok(self.store.set_setting(READ_NOTICES, &json)?)
    }
}
