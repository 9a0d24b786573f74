//! The mutation format (protocol v1): what a device records for each user action and
//! what the server applies.
//!
//! A mutation is a list of field operations on one entity, made against the server
//! version the device had (`base_version`). Scalar fields are `set`; lists whose items
//! have ids take `add`/`remove`; notes are append-only. The shape is chosen so that the
//! server can decide conflicts per field and so that list edits and notes never conflict.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{
    ChecklistItem, Customer, Equipment, NoteEntry, PartUsed, PhotoRef, Priority, ScheduledWindow,
    Signature, TimeEntry,
};
use crate::status::Status;

/// Version of the mutation body format. Bumped only with a migration path.
pub const FORMAT_VERSION: u16 = 1;

/// What a mutation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    WorkOrder,
    Conflict,
    FailedSync,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::WorkOrder => "work_order",
            EntityKind::Conflict => "conflict",
            EntityKind::FailedSync => "failed_sync",
        }
    }
}

/// The user action a mutation records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MutationKind {
    Create,
    Update,
    Complete,
    Assign,
    Cancel,
    Resolve,
}

impl MutationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MutationKind::Create => "create",
            MutationKind::Update => "update",
            MutationKind::Complete => "complete",
            MutationKind::Assign => "assign",
            MutationKind::Cancel => "cancel",
            MutationKind::Resolve => "resolve",
        }
    }
}

/// A scalar field and its new value. The field name is the conflict unit on the server
/// (see [`SetOp::field_key`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "field", content = "value", rename_all = "snake_case")]
pub enum SetOp {
    Title(String),
    Description(String),
    Priority(Priority),
    Status(Status),
    Customer(Customer),
    Site(Site),
    Equipment(Equipment),
    Scheduled(Option<ScheduledWindow>),
    Assignee(Option<String>),
    Signature(Option<Signature>),
    CompletedAt(#[serde(serialize_with = "crate::time_json::opt_utc")] Option<DateTime<Utc>>),
    /// Tick or untick one checklist item.
    ChecklistDone {
        item_id: String,
        done: bool,
    },
    /// Stop a running timer.
    TimeEntryEnded {
        entry_id: Uuid,
        #[serde(serialize_with = "crate::time_json::utc")]
        ended_at: DateTime<Utc>,
    },
}

// `Site` holds floats, so it is PartialEq but not Eq; re-exported here for the variant.
use crate::domain::Site;

impl SetOp {
    /// The name under which the server tracks this field's last change: one name per
    /// scalar, and one per checklist item or timer so that ticking two different items
    /// on two devices never conflicts.
    pub fn field_key(&self) -> String {
        match self {
            SetOp::Title(_) => "title".into(),
            SetOp::Description(_) => "description".into(),
            SetOp::Priority(_) => "priority".into(),
            SetOp::Status(_) => "status".into(),
            SetOp::Customer(_) => "customer".into(),
            SetOp::Site(_) => "site".into(),
            SetOp::Equipment(_) => "equipment".into(),
            SetOp::Scheduled(_) => "scheduled".into(),
            SetOp::Assignee(_) => "assignee".into(),
            SetOp::Signature(_) => "signature".into(),
            SetOp::CompletedAt(_) => "completed_at".into(),
            SetOp::ChecklistDone { item_id, .. } => format!("checklist.{item_id}.done"),
            SetOp::TimeEntryEnded { entry_id, .. } => format!("time_entries.{entry_id}.ended_at"),
        }
    }
}

/// Lists whose items have ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ListName {
    Checklist,
    PartsUsed,
    Photos,
    TimeEntries,
}

impl ListName {
    pub fn as_str(self) -> &'static str {
        match self {
            ListName::Checklist => "checklist",
            ListName::PartsUsed => "parts_used",
            ListName::Photos => "photos",
            ListName::TimeEntries => "time_entries",
        }
    }
}

