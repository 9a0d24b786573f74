//! Helpers shared by the store's unit tests.

use chrono::Utc;
use outpost_protocol::mutation::EntityKind;
use outpost_protocol::{Mutation, MutationKind, Op, WorkOrder, FORMAT_VERSION};
use uuid::Uuid;

/// A user's update of `order` (as it is now) made of `ops`.
pub(crate) fn update(order: &WorkOrder, ops: Vec<Op>) -> Mutation {
    update_at(order.id, order.version, ops)
}

/// A user's update of the order `entity_id`, made when it was at `base_version`.
pub(crate) fn update_at(entity_id: Uuid, base_version: u64, ops: Vec<Op>) -> Mutation {
    Mutation {
        mutation_id: Uuid::now_v7(),
        device_id: Uuid::nil(),
        entity: EntityKind::WorkOrder,
        entity_id,
        kind: MutationKind::Update,
        base_version,
        format: FORMAT_VERSION,
        device_time: Utc::now(),
        ops,
        base_epoch: None,
        reason: None,
        seen: Vec::new(),
    }
}
