//! The demo fleet: user `dispatcher` and `tech1`…`tech5` (password `outpost-demo`),
//! 500 work orders, 100 per technician, and 50,000 inventory items (`--items N` for
//! another count, e.g. 100,000 for a client benchmark).
//!
//! The orders make a day a technician would recognise (issue 23): each technician
//! works one region (Oslo, Stockholm, Copenhagen, Helsinki, London) with its own time
//! zone, customers and addresses, and has 4–8 jobs today spread over the working day
//! (07:30–16:30 in the sites' zone): those done before the seed ran are completed, the
//! one under way is in progress, the next is en route, one waits for parts (on hold).
//! A few jobs from earlier days are overdue, ten were completed on the days before, the
//! rest are upcoming over two months. Six job types (heat pump service, boiler
//! breakdown, filter change, chiller inspection, water heater replacement, safety
//! valve inspection), each with its own checklist and two equipment models; mixed
//! priorities. Every tenth item is stocked in a technician's van (`van-techN`, the
//! vans taking turns), so each van holds a share of the parts.
//! Idempotent: users that exist are left alone, orders and items that exist are not
//! written again, and `meta` remembers how many items were seeded, so running it twice
//! changes nothing; a larger `--items` later adds only the missing items, a smaller one
//! removes nothing.

use chrono::{Duration, Utc};
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
            location: format!("van-tech{}", (i / 10) % 5 + 1),
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

/// A region a technician works in: the sites' time zone, its phone prefix and its
/// customers (name, address, latitude, longitude).
struct Region {
    zone: &'static str,
    /// Minutes east of UTC outside summer time.
    standard_minutes: i64,
    phone: &'static str,
    customers: [(&'static str, &'static str, f64, f64); 6],
}

