//! Failed syncs and conflicts: the use cases behind `outpost failed …`, `outpost
//! conflicts …` and the app's review screens. Nothing here talks to the server: a
//! retry, a discard or a resolution is saved locally and travels with the next sync.

use outpost_protocol::mutation::{EntityKind, SetOp};
use outpost_protocol::wire::{ConflictRecord, FailedSyncRecord};
use outpost_protocol::{Mutation, MutationKind, Op, FORMAT_VERSION};
use outpost_store::{FailedSync, LocalRecord};
use serde::Serialize;
use uuid::Uuid;

use crate::{CoreError, OrderRow, Outpost};

/// A person's choice for one field of a conflict.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldChoice {
    /// The device's value.
    Mine,
    /// The server's value (nothing is sent for the field).
    Theirs,
    /// An edited value: text, or JSON for structured fields.
    Value(String),
}

impl std::str::FromStr for FieldChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "mine" => FieldChoice::Mine,
            "theirs" => FieldChoice::Theirs,
            other => FieldChoice::Value(other.to_owned()),
        })
    }
}

/// A conflict as the review screens show it.
#[derive(Debug, Clone, Serialize)]
pub struct ConflictView {
    pub id: String,
    pub order_id: Option<String>,
    pub status: String,
    /// The server's full record once pulled (fields with base, server and device
    /// values; the whole mutation; the resolution if any).
    pub record: Option<ConflictRecord>,
    /// What the device knows before the record is pulled (the push answer).
    pub raw: serde_json::Value,
    /// A resolution from this device is queued.
    pub resolving: bool,
}

/// Build a `set` for a field key from a person's edited value: JSON where the field is
/// structured, plain text where it is text.
pub fn set_from_text(field: &str, value: &str) -> Result<SetOp, CoreError> {
    let parsed: serde_json::Value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    let field_tag = field.split('.').next().unwrap_or(field);
    let json = if let Some(rest) = field.strip_prefix("checklist.") {
        let item_id = rest.trim_end_matches(".done");
        serde_json::json!({"field": "checklist_done", "value": {"item_id": item_id, "done": parsed}})
    } else {
        serde_json::json!({"field": field_tag, "value": parsed})
    };
    serde_json::from_value(json)
        .map_err(|e| CoreError::BadInput(format!("{value:?} is not a value for {field}: {e}")))
}

impl Outpost {
    pub fn failed_syncs(&self) -> Result<Vec<FailedSync>, CoreError> {
        Ok(self.store.failed_syncs()?)
    }

    pub fn failed_sync(&self, id: &str) -> Result<FailedSync, CoreError> {
        self.store
            .failed_sync(id)
            .map_err(|_| CoreError::NotFound(format!("no failed sync {id} on this device")))
    }

