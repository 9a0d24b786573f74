//! The demo fleet: user `dispatcher` and `tech1`…`tech5` (password `outpost-demo`),
//! 500 work orders spread over the technicians (some due today), 50,000 inventory
//! items (`--items N` for another count, e.g. 100,000 for a client benchmark).
//! Idempotent: users that exist are left alone, orders and items that exist are not
//! written again, and `meta` remembers how many items were seeded, so running it twice
//! changes nothing; a larger `--items` later adds only the missing items, a smaller one
//! removes nothing.

use chrono::{Duration, TimeZone, Utc};
use outpost_protocol::merge::{scalar_fields, FieldStamp, FieldStamps};
use outpost_protocol::{
    ChecklistItem, Customer, Equipment, InventoryItem, Priority, Quantity, Role, ScheduledWindow,
    Site, Status, StockLevel, WorkOrder,
};
use uuid::Uuid;

use crate::config::ServerConfig;
use crate::db::{Db, Sql};
use crate::error::Error;
use crate::repo::{self, Audience, NewChange};

pub const DEMO_PASSWORD: &str = "outpost-demo";
pub const DEMO_ORDERS: usize = 500;
pub const DEMO_ITEMS: usize = 50_000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub users_added: usize,
    pub orders_added: usize,
    pub items_added: usize,
}

/// A demo order's id: stable, so a second run finds it.
pub fn demo_order_id(i: usize) -> Uuid {
    Uuid::from_u128(0x0de0_0000_0000_7000_8000_0000_0000_0000 + i as u128)
}

pub fn demo_sku(i: usize) -> String {
    format!("SKU-{i:05}")
}

/// Insert inventory items (and their change-log rows), skipping SKUs that exist.
pub fn insert_items(
    sql: &mut dyn Sql,
    items: &[InventoryItem],
    now_us: i64,
) -> Result<usize, Error> {
    repo::with_change_log(sql, |sql, log| {
        let mut added = 0;
        for item in items {
            if repo::item_exists(sql, &item.sku)? {
                continue;
            }
            let body = repo::put_item(sql, item, 1)?;
            log.append(
                sql,
                NewChange {
                    entity: "inventory_item",
                    entity_id: &item.sku,
                    version: 1,
                    body: repo::change_body("inventory_item", &body),
                    mutation_ids: &[],
                    audience: Audience::All,
                    scope_user: None,
                    scope_user2: None,
                    device_us: None,
                },
                now_us,
            )?;
            added += 1;
        }
        Ok(added)
    })
}

pub fn demo_item(i: usize) -> InventoryItem {
    const KINDS: [(&str, &str); 6] = [
        ("Filter", "each"),
        ("Cable", "m"),
        ("Seal kit", "each"),
        ("Coolant", "l"),
        ("Fuse", "each"),
        ("Bearing", "each"),
    ];
    let (kind, unit) = KINDS[i % KINDS.len()];
    let mut stock = vec![StockLevel {
        location: "main".into(),
        quantity: Quantity::from_units(20 + (i % 50) as i64),
    }];
    if i.is_multiple_of(10) {
        stock.push(StockLevel {
            location: format!("van-tech{}", i % 5 + 1),
            quantity: Quantity::from_units(5),
        });
    }
    InventoryItem {
        sku: demo_sku(i),
        name: format!("{kind} {i}"),
        description: format!("Demo {kind} number {i}"),
        unit: unit.into(),
        price_cents: 100 + (i % 997) as i64 * 7,
        stock,
    }
}