/// tech1 … tech5, one region each.
const REGIONS: [Region; 5] = [
    Region {
        zone: "Europe/Oslo",
        standard_minutes: 60,
        phone: "+47 22 ",
        customers: [
            (
                "Frogner Tannklinikk",
                "Bygdøy allé 23, 0262 Oslo",
                59.9166,
                10.7106,
            ),
            (
                "Bjørvika Kontorpark AS",
                "Dronning Eufemias gate 16, 0191 Oslo",
                59.9076,
                10.7597,
            ),
            (
                "Kari Nordmann",
                "Thorvald Meyers gate 54, 0552 Oslo",
                59.9226,
                10.7590,
            ),
            (
                "Grünerløkka Bakeri",
                "Markveien 35, 0554 Oslo",
                59.9239,
                10.7565,
            ),
            (
                "Majorstuen Borettslag",
                "Jacob Aalls gate 12, 0368 Oslo",
                59.9281,
                10.7189,
            ),
            (
                "Hotel Christiania Torv",
                "Rådhusgata 19, 0158 Oslo",
                59.9106,
                10.7401,
            ),
        ],
    },
    Region {
        zone: "Europe/Stockholm",
        standard_minutes: 60,
        phone: "+46 8 ",
        customers: [
            (
                "Södermalm Fastigheter AB",
                "Götgatan 48, 118 26 Stockholm",
                59.3139,
                18.0731,
            ),
            (
                "Café Kungsholmen",
                "Hantverkargatan 21, 112 21 Stockholm",
                59.3310,
                18.0420,
            ),
            (
                "Anna Lindqvist",
                "Odengatan 72, 113 22 Stockholm",
                59.3453,
                18.0509,
            ),
            (
                "Vasastan Tandvård",
                "Upplandsgatan 9, 111 23 Stockholm",
                59.3400,
                18.0530,
            ),
            (
                "BRF Hammarby Sjöstad",
                "Lugnets allé 30, 120 66 Stockholm",
                59.3037,
                18.1002,
            ),
            (
                "Nordic Print AB",
                "Liljeholmsvägen 18, 117 61 Stockholm",
                59.3106,
                18.0228,
            ),
        ],
    },
    Region {
        zone: "Europe/Copenhagen",
        standard_minutes: 60,
        phone: "+45 33 ",
        customers: [
            (
                "Nørrebro Bryghus",
                "Ryesgade 3, 2200 København N",
                55.6885,
                12.5632,
            ),
            (
                "Østerbro Skole",
                "Nordre Frihavnsgade 58, 2100 København Ø",
                55.6985,
                12.5857,
            ),
            (
                "Mette Hansen",
                "Istedgade 87, 1650 København V",
                55.6690,
                12.5555,
            ),
            (
                "Vesterbro Fitness ApS",
                "Vesterbrogade 120, 1620 København V",
                55.6712,
                12.5453,
            ),
            (
                "Frederiksberg Apotek",
                "Gammel Kongevej 140, 1850 Frederiksberg",
                55.6789,
                12.5367,
            ),
            (
                "Amager Logistik A/S",
                "Englandsvej 290, 2770 Kastrup",
                55.6380,
                12.6090,
            ),
        ],
    },
    Region {
        zone: "Europe/Helsinki",
        standard_minutes: 120,
        phone: "+358 9 ",
        customers: [
            (
                "Kallion Sauna Oy",
                "Vaasankatu 12, 00500 Helsinki",
                60.1866,
                24.9531,
            ),
            (
                "Töölön Hammaslääkärit",
                "Runeberginkatu 43, 00260 Helsinki",
                60.1795,
                24.9226,
            ),
            (
                "Mikko Virtanen",
                "Fleminginkatu 20, 00510 Helsinki",
                60.1900,
                24.9510,
            ),
            (
                "Kampin Keskus Oy",
                "Urho Kekkosen katu 1, 00100 Helsinki",
                60.1693,
                24.9336,
            ),
            (
                "Satamahotelli Helsinki",
                "Katajanokanlaituri 7, 00160 Helsinki",
                60.1667,
                24.9650,
            ),
            (
                "Pasila Data Oy",
                "Ratapihantie 6, 00520 Helsinki",
                60.1989,
                24.9339,
            ),
        ],
    },
    Region {
        zone: "Europe/London",
        standard_minutes: 0,
        phone: "+44 20 ",
        customers: [
            (
                "Camden Lock Studios",
                "54 Chalk Farm Road, London NW1 8AN",
                51.5414,
                -0.1466,
            ),
            (
                "St John's Primary School",
                "Firs Lane, London N21 3ES",
                51.6310,
                -0.0990,
            ),
            (
                "Margaret Ellis",
                "17 Lavender Grove, London E8 3LU",
                51.5419,
                -0.0694,
            ),
            (
                "Shoreditch Coffee Roasters",
                "112 Curtain Road, London EC2A 3AH",
                51.5265,
                -0.0806,
            ),
            (
                "Clapham Leisure Centre",
                "141 Clapham Manor Street, London SW4 6DB",
                51.4640,
                -0.1359,
            ),
            (
                "Greenwich Marine Supplies",
                "8 Creek Road, London SE8 3BT",
                51.4805,
                -0.0220,
            ),
        ],
    },
];

/// A kind of job: its title, typical length (minutes), description, the equipment it
/// is done on (model, serial prefix) and its checklist (label, required).
struct JobType {
    title: &'static str,
    minutes: i64,
    description: &'static str,
    models: [(&'static str, &'static str); 2],
    checklist: &'static [(&'static str, bool)],
}