    /// Send a refused change again, with `fix` ops applied first (an "edit and
    /// resubmit"); without a fix it is resent as it was (after the person fixed the
    /// order by other edits). A new mutation supersedes the failed one.
    pub fn retry_failed(&mut self, id: &str, fix: Vec<Op>) -> Result<OrderRow, CoreError> {
        let failed = self.failed_sync(id)?;
        let base_version = self
            .store
            .order(&failed.order_id)
            .map(|r| r.order.version)
            .unwrap_or(0);
        let old = failed.mutation;
        let mut ops = fix;
        ops.extend(old.ops.iter().cloned());
        let base_version = if old.kind == MutationKind::Create {
            0
        } else {
            base_version
        };
        let m = Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: self.device_id,
            entity: old.entity,
            entity_id: old.entity_id,
            kind: old.kind,
            base_version,
            format: FORMAT_VERSION,
            device_time: self.clock.now(),
            ops,
            base_epoch: self.base_epoch(base_version),
            reason: None,
            seen: Vec::new(),
        };
        let now = self.clock.now();
        self.store.supersede_failed(&failed.id, m, now)?;
        Ok(self.store.order(&failed.order_id)?)
    }

    /// Drop a refused change; the order goes back to what the server has (plus any
    /// other local work), visibly.
    pub fn discard_failed(&mut self, id: &str) -> Result<(), CoreError> {
        let failed = self.failed_sync(id)?;
        let now = self.clock.now();
        Ok(self.store.discard_failed(&failed.id, now)?)
    }

    fn view(&self, r: LocalRecord) -> Result<ConflictView, CoreError> {
        let record: Option<ConflictRecord> = serde_json::from_value(r.body.clone()).ok();
        let resolving = self
            .store
            .outbox()?
            .iter()
            .any(|row| row.entity_id == r.id && row.kind == "resolve");
        Ok(ConflictView {
            id: r.id,
            order_id: r.order_id,
            status: r.status,
            record,
            raw: r.body,
            resolving,
        })
    }

    pub fn conflicts(&self) -> Result<Vec<ConflictView>, CoreError> {
        self.store
            .conflicts()?
            .into_iter()
            .map(|r| self.view(r))
            .collect()
    }

    pub fn conflict(&self, id: &str) -> Result<ConflictView, CoreError> {
        let r = self
            .store
            .conflicts()?
            .into_iter()
            .find(|r| r.id == id || (id.len() >= 8 && r.id.starts_with(id)))
            .ok_or_else(|| CoreError::NotFound(format!("no conflict {id} on this device")))?;
        self.view(r)
    }

    /// Resolve a conflict field by field. Fields not named keep the server's value.
    /// For a conflict that holds a whole mutation (a completion after a cancellation,
    /// a push after a reassignment), `accept_device` applies the device's whole change.
    pub fn resolve_conflict(
        &mut self,
        id: &str,
        choices: &[(String, FieldChoice)],
        accept_device: bool,
    ) -> Result<ConflictView, CoreError> {
        let view = self.conflict(id)?;
        let record = view.record.clone().ok_or_else(|| {
            CoreError::BadInput(
                "this conflict's details have not arrived yet: sync first, then resolve".into(),
            )
        })?;
        if view.status == "resolved" {
            return Err(CoreError::BadInput(format!(
                "this conflict was already resolved{}",
                record
                    .resolution
                    .as_ref()
                    .map(|r| format!(" by {} ({:?})", r.decided_by, r.outcome))
                    .unwrap_or_default()
            )));
        }
        let mut ops = Vec::new();
        if accept_device {
            ops = record.resolution_ops(&outpost_protocol::wire::ResolutionChoice::AcceptDevice);
        } else {
            for (field, choice) in choices {
                let f = record
                    .fields
                    .iter()
                    .find(|f| &f.field == field)
                    .ok_or_else(|| {
                        CoreError::BadInput(format!(
                            "{field} is not a field of this conflict (fields: {})",
                            record
                                .fields
                                .iter()
                                .map(|f| f.field.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })?;
                match choice {
                    FieldChoice::Mine => ops.push(Op::Set(f.device.clone())),
                    FieldChoice::Theirs => {}
                    FieldChoice::Value(text) => ops.push(Op::Set(set_from_text(field, text)?)),
                }
            }
        }
        let m = Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: self.device_id,
            entity: EntityKind::Conflict,
            entity_id: record.id,
            kind: MutationKind::Resolve,
            base_version: record.version,
            format: FORMAT_VERSION,
            device_time: self.clock.now(),
            // What the review screen showed for each field: the record's server side.
            seen: record.seen_for(&ops),
            ops,
            base_epoch: None,
            reason: None,
        };
        let now = self.clock.now();
        self.store.enqueue_resolution(m, now)?;
        self.conflict(&record.id.to_string())
    }

    /// A dispatcher's decision on a failed sync: dismiss it (no ops) or apply `ops`. The
    /// values the dispatcher saw are the order's on this device: a field the server
    /// changed since becomes a new conflict instead of being overwritten.
    pub fn resolve_failed_sync(
        &mut self,
        record: &FailedSyncRecord,
        ops: Vec<Op>,
    ) -> Result<(), CoreError> {
        let mut m = record.resolve_mutation(ops, Uuid::now_v7(), self.device_id, self.clock.now());
        if let Ok(row) = self.store.order(&record.order_id.to_string()) {
            m.seen = outpost_protocol::merge::seen_on(&row.order, &m.ops);
        }
        let now = self.clock.now();
        Ok(self.store.enqueue_resolution(m, now)?)
    }

    /// The fleet's failed syncs as pulled (dispatchers see every one).
    pub fn server_failed_syncs(&self) -> Result<Vec<FailedSyncRecord>, CoreError> {
        Ok(self
            .store
            .records("failed_sync")?
            .into_iter()
            .filter_map(|r| serde_json::from_value(r.body).ok())
            .collect())
    }
}