/// An item added to a list, tagged with the list it goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "list", content = "item", rename_all = "snake_case")]
pub enum ListItem {
    Checklist(ChecklistItem),
    PartsUsed(PartUsed),
    Photos(PhotoRef),
    TimeEntries(TimeEntry),
}

impl ListItem {
    pub fn list(&self) -> ListName {
        match self {
            ListItem::Checklist(_) => ListName::Checklist,
            ListItem::PartsUsed(_) => ListName::PartsUsed,
            ListItem::Photos(_) => ListName::Photos,
            ListItem::TimeEntries(_) => ListName::TimeEntries,
        }
    }

    /// The item's id within its list (a photo's id is its hash).
    pub fn item_id(&self) -> String {
        match self {
            ListItem::Checklist(c) => c.id.clone(),
            ListItem::PartsUsed(p) => p.id.to_string(),
            ListItem::Photos(p) => p.hash.clone(),
            ListItem::TimeEntries(t) => t.id.to_string(),
        }
    }
}

/// One field operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    Set(SetOp),
    Add(ListItem),
    Remove { list: ListName, item_id: String },
    AppendNote { note: NoteEntry },
}

/// A recorded user action, the unit of upload and of idempotency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mutation {
    /// UUIDv7 made on the device: the idempotency key.
    pub mutation_id: Uuid,
    /// Made once per data directory, kept across sign-ins.
    pub device_id: Uuid,
    pub entity: EntityKind,
    pub entity_id: Uuid,
    pub kind: MutationKind,
    /// The server version of the entity the change was made on; 0 for a create.
    pub base_version: u64,
    /// Body format version ([`FORMAT_VERSION`]).
    pub format: u16,
    /// The device's clock when the action was taken (recorded, never trusted for order).
    #[serde(serialize_with = "crate::time_json::utc")]
    pub device_time: DateTime<Utc>,
    pub ops: Vec<Op>,
    /// Protocol 2: the server epoch `base_version` belongs to (a pull page's `epoch`).
    /// A base from another epoch (a timeline lost in a restore) is unknown to the
    /// server. Absent in protocol 1 bodies and for creates: the server takes the
    /// current epoch. Left out when empty, so that a body written before the field
    /// existed re-serializes byte for byte (docs/protocol.md, "Compatibility").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_epoch: Option<String>,
    /// Protocol 2, resolutions: the value of each field the resolution sets as the
    /// person saw it when deciding. A field whose current value differs is not
    /// overwritten: it becomes a new conflict. Left out when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<SetOp>,
    /// Resolutions (issue 20): the dispatcher's reason, which the technician sees with
    /// the outcome ("…was set aside: customer cancelled by phone"). Left out when
    /// empty; never sent inside a record to a client older than
    /// `compat::since::DECISION_REASON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Mutation {
    /// Whether `next` (a later, unsent mutation of the same entity) may be folded into
    /// this one. Completions, cancellations, assignments and resolutions stay separate
    /// so that each keeps its own meaning (and its own lane) on the wire; and a
    /// mutation never grows past the ops the server accepts in one.
    pub fn can_coalesce_with(&self, next: &Mutation) -> bool {
        self.entity == next.entity
            && self.entity_id == next.entity_id
            && self.device_id == next.device_id
            && matches!(self.kind, MutationKind::Create | MutationKind::Update)
            && next.kind == MutationKind::Update
            && self.op_count() + next.op_count() <= crate::limits::OPS_PER_MUTATION_MAX
    }

    /// The operations this mutation carries, as [`crate::limits::OPS_PER_MUTATION_MAX`]
    /// counts them: its `ops` and its `seen` values.
    pub fn op_count(&self) -> usize {
        self.ops.len() + self.seen.len()
    }

    /// Fold `next` into this mutation: its ops follow ours in order; the oldest base
    /// version (ours) and our id and kind are kept. An earlier `set` of a field that a
    /// later `set` overwrites is dropped (it cannot change the outcome), so ticking a box
    /// a hundred times does not grow the row a hundred ops. The caller checks
    /// [`Mutation::can_coalesce_with`] first.
    pub fn coalesce(&mut self, next: Mutation) {
        debug_assert!(self.can_coalesce_with(&next));
        self.fold(next.ops, next.device_time);
    }

    /// Fold a later change of the same order and device that the server holds in the
    /// same conflict as this one (any kind): as [`Mutation::coalesce`], and a
    /// completion makes the whole a completion (its evidence is among the ops).
    pub fn absorb_held(&mut self, next: &Mutation) {
        if next.kind == MutationKind::Complete {
            self.kind = MutationKind::Complete;
        }
        self.fold(next.ops.clone(), next.device_time);
    }

    fn fold(&mut self, ops: Vec<Op>, device_time: DateTime<Utc>) {
        self.ops.extend(ops);
        self.device_time = device_time.max(self.device_time);
        let mut seen = std::collections::HashSet::new();
        let mut kept: Vec<Op> = Vec::with_capacity(self.ops.len());
        for op in self.ops.drain(..).rev() {
            if let Op::Set(set) = &op {
                if !seen.insert(set.field_key()) {
                    continue;
                }
            }
            kept.push(op);
        }
        kept.reverse();
        self.ops = kept;
    }

    /// The canonical body bytes: what is hashed for idempotency and resent byte for
    /// byte once sealed.
    pub fn to_body(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// This mutation as a client of protocol `version` can read it: the members that
    /// version does not know are left out (they are all optional, so what remains is
    /// a valid body of that version). The server shapes the mutations inside conflict
    /// and failed-sync records with it for older clients.
    pub fn for_protocol(&self, version: u32) -> std::borrow::Cow<'_, Mutation> {
        if version >= crate::compat::since::BASE_EPOCH_AND_SEEN
            || (self.base_epoch.is_none() && self.seen.is_empty() && self.reason.is_none())
        {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut older = self.clone();
        older.base_epoch = None;
        older.seen.clear();
        older.reason = None;
        std::borrow::Cow::Owned(older)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Quantity;
    use proptest::prelude::*;

    fn sample_ops() -> Vec<Op> {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid timestamp");
        vec![
            Op::Set(SetOp::Title("Fix pump".into())),
            Op::Set(SetOp::Priority(Priority::Urgent)),
            Op::Set(SetOp::Scheduled(None)),
            Op::Set(SetOp::ChecklistDone {
                item_id: "c1".into(),
                done: true,
            }),
            Op::Add(ListItem::PartsUsed(PartUsed {
                id: Uuid::nil(),
                sku: "FLT-10".into(),
                quantity: Quantity(2500),
            })),
            Op::Remove {
                list: ListName::Photos,
                item_id: "ab".into(),
            },
            Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::nil(),
                    author: "tech1".into(),
                    text: "Replaced seal".into(),
                    at: t,
                },
            },
        ]
    }

    #[test]
    fn ops_have_a_readable_wire_shape() {
        let json = serde_json::to_value(sample_ops()).expect("serialize");
        assert_eq!(
            json[0],
            serde_json::json!({"op": "set", "field": "title", "value": "Fix pump"})
        );
        assert_eq!(
            json[3],
            serde_json::json!({"op": "set", "field": "checklist_done", "value": {"item_id": "c1", "done": true}})
        );
        assert_eq!(json[4]["op"], "add");
        assert_eq!(json[4]["list"], "parts_used");
        assert_eq!(json[4]["item"]["quantity"], serde_json::json!(2.5));
        assert_eq!(
            json[5],
            serde_json::json!({"op": "remove", "list": "photos", "item_id": "ab"})
        );
        assert_eq!(json[6]["op"], "append_note");
    }

    #[test]
    fn mutations_round_trip_through_json() {
        let m = Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: Uuid::new_v4(),
            entity: EntityKind::WorkOrder,
            entity_id: Uuid::now_v7(),
            kind: MutationKind::Update,
            base_version: 7,
            format: FORMAT_VERSION,
            device_time: DateTime::<Utc>::from_timestamp(1_700_000_000, 5)
                .expect("valid timestamp"),
            ops: sample_ops(),
            base_epoch: None,
            reason: None,
            seen: Vec::new(),
        };
        let body = m.to_body().expect("serialize");
        let back: Mutation = serde_json::from_slice(&body).expect("deserialize");
        assert_eq!(back, m);
        assert_eq!(
            back.to_body().expect("serialize"),
            body,
            "re-serializing gives the same bytes"
        );
    }

    /// A body written before `base_epoch` and `seen` existed (protocol 1, release
    /// 0.1.0) reads and re-serializes byte for byte, so its idempotency hash is the
    /// same on a new server (`duplicate`, never `mutation_id_reused`); and a mutation
    /// with the new members reads back without them for a protocol 1 client.
    #[test]
    fn a_protocol_1_body_re_serializes_byte_for_byte() {
        let v1 = concat!(
            r#"{"mutation_id":"01939a5e-7c3a-7b1e-9f00-000000000001","#,
            r#""device_id":"5f0c6d4e-8a2b-4c1d-9e3f-000000000002","entity":"work_order","#,
            r#""entity_id":"01939a5e-7c3a-7b1e-9f00-000000000003","kind":"update","#,
            r#""base_version":4,"format":1,"device_time":"2026-12-06T10:11:12.345678Z","#,
            r#""ops":[{"op":"set","field":"title","value":"Pump"},"#,
            r#"{"op":"set","field":"checklist_done","value":{"item_id":"c1","done":true}}]}"#
        );
        let m: Mutation = serde_json::from_str(v1).expect("a protocol 1 body reads");
        assert_eq!((m.base_epoch.as_deref(), m.seen.len()), (None, 0));
        assert_eq!(m.to_body().expect("json"), v1.as_bytes());
        let mut v2 = m.clone();
        v2.base_epoch = Some("e2".into());
        v2.seen = vec![SetOp::Title("Old".into())];
        let body = String::from_utf8(v2.to_body().expect("json")).expect("utf-8");
        assert!(body.ends_with(r#","base_epoch":"e2","seen":[{"field":"title","value":"Old"}]}"#));
        assert_eq!(v2.for_protocol(1).to_body().expect("json"), v1.as_bytes());
        assert_eq!(*v2.for_protocol(2), v2);
        // A decision's reason (issue 20): sent to protocol 2 readers, never to 1.
        let mut reasoned = m.clone();
        reasoned.reason = Some("customer cancelled by phone".into());
        let body = String::from_utf8(reasoned.to_body().expect("json")).expect("utf-8");
        assert!(
            body.ends_with(r#","reason":"customer cancelled by phone"}"#),
            "{body}"
        );
        assert_eq!(
            reasoned.for_protocol(1).to_body().expect("json"),
            v1.as_bytes()
        );
        assert_eq!(*reasoned.for_protocol(2), reasoned);
    }

    #[test]
    fn malformed_ops_are_refused() {
        for bad in [
            r#"{"op":"set","field":"colour","value":"red"}"#,
            r#"{"op":"set","field":"priority","value":"whenever"}"#,
            r#"{"op":"add","list":"wishes","item":{}}"#,
            r#"{"op":"explode"}"#,
        ] {
            assert!(serde_json::from_str::<Op>(bad).is_err(), "{bad} is refused");
        }
    }

    #[test]
    fn field_keys_separate_checklist_items() {
        let a = SetOp::ChecklistDone {
            item_id: "a".into(),
            done: true,
        };
        let b = SetOp::ChecklistDone {
            item_id: "b".into(),
            done: true,
        };
        assert_ne!(a.field_key(), b.field_key());
        assert_eq!(SetOp::Title(String::new()).field_key(), "title");
    }

    fn update(entity_id: Uuid, kind: MutationKind, base: u64, title: &str) -> Mutation {
        Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: Uuid::nil(),
            entity: EntityKind::WorkOrder,
            entity_id,
            kind,
            base_version: base,
            format: FORMAT_VERSION,
            device_time: DateTime::<Utc>::from_timestamp(1_700_000_000, 0)
                .expect("valid timestamp"),
            ops: vec![Op::Set(SetOp::Title(title.into()))],
            base_epoch: None,
            reason: None,
            seen: Vec::new(),
        }
    }

    #[test]
    fn completions_never_coalesce() {
        let id = Uuid::now_v7();
        let a = update(id, MutationKind::Update, 1, "a");
        let c = update(id, MutationKind::Complete, 1, "c");
        assert!(!a.can_coalesce_with(&c));
        assert!(!c.can_coalesce_with(&a));
        assert!(!a.can_coalesce_with(&update(Uuid::now_v7(), MutationKind::Update, 1, "x")));
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("valid timestamp");
        prop_oneof![
            "[a-z]{1,6}".prop_map(|s| Op::Set(SetOp::Title(s))),
            "[a-z]{0,6}".prop_map(|s| Op::Set(SetOp::Description(s))),
            (0usize..3, any::<bool>()).prop_map(|(i, done)| Op::Set(SetOp::ChecklistDone {
                item_id: format!("c{i}"),
                done
            })),
            (0u128..4, 1i64..5).prop_map(|(i, q)| Op::Add(ListItem::PartsUsed(PartUsed {
                id: Uuid::from_u128(i),
                sku: format!("S{i}"),
                quantity: Quantity(q * 1000),
            }))),
            (0u128..4).prop_map(|i| Op::Remove {
                list: ListName::PartsUsed,
                item_id: Uuid::from_u128(i).to_string()
            }),
            (0u128..1000, "[a-z]{1,6}").prop_map(move |(i, text)| Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::from_u128(i),
                    author: "t".into(),
                    text,
                    at: t
                }
            }),
        ]
    }

    fn with_checklist() -> crate::domain::WorkOrder {
        let mut o = crate::domain::WorkOrder::blank(Uuid::nil());
        for i in 0..3 {
            o.checklist.push(crate::domain::ChecklistItem {
                id: format!("c{i}"),
                label: "x".into(),
                required: false,
                done: false,
            });
        }
        o
    }

    proptest! {
        #[test]
        fn a_coalesced_mutation_has_the_effect_of_all_its_parts_in_order(
            batches in proptest::collection::vec(proptest::collection::vec(arb_op(), 1..6), 1..6),
            bases in proptest::collection::vec(0u64..100, 6),
        ) {
            let id = Uuid::now_v7();
            let mut muts: Vec<Mutation> = batches.iter().enumerate().map(|(i, ops)| {
                let mut m = update(id, MutationKind::Update, bases[i], "unused");
                m.ops = ops.clone();
                m
            }).collect();
            let mut sequential = with_checklist();
            for m in &muts {
                crate::apply::apply_ops(&mut sequential, &m.ops).expect("ops apply");
            }
            let first_base = muts[0].base_version;
            let first_id = muts[0].mutation_id;
            let mut acc = muts.remove(0);
            for m in muts {
                prop_assert!(acc.can_coalesce_with(&m));
                acc.coalesce(m);
            }
            prop_assert_eq!(acc.base_version, first_base, "the oldest base version is kept");
            prop_assert_eq!(acc.mutation_id, first_id, "the first mutation's id is kept");
            let mut folded = with_checklist();
            crate::apply::apply_ops(&mut folded, &acc.ops).expect("ops apply");
            prop_assert_eq!(folded, sequential, "coalescing changes no outcome");
            let total: usize = batches.iter().map(Vec::len).sum();
            prop_assert!(acc.ops.len() <= total);
        }
    }
}