const JOB_TYPES: [JobType; 6] = [
    JobType {
        title: "Annual heat pump service",
        minutes: 90,
        description: "Yearly service under the maintenance agreement.",
        models: [("Nibe F2120-12", "NB"), ("Thermia Atlas 12", "TH")],
        checklist: &[
            ("Isolate power", true),
            ("Clean evaporator coil", true),
            ("Check refrigerant pressures", true),
            ("Test defrost cycle", false),
            ("Record COP reading", false),
        ],
    },
    JobType {
        title: "Boiler breakdown",
        minutes: 120,
        description: "No hot water since this morning; the boiler shows a fault code.",
        models: [
            ("Vaillant ecoTEC plus 832", "VL"),
            ("Worcester Greenstar 30i", "WB"),
        ],
        checklist: &[
            ("Check gas supply", true),
            ("Read and record the fault code", true),
            ("Replace the faulty part", false),
            ("Flue gas analysis", true),
            ("Test run 15 minutes", true),
        ],
    },
    JobType {
        title: "Ventilation filter change",
        minutes: 45,
        description: "Scheduled filter change; the unit's filter alarm is on.",
        models: [("Systemair SAVE VTR 300", "SA"), ("Flexit Nordic S4", "FX")],
        checklist: &[
            ("Isolate power", true),
            ("Replace supply air filter", true),
            ("Replace extract air filter", true),
            ("Reset the filter timer", false),
        ],
    },
    JobType {
        title: "Chiller inspection",
        minutes: 120,
        description: "Quarterly inspection of the rooftop chiller (F-gas log).",
        models: [("Carrier AquaSnap 30RB", "CA"), ("Daikin EWAD-TZ", "DK")],
        checklist: &[
            ("Log pressures and temperatures", true),
            ("Inspect condenser fans", true),
            ("Leak test", true),
            ("Check compressor oil level", false),
        ],
    },
    JobType {
        title: "Water heater replacement",
        minutes: 120,
        description: "Replace the leaking water heater with the unit on the order.",
        models: [("OSO Super S 200", "OS"), ("Ariston Velis Evo 80", "AR")],
        checklist: &[
            ("Shut off and drain", true),
            ("Disconnect the old unit", true),
            ("Fit and fill the new unit", true),
            ("Check the safety valve", true),
            ("Take away the old unit", false),
        ],
    },
    JobType {
        title: "Safety valve inspection",
        minutes: 45,
        description: "Statutory inspection of the pressure relief valves.",
        models: [("Danfoss SFA 15", "DF"), ("Watts SVH 20", "WT")],
        checklist: &[
            ("Test lift the valve", true),
            ("Check discharge pipe", true),
            ("Label with the inspection date", false),
        ],
    },
];

/// Jobs today per technician (tech1 … tech5): 4 to 8.
const JOBS_TODAY: [usize; 5] = [5, 8, 6, 4, 7];
/// Jobs left open on earlier days per technician (overdue).
const OVERDUE: [usize; 5] = [2, 3, 1, 2, 3];
/// Jobs completed on the days before today, per technician.
const DONE_BEFORE: usize = 10;
/// The working day in the sites' local time, minutes after midnight.
const DAY_START: i64 = 7 * 60 + 30;
const DAY_END: i64 = 16 * 60 + 30;
const PRIORITIES: [Priority; 6] = [
    Priority::Normal,
    Priority::High,
    Priority::Normal,
    Priority::Low,
    Priority::Urgent,
    Priority::Normal,
];

/// Minutes east of UTC in `region` at `at`: its standard offset, plus an hour of summer
/// time from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday of
/// October (the EU's rule, which all the demo's zones follow; no tz database needed).
fn offset_minutes(region: &Region, at: chrono::DateTime<Utc>) -> i64 {
    use chrono::Datelike as _;
    let last_sunday = |month: u32| {
        let mut d = chrono::NaiveDate::from_ymd_opt(at.year(), month, 31).unwrap_or_default();
        while d.weekday() != chrono::Weekday::Sun {
            d = d.pred_opt().unwrap_or_default();
        }
        d.and_hms_opt(1, 0, 0).unwrap_or_default().and_utc()
    };
    let summer = at >= last_sunday(3) && at < last_sunday(10);
    region.standard_minutes + if summer { 60 } else { 0 }
}

/// The UTC time of `minutes` after local midnight on `date` in `region`.
fn at_local(region: &Region, date: chrono::NaiveDate, minutes: i64) -> chrono::DateTime<Utc> {
    let local = date.and_hms_opt(0, 0, 0).unwrap_or_default() + Duration::minutes(minutes);
    let guess = (local - Duration::minutes(region.standard_minutes)).and_utc();
    (local - Duration::minutes(offset_minutes(region, guess))).and_utc()
}

