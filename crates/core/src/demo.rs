//! Demo data for a data directory that has no server yet: a few orders assigned to the
//! user and a small inventory, stored as if pulled from a server. Used by `make run`'s
//! walk-through and by tests; the real fleet's data arrives through sync.

use chrono::{DateTime, Duration, Utc};
use outpost_protocol::{
    ChecklistItem, Customer, Equipment, InventoryItem, Priority, Quantity, ScheduledWindow, Site,
    Status, StockLevel, WorkOrder,
};
use uuid::Uuid;

use crate::{CoreError, Outpost};

const JOBS: &[(&str, &str, &str, &str)] = &[
    (
        "Boiler annual service",
        "Nordvik Bakery",
        "Storgata 12, Tromsø",
        "BLR-2200",
    ),
    (
        "Replace HVAC filter",
        "Harbour Clinic",
        "Kaigata 3, Bodø",
        "HVAC-14",
    ),
    (
        "Pump seal leaking",
        "Fjord Fish AS",
        "Industriveien 8, Alta",
        "PMP-77",
    ),
    (
        "Install backflow valve",
        "Polar Hotel",
        "Sjøgata 1, Hammerfest",
        "VLV-9",
    ),
    (
        "Inspect fire dampers",
        "Arctic School",
        "Skoleveien 5, Narvik",
        "FD-301",
    ),
];

/// Demo orders assigned to `assignee`, scheduled from `now` on.
pub fn orders(now: DateTime<Utc>, assignee: &str) -> Vec<WorkOrder> {
    JOBS.iter()
        .enumerate()
        .map(|(i, (title, customer, address, asset))| {
            let mut o = WorkOrder::blank(Uuid::now_v7());
            o.number = Some(1001 + i as u64);
            o.title = (*title).to_owned();
            o.description = format!("{title} at {customer}.");
            o.priority = Priority::ALL[i % 4];
            o.status = Status::Scheduled;
            o.customer = Customer {
                name: (*customer).to_owned(),
                phone: format!("+47 900 00 {:03}", i),
                email: String::new(),
            };
            o.site = Site {
                address: (*address).to_owned(),
                latitude: None,
                longitude: None,
            };
            o.equipment = Equipment {
                asset_tag: (*asset).to_owned(),
                model: "Model X".into(),
                serial: format!("SN-{:05}", 1000 + i),
            };
            let start = now + Duration::hours(2 * i as i64);
            o.scheduled = Some(ScheduledWindow {
                start,
                end: start + Duration::hours(2),
                time_zone: "Europe/Oslo".into(),
            });
            o.assignee = Some(assignee.to_owned());
            o.checklist = vec![
                ChecklistItem {
                    id: "safety".into(),
                    label: "Isolate power and water".into(),
                    required: true,
                    done: false,
                },
                ChecklistItem {
                    id: "test".into(),
                    label: "Test after the repair".into(),
                    required: true,
                    done: false,
                },
                ChecklistItem {
                    id: "clean".into(),
                    label: "Clean the work area".into(),
                    required: false,
                    done: false,
                },
            ];
            o.version = 1;
            o
        })
        .collect()
}

/// A small demo inventory: each item in `user`'s van (so the part picker and "my van"
/// show it, issue 23 item 3) and in the warehouse, four times as many there.
pub fn inventory(user: &str) -> Vec<InventoryItem> {
    [
        ("FLT-100", "Air filter 600x600", "each", 2490, 40),
        ("SEAL-22", "Pump seal kit 22 mm", "each", 8900, 6),
        ("VLV-BF15", "Backflow valve 15 mm", "each", 15900, 3),
        ("CBL-CU25", "Copper cable 2.5 mm²", "m", 450, 500),
        ("GSK-50", "Flange gasket 50 mm", "each", 790, 25),
    ]
    .into_iter()
    .map(|(sku, name, unit, price, stock)| InventoryItem {
        sku: sku.into(),
        name: name.into(),
        description: String::new(),
        unit: unit.into(),
        price_cents: price,
        stock: vec![
            StockLevel {
                location: outpost_protocol::stock::van_of(user),
                quantity: Quantity::from_units(stock),
            },
            StockLevel {
                location: outpost_protocol::stock::WAREHOUSE.into(),
                quantity: Quantity::from_units(stock * 4),
            },
        ],
    })
    .collect()
}

impl Outpost {
    /// Load the demo orders and inventory (idempotent by content: run twice, get twice
    /// the orders; the walk-through runs it once on a fresh directory).
    pub fn load_demo_data(&mut self) -> Result<usize, CoreError> {
        let now = self.clock_now();
        let user = self.username()?;
        let orders = orders(now, &user);
        let n = self.store().put_server_orders(&orders, now)?;
        self.store().put_inventory(&inventory(&user))?;
        Ok(n)
    }
}
