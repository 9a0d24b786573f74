//! Helpers shared by the store's unit tests.

use chrono::Utc;
use outpost_protocol::mutation::EntityKind;
use outpost_protocol::{Mutation, MutationKind, Op, WorkOrder, FORMAT_VERSION};
use uuid::Uuid;

/// A user's update of `order` (as it is now) made of `ops`.
pub(crate) fn update(order: &WorkOrder, ops: Vec<Op>) -> Mutation {
    Mutation {
        mutation_id: Uuid::now_v7(),
        device_id: Uuid::nil(),
        entity: EntityKind::WorkOrder,
        entity_id: order.id,
        kind: MutationKind::Update,
        base_version: order.version,
        format: FORMAT_VERSION,
        device_time: Utc::now(),
        ops,
    }
}
