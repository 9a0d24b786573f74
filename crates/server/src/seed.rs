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

#[cfg(test)]
mod tests {
    //! The demo day's shape (issue 23 item 4): what `make run` opens on must look like a
    //! technician's day, and the fleet keeps its size for the tests and benchmarks.

    use std::collections::{BTreeMap, BTreeSet};

    use chrono::{DateTime, Duration, NaiveTime, Utc};

    use super::*;

    /// Minutes east of UTC of the zones the demo's sites are in, at `at` (the EU's
    /// summer-time rule, which all of them follow): written apart from the seed's own
    /// table so that a wrong offset there is caught.
    fn offset_minutes(zone: &str, at: DateTime<Utc>) -> i64 {
        let standard = match zone {
            "Europe/London" => 0,
            "Europe/Oslo" | "Europe/Stockholm" | "Europe/Copenhagen" => 60,
            "Europe/Helsinki" => 120,
            other => panic!("the demo uses an unexpected time zone {other}"),
        };
        // Summer time: from 01:00 UTC on the last Sunday of March to 01:00 UTC on the
        // last Sunday of October.
        let last_sunday = |month: u32| {
            let mut d = chrono::NaiveDate::from_ymd_opt(at.year(), month, 31).expect("date");
            while d.weekday() != chrono::Weekday::Sun {
                d = d.pred_opt().expect("date");
            }
            d.and_hms_opt(1, 0, 0).expect("time").and_utc()
        };
        let summer = at >= last_sunday(3) && at < last_sunday(10);
        standard + if summer { 60 } else { 0 }
    }

    use chrono::{Datelike as _, Timelike as _};

    fn fleet(now: DateTime<Utc>) -> Vec<WorkOrder> {
        (0..DEMO_ORDERS).map(|i| demo_order(i, now)).collect()
    }

    fn local(w: &ScheduledWindow, t: DateTime<Utc>) -> chrono::NaiveDateTime {
        t.naive_utc() + Duration::minutes(offset_minutes(&w.time_zone, t))
    }

    fn check_day(now: DateTime<Utc>) {
        let orders = fleet(now);
        assert_eq!(orders.len(), 500, "the fleet keeps its size");
        let mut per_tech: BTreeMap<String, Vec<&WorkOrder>> = BTreeMap::new();
        for o in &orders {
            per_tech
                .entry(o.assignee.clone().expect("assigned"))
                .or_default()
                .push(o);
        }
        assert_eq!(per_tech.len(), 5, "tech1..tech5");
        for (tech, mine) in &per_tech {
            assert_eq!(mine.len(), 100, "{tech}: the same 100 orders each");
            let w = |o: &WorkOrder| o.scheduled.clone().expect("scheduled");
            let today: Vec<&&WorkOrder> = mine
                .iter()
                .filter(|o| {
                    let w = w(o);
                    local(&w, w.start).date() == local(&w, now).date()
                })
                .collect();
            assert!(
                (4..=8).contains(&today.len()),
                "{tech}: 4-8 jobs today, got {}",
                today.len()
            );
            let mut windows: Vec<(chrono::NaiveDateTime, chrono::NaiveDateTime)> = today
                .iter()
                .map(|o| {
                    let w = w(o);
                    (local(&w, w.start), local(&w, w.end))
                })
                .collect();
            windows.sort();
            for (s, e) in &windows {
                assert!(
                    s.time() >= NaiveTime::from_hms_opt(7, 0, 0).expect("t")
                        && e.time() <= NaiveTime::from_hms_opt(17, 30, 0).expect("t")
                        && e > s,
                    "{tech}: a job inside the working day in the site's zone: {s}-{e}"
                );
            }
            for pair in windows.windows(2) {
                assert!(
                    pair[0].1 <= pair[1].0,
                    "{tech}: jobs do not overlap: {pair:?}"
                );
            }
            let (first, last) = (windows[0].0, windows[windows.len() - 1].1);
            assert!(
                last - first >= Duration::hours(6),
                "{tech}: spread over the day, {first}..{last}"
            );
            let statuses: BTreeSet<&str> = today.iter().map(|o| o.status.as_str()).collect();
            assert!(
                statuses.len() >= 2,
                "{tech}: mixed statuses today: {statuses:?}"
            );
            let priorities: BTreeSet<&str> = today.iter().map(|o| o.priority.as_str()).collect();
            assert!(
                priorities.len() >= 2,
                "{tech}: mixed priorities: {priorities:?}"
            );
            let overdue = mine
                .iter()
                .filter(|o| w(o).end < now - Duration::hours(24) && !o.status.is_terminal())
                .count();
            assert!(
                (1..=5).contains(&overdue),
                "{tech}: a few overdue jobs, got {overdue}"
            );
            let upcoming = mine
                .iter()
                .filter(|o| w(o).start > now + Duration::hours(24))
                .count();
            assert!(upcoming >= 20, "{tech}: upcoming jobs, got {upcoming}");
        }
        let models: BTreeSet<&str> = orders.iter().map(|o| o.equipment.model.as_str()).collect();
        assert!(models.len() >= 4, "several equipment models: {models:?}");
        let mut checklists: BTreeMap<&str, BTreeSet<Vec<&str>>> = BTreeMap::new();
        for o in &orders {
            let labels = o.checklist.iter().map(|c| c.label.as_str()).collect();
            checklists
                .entry(o.title.as_str())
                .or_default()
                .insert(labels);
        }
        let distinct: BTreeSet<&Vec<&str>> = checklists.values().flatten().collect();
        assert!(distinct.len() >= 3, "different checklists per job type");
        for (job, lists) in &checklists {
            assert_eq!(lists.len(), 1, "one checklist per job type ({job})");
        }
        let customers: BTreeSet<&str> = orders.iter().map(|o| o.customer.name.as_str()).collect();
        assert!(customers.len() >= 20, "{} customers", customers.len());
        for o in &orders {
            assert!(
                !o.customer.name.starts_with("Customer ")
                    && !o.site.address.contains("Industrial Road")
                    && !o.title.starts_with("Service visit"),
                "believable names: {} / {} / {}",
                o.title,
                o.customer.name,
                o.site.address
            );
        }
        let zones: BTreeSet<String> = orders
            .iter()
            .filter_map(|o| o.scheduled.as_ref().map(|w| w.time_zone.clone()))
            .collect();
        assert!(zones.len() >= 2, "sites in more than one zone: {zones:?}");
    }

    #[test]
    fn the_demo_day_gives_each_technician_four_to_eight_jobs_today_spread_over_the_working_day_in_the_sites_zones(
    ) {
        // A winter morning, a summer afternoon, just after midnight UTC.
        for now in [
            "2026-12-07T08:40:00Z",
            "2026-07-01T14:10:00Z",
            "2026-03-29T00:30:00Z",
        ] {
            check_day(now.parse().expect("time"));
        }
    }

    #[test]
    fn every_technicians_van_stocks_items_in_the_small_and_the_default_fleet() {
        for tech in 1..=5 {
            let van = format!("van-tech{tech}");
            let stocked = (0..200)
                .map(demo_item)
                .filter(|i| i.stock.iter().any(|l| l.location == van))
                .count();
            assert!(
                stocked >= 3,
                "{van} stocks {stocked} of the first 200 items"
            );
        }
        // The sizes the benchmarks measure stay: one van level on every tenth item.
        let levels: usize = (0..1000).map(|i| demo_item(i).stock.len()).sum();
        assert_eq!(levels, 1100);
    }
}