fn demo_order(i: usize, today: chrono::DateTime<Utc>) -> WorkOrder {
    let mut o = WorkOrder::blank(demo_order_id(i));
    o.title = format!("Service visit {}", i + 1);
    o.description = "Annual maintenance of the installed unit.".into();
    o.priority = Priority::ALL[i % 4];
    o.status = if i.is_multiple_of(9) {
        Status::InProgress
    } else {
        Status::Scheduled
    };
    o.customer = Customer {
        name: format!("Customer {}", i % 137),
        phone: "+47 22 00 00 00".into(),
        email: format!("customer{}@example.com", i % 137),
    };
    o.site = Site {
        address: format!("{} Industrial Road", 1 + i % 300),
        latitude: Some(59.9 + (i % 10) as f64 / 100.0),
        longitude: Some(10.7 + (i % 10) as f64 / 100.0),
    };
    o.equipment = Equipment {
        asset_tag: format!("AT-{i:05}"),
        model: "HX-200".into(),
        serial: format!("SN{i:07}"),
    };
    // Some due today, the rest spread over the coming weeks.
    let day = if i.is_multiple_of(5) {
        0
    } else {
        (i % 30) as i64
    };
    let start = today + Duration::days(day) + Duration::hours(8 + (i % 8) as i64);
    o.scheduled = Some(ScheduledWindow {
        start,
        end: start + Duration::hours(2),
        time_zone: "Europe/Oslo".into(),
    });
    o.assignee = Some(format!("tech{}", i % 5 + 1));
    o.checklist = (1..=3)
        .map(|n| ChecklistItem {
            id: format!("c{n}"),
            label: ["Isolate power", "Replace filter", "Test run"][n - 1].into(),
            required: n != 2,
            done: false,
        })
        .collect();
    o.version = 1;
    o
}

/// The most items `seed --demo --items` makes.
pub const DEMO_ITEMS_MAX: usize = 1_000_000;

/// The `meta` key holding how many demo items were seeded ("1" from older servers,
/// which always seeded [`DEMO_ITEMS`]).
const META_SEEDED_ITEMS: &str = "seed_demo_items";

/// Seed the demo fleet with the default number of items.
pub async fn seed_demo(db: &Db, cfg: &ServerConfig) -> Result<SeedReport, Error> {
    seed_demo_with(db, cfg, DEMO_ITEMS).await
}

/// Seed the demo fleet with `items` inventory items (at most [`DEMO_ITEMS_MAX`]).
pub async fn seed_demo_with(
    db: &Db,
    cfg: &ServerConfig,
    items: usize,
) -> Result<SeedReport, Error> {
    if items > DEMO_ITEMS_MAX {
        return Err(Error::store(format!(
            "at most {DEMO_ITEMS_MAX} demo items can be seeded"
        )));
    }
    let wanted = items;
    let mut report = SeedReport::default();
    for (name, role) in [
        ("dispatcher", Role::Dispatcher),
        ("tech1", Role::Technician),
        ("tech2", Role::Technician),
        ("tech3", Role::Technician),
        ("tech4", Role::Technician),
        ("tech5", Role::Technician),
    ] {
        let exists = {
            let n = name.to_owned();
            db.read(move |sql| repo::get_user(sql, &n)).await?.is_some()
        };
        if !exists && crate::add_user(db, cfg, name, role, DEMO_PASSWORD).await? {
            report.users_added += 1;
        }
    }
    let now = cfg.now();
    let now_us = now.timestamp_micros();
    let today = Utc.from_utc_datetime(&now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default());
    let (orders, items) = db
        .write(move |sql| {
            let mut orders = 0;
            for i in 0..DEMO_ORDERS {
                let mut o = demo_order(i, today);
                if repo::order_exists(sql, o.id)? {
                    continue;
                }
                o.number = Some(repo::next_number(sql)?);
                let stamps: FieldStamps = scalar_fields(&o)
                    .into_iter()
                    .map(|s| {
                        (
                            s.field_key(),
                            FieldStamp {
                                version: 1,
                                device_id: Uuid::nil(),
                            },
                        )
                    })
                    .collect();
                repo::with_change_log(sql, |sql, log| {
                    crate::push::write_order(sql, log, now_us, &o, &stamps, None, &[], None)
                })?;
                orders += 1;
            }
            let mut items = 0;
            let seeded = match repo::meta_get(sql, META_SEEDED_ITEMS)?.as_deref() {
                None => 0,
                Some("1") => DEMO_ITEMS,
                Some(n) => n
                    .parse()
                    .map_err(|e| Error::store(format!("meta {META_SEEDED_ITEMS}: {e}")))?,
            };
            if wanted > seeded {
                for start in (seeded..wanted).step_by(1000) {
                    let batch: Vec<InventoryItem> =
                        (start..(start + 1000).min(wanted)).map(demo_item).collect();
                    items += insert_items(sql, &batch, now_us)?;
                }
                repo::meta_set(sql, META_SEEDED_ITEMS, &wanted.to_string())?;
            }
            Ok((orders, items))
        })
        .await?;
    report.orders_added = orders;
    report.items_added = items;
    Ok(report)
}
