//! The fleet's open conflicts and failed syncs for a dispatcher, one item per order
//! (issue 21 item 2): what `outpost conflicts list` and `outpost failed list` print when
//! the device is signed in as a dispatcher.
//!
//! Deliberately small and on its own: each record is `core`'s per-field view
//! (`ConflictDetailView` with its `ConflictFieldView`s, `FleetFailedSyncView`) and this
//! module only groups them by order. The dispatcher's desk (issue 20) brings its own
//! per-order view into `core`; these two functions are then switched to it.

use std::collections::BTreeMap;

use outpost_core::app::{ConflictDetailView, FleetFailedSyncView};
use outpost_core::{CoreError, Outpost};
use outpost_protocol::wire::RecordStatus;
use serde::Serialize;

/// The order an item is about, as this device has it (a dispatcher has every order).
#[derive(Debug, Serialize)]
pub(crate) struct OrderHead {
    pub order_id: String,
    pub number: Option<u64>,
    pub title: Option<String>,
    pub assignee: Option<String>,
}

/// One order's open conflicts, each field side by side.
#[derive(Debug, Serialize)]
pub(crate) struct OrderConflicts {
    #[serde(flatten)]
    pub order: OrderHead,
    pub conflicts: Vec<ConflictDetailView>,
}

/// One order's open failed syncs.
#[derive(Debug, Serialize)]
pub(crate) struct OrderFailed {
    #[serde(flatten)]
    pub order: OrderHead,
    pub failed: Vec<FleetFailedSyncView>,
}

fn head(app: &Outpost, order_id: &str) -> OrderHead {
    let row = app.order(order_id).ok();
    OrderHead {
        order_id: order_id.to_owned(),
        number: row.as_ref().and_then(|r| r.order.number),
        title: row.as_ref().map(|r| r.order.title.clone()),
        assignee: row.and_then(|r| r.order.assignee),
    }
}

/// Group `(order id, record)` pairs by order, orders by number (unnumbered last).
fn by_order<T, U>(
    app: &Outpost,
    pairs: Vec<(String, T)>,
    make: impl Fn(OrderHead, Vec<T>) -> U,
) -> Vec<(Option<u64>, U)> {
    let mut groups: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for (order, record) in pairs {
        groups.entry(order).or_default().push(record);
    }
    let mut out: Vec<(Option<u64>, U)> = groups
        .into_iter()
        .map(|(order, records)| {
            let h = head(app, &order);
            (h.number, make(h, records))
        })
        .collect();
    out.sort_by_key(|(n, _)| n.unwrap_or(u64::MAX));
    out
}

/// The fleet's open conflicts (as pulled), one item per order.
pub(crate) fn conflicts_per_order(app: &Outpost) -> Result<Vec<OrderConflicts>, CoreError> {
    let pairs = app
        .conflicts()?
        .iter()
        .filter(|c| c.status == "open")
        .map(|c| {
            let order = c.order_id.clone().unwrap_or_else(|| c.id.clone());
            (order, ConflictDetailView::from(c))
        })
        .collect();
    Ok(by_order(app, pairs, |order, conflicts| OrderConflicts {
        order,
        conflicts,
    })
    .into_iter()
    .map(|(_, g)| g)
    .collect())
}

/// The fleet's open failed syncs (as pulled), one item per order.
pub(crate) fn failed_per_order(app: &Outpost) -> Result<Vec<OrderFailed>, CoreError> {
    let pairs = app
        .server_failed_syncs()?
        .iter()
        .filter(|r| r.status == RecordStatus::Open)
        .map(|r| (r.order_id.to_string(), FleetFailedSyncView::from(r)))
        .collect();
    Ok(
        by_order(app, pairs, |order, failed| OrderFailed { order, failed })
            .into_iter()
            .map(|(_, g)| g)
            .collect(),
    )
}

/// `#122 Title [id]` for a line about an order.
pub(crate) fn order_line(h: &OrderHead) -> String {
    format!(
        "{} {}  [{}]",
        h.number
            .map(|n| format!("#{n}"))
            .unwrap_or_else(|| "pending".into()),
        h.title.as_deref().unwrap_or("(not on this device)"),
        h.order_id
    )
}

/// `tech1 ×2, tech3` from the users of an order's records.
pub(crate) fn who(users: impl Iterator<Item = String>) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for u in users {
        *counts.entry(u).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(u, n)| if n > 1 { format!("{u} ×{n}") } else { u })
        .collect::<Vec<_>>()
        .join(", ")
}
