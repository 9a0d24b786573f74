//! Where a parts line's stock change lands, and what a change does to stock.
//!
//! One rule, run by the server when it applies a change (`outpost-server`'s push,
//! `adjust_stock`) and by the dispatcher's desk to preview what accepting a change
//! would do, so the preview cannot disagree with the server:
//!
//! - parts come out of (and go back to) the order's assignee's van, the location
//!   `van-<user>`, when the van stocks the item;
//! - else the warehouse: the item's first location, or `main` when it has none;
//! - below zero is allowed (the server flags it for dispatchers).
//!
//! The deltas themselves are [`crate::merge::stock_deltas`]: the difference between
//! the parts lists before and after, per SKU. Pure functions, no I/O.

use serde::{Deserialize, Serialize};

use crate::domain::{InventoryItem, Quantity, StockLevel, WorkOrder};
pub use crate::merge::{stock_deltas, StockDelta};

/// The warehouse location an item without any stock level gets.
pub const WAREHOUSE: &str = "main";

/// How every van's location name begins.
pub const VAN_PREFIX: &str = "van-";

/// The location name of a technician's van.
pub fn van_of(user: &str) -> String {
    format!("{VAN_PREFIX}{user}")
}

/// Whether a location is a van (any technician's); every other location is a
/// warehouse (the device's "warehouse" view sums those).
pub fn is_van(location: &str) -> bool {
    location.starts_with(VAN_PREFIX)
}

/// The index in `item.stock` a delta for an order assigned to `assignee` lands on:
/// the assignee's van when it stocks the item, else the first location; `None` when
/// the item has no location at all (the delta then opens [`WAREHOUSE`]).
pub fn location_index(item: &InventoryItem, assignee: Option<&str>) -> Option<usize> {
    let van = assignee.map(van_of);
    van.as_ref()
        .and_then(|v| item.stock.iter().position(|s| &s.location == v))
        .or(if item.stock.is_empty() { None } else { Some(0) })
}

/// One stock move: `delta_milli` thousandths at `location`, from `before` to `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockMove {
    pub location: String,
    pub before: Quantity,
    pub after: Quantity,
}

/// Add `delta_milli` to `item`'s stock where the rule above puts it; returns the move.
pub fn apply_delta(
    item: &mut InventoryItem,
    delta_milli: i64,
    assignee: Option<&str>,
) -> StockMove {
    let idx = match location_index(item, assignee) {
        Some(i) => i,
        None => {
            item.stock.push(StockLevel {
                location: WAREHOUSE.into(),
                quantity: Quantity(0),
            });
            item.stock.len() - 1
        }
    };
    let level = &mut item.stock[idx];
    let before = level.quantity;
    level.quantity = Quantity(level.quantity.0.saturating_add(delta_milli));
    StockMove {
        location: level.location.clone(),
        before,
        after: level.quantity,
    }
}

/// What a change of an order does to one SKU's stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockEffect {
    pub sku: String,
    /// Negative when parts are used, positive when they go back.
    pub delta_milli: i64,
    /// Where it lands and the quantity there before and after; `None` for a SKU the
    /// caller does not know (the server refuses it, `unknown_sku`).
    pub moved: Option<StockMove>,
    /// The item as it would be after the change.
    pub item_after: Option<InventoryItem>,
}

/// The stock effect of changing an order from `before` (none for a new order) to
/// `after`, given the current inventory (`item` looks a SKU up). The assignee is the
/// order's after the change, as on the server.
pub fn preview(
    before: Option<&WorkOrder>,
    after: &WorkOrder,
    item: impl Fn(&str) -> Option<InventoryItem>,
) -> Vec<StockEffect> {
    stock_deltas(before, after)
        .into_iter()
        .map(|d| {
            let mut found = item(&d.sku);
            let moved = found
                .as_mut()
                .map(|i| apply_delta(i, d.delta_milli, after.assignee.as_deref()));
            StockEffect {
                sku: d.sku,
                delta_milli: d.delta_milli,
                moved,
                item_after: found,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PartUsed;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn item(levels: &[(&str, i64)]) -> InventoryItem {
        InventoryItem {
            sku: "S1".into(),
            name: "Seal kit".into(),
            description: String::new(),
            unit: "each".into(),
            price_cents: 100,
            stock: levels
                .iter()
                .map(|(l, q)| StockLevel {
                    location: (*l).into(),
                    quantity: Quantity(*q),
                })
                .collect(),
        }
    }

    #[test]
    fn parts_come_out_of_the_assignees_van_when_it_stocks_the_item_else_the_warehouse() {
        let mut i = item(&[("main", 10_000), ("van-tech1", 2_000)]);
        let m = apply_delta(&mut i, -3_000, Some("tech1"));
        assert_eq!(
            (m.location.as_str(), m.after),
            ("van-tech1", Quantity(-1_000))
        );
        let m = apply_delta(&mut i, -1_000, Some("tech2"));
        assert_eq!((m.location.as_str(), m.after), ("main", Quantity(9_000)));
        let m = apply_delta(&mut i, -1_000, None);
        assert_eq!(m.location, "main");
        assert!(is_van(&van_of("tech1")) && !is_van(WAREHOUSE) && !is_van("vantage"));
        let mut empty = item(&[]);
        let m = apply_delta(&mut empty, 500, Some("tech1"));
        assert_eq!(
            (m.location.as_str(), m.before, m.after),
            ("main", Quantity(0), Quantity(500))
        );
    }

    proptest! {
        /// Previewing a sequence of changes one by one ends where applying their net
        /// deltas does (deltas commute), whoever the assignee is.
        #[test]
        fn a_preview_of_each_step_adds_up_to_the_net_change(
            qs in proptest::collection::vec(0i64..5_000, 1..6),
            van in 0i64..3_000,
            tech in prop_oneof![Just("tech1"), Just("tech2")],
        ) {
            let mut inv = item(&[("main", 10_000), ("van-tech1", van)]);
            let start = inv.clone();
            let id = Uuid::from_u128(1);
            let mut order = WorkOrder::blank(Uuid::from_u128(9));
            order.assignee = Some(tech.into());
            let first = order.clone();
            for q in &qs {
                let mut next = order.clone();
                next.parts_used = vec![PartUsed { id, sku: "S1".into(), quantity: Quantity(*q) }];
                for e in preview(Some(&order), &next, |_| Some(inv.clone())) {
                    inv = e.item_after.expect("known");
                }
                order = next;
            }
            let net = preview(Some(&first), &order, |_| Some(start.clone()));
            let expected = net.into_iter().next().and_then(|e| e.item_after).unwrap_or(start);
            prop_assert_eq!(inv, expected);
        }
    }
}