/// The demo fleet's order `i` as of `now`. Order `i` is tech`(i % 5 + 1)`'s job
/// `i / 5`: the first 4–8 are today's, spread over the working day in the sites' time
/// zone (done before now, the one under way, the next on the way, one waiting for
/// parts); then a few overdue from earlier days, ten done on the days before, and the
/// rest upcoming over the next two months. Stable ids, so a second seed finds them.
fn demo_order(i: usize, now: chrono::DateTime<Utc>) -> WorkOrder {
    let (t, k) = (i % 5, i / 5);
    let region = &REGIONS[t];
    let job = &JOB_TYPES[(k * 7 + t * 3) % JOB_TYPES.len()];
    let (model, serial_prefix) = job.models[(k / JOB_TYPES.len() + t) % 2];
    let (customer, address, lat, lon) = region.customers[(k * 5 + t) % region.customers.len()];
    let today = (now.naive_utc() + Duration::minutes(offset_minutes(region, now))).date();
    let mut o = WorkOrder::blank(demo_order_id(i));
    o.title = job.title.into();
    o.description = job.description.into();
    o.priority = PRIORITIES[(k + t) % PRIORITIES.len()];
    o.status = Status::Scheduled;
    o.customer = Customer {
        name: customer.into(),
        phone: format!(
            "{}{:03} {:03}",
            region.phone,
            100 + (k * 37 + t) % 900,
            100 + (k * 53) % 900
        ),
        email: format!(
            "{}@example.com",
            customer
                .to_lowercase()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
        ),
    };
    o.site = Site {
        address: address.into(),
        latitude: Some(lat),
        longitude: Some(lon),
    };
    o.equipment = Equipment {
        asset_tag: format!("AT-{i:05}"),
        model: model.into(),
        serial: format!("{serial_prefix}{:07}", 1_000_003 + i * 7_919 % 8_000_000),
    };
    o.assignee = Some(format!("tech{}", t + 1));
    o.checklist = job
        .checklist
        .iter()
        .enumerate()
        .map(|(n, (label, required))| ChecklistItem {
            id: format!("c{}", n + 1),
            label: (*label).into(),
            required: *required,
            done: false,
        })
        .collect();
    let n_today = JOBS_TODAY[t];
    let (start, end) = if k < n_today {
        // Today: slot k of n_today over the working day, starts on the quarter hour,
        // with at least 15 minutes to drive to the next.
        let slot =
            |j: usize| DAY_START + ((DAY_END - DAY_START) * j as i64 / n_today as i64) / 15 * 15;
        let next = if k + 1 < n_today {
            slot(k + 1)
        } else {
            DAY_END
        };
        let minutes = job.minutes.min(next - slot(k) - 15).max(30);
        let start = at_local(region, today, slot(k));
        (start, start + Duration::minutes(minutes))
    } else {
        let j = k - n_today;
        let (days, at) = if j < OVERDUE[t] {
            (-2 - 3 * j as i64, 9 * 60)
        } else if j < OVERDUE[t] + DONE_BEFORE {
            (-1 - (j - OVERDUE[t]) as i64, 8 * 60 + (j as i64 % 6) * 60)
        } else {
            let u = (j - OVERDUE[t] - DONE_BEFORE) as i64;
            (1 + u * 60 / 80, 8 * 60 + (u % 8) * 60)
        };
        let start = at_local(region, today + Duration::days(days), at);
        (start, start + Duration::minutes(job.minutes))
    };
    o.scheduled = Some(ScheduledWindow {
        start,
        end,
        time_zone: region.zone.into(),
    });
    o.status = if k < n_today {
        if k == (t + 1) % n_today {
            Status::OnHold
        } else if end <= now {
            Status::Completed
        } else if start <= now {
            Status::InProgress
        } else if start - now <= Duration::minutes(60) {
            Status::EnRoute
        } else {
            Status::Scheduled
        }
    } else {
        let j = k - n_today;
        if j < OVERDUE[t] {
            if j % 2 == 1 {
                Status::OnHold
            } else {
                Status::Scheduled
            }
        } else if j < OVERDUE[t] + DONE_BEFORE {
            Status::Completed
        } else {
            Status::Scheduled
        }
    };
    if o.status == Status::Completed {
        o.completed_at = Some(end);
        for c in &mut o.checklist {
            c.done = true;
        }
    }
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
    let (orders, items) = db
        .write(move |sql| {
            let mut orders = 0;
            for i in 0..DEMO_ORDERS {
                let mut o = demo_order(i, now);
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

    use chrono::Datelike as _;

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
