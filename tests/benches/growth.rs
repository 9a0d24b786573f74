//! `make bench-scale`, growth (issue 25 item 2): how the client's costs grow with the
//! data, against the release `outpost-server` (SQLite) on loopback and the release
//! `outpost` CLI, each command timed from process start to exit with its peak RSS
//! (`outpost_tests::cli::measure`).
//!
//! - **Inventory** (10k, 100k, 1M items; the demo fleet's 500 orders): a fresh device
//!   of tech1 primes (`outpost sync` after `outpost login`), then the business system
//!   changes 1 % of the prices (an ERP import through the server's library, as
//!   `outpost-server inventory import` does) and the device pulls that delta.
//! - **Orders on the server** (1k, 10k, 100k; a 1,000-item catalogue): the demo fleet
//!   plus a company's order history (`load::add_orders`: 85 % completed, spread over 20
//!   more technicians) and 100 open orders each for tech1–tech3. A technician's device
//!   (the same size at every step) edits 100 orders offline — a note and a part on each,
//!   every second one completed with a signature — and `outpost sync` pushes them; then
//!   the dispatcher's device, which holds every order, primes (`outpost sync`) and the
//!   dispatcher's order list is searched on it (`Outpost::order_page`, the call behind
//!   the desktop's list: every order, 25 rows, seven searches; p50/p99 over all).
//!
//! Each size gets a fresh server database; the figures are the median of
//! `OUTPOST_GROWTH_SAMPLES` (default 3; 1 at 1M items unless it is set) fresh devices. For each cost the
//! ratio per 10× of size, `(c₂/c₁)^(1/log₁₀(s₂/s₁))`, says how it grows: about 10 is
//! linear, less is better than linear, more than 12 is named worse than linear.
//! Results are kept in `<target>/tmp/bench-growth/results.json` (one entry per size; a
//! later run replaces its entry, so 1M can be run on its own:
//! `OUTPOST_GROWTH_ITEMS=1000000 OUTPOST_GROWTH_ORDERS= cargo bench -p outpost-tests
//! --bench growth`), and rendered into docs/benchmarks.md between the `bench-growth`
//! markers with the plot docs/bench-growth.svg (plotters, log–log).
//!
//! Environment: `OUTPOST_GROWTH_ITEMS` (default `10000,100000,1000000`),
//! `OUTPOST_GROWTH_ORDERS` (`1000,10000,100000`), `OUTPOST_GROWTH_SAMPLES` (3),
//! `OUTPOST_GROWTH_PERF=DIR` (the dispatcher's priming recorded with `perf record`,
//! client and server, into `DIR/dispatcher-N-{client,server}.data`; its RSS figure is
//! then perf's, so do not keep such a run's figures). As a
//! smoke test (`cargo test --benches`) it runs 200 and 2,000 items, 900 and 2,000
//! orders, one sample, draws the plot into a temporary directory and writes nothing
//! under docs/.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use outpost_core::views::OrderQueryInput;
use outpost_core::{Completion, Evidence, OrderEdit, Outpost};
use outpost_protocol::{Quantity, ScheduledWindow, Status, WorkOrder};
use outpost_tests::cli::{measure, CliDevice, Measured};
use outpost_tests::{bin, load, loadavg, png, Device, Server};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

const COMMAND: &str = "cargo build --release --bins && cargo bench -p outpost-tests --bench growth";
/// Orders the demo seed makes; the history is added on top.
const DEMO_ORDERS: usize = 500;
/// Open orders added for each of tech1–tech3 (one technician per sample of the push).
const OPEN_PER_TECH: usize = 100;
/// Technicians the history is spread over (`load::username(0..20)`).
const HISTORY_TECHS: usize = 20;
/// The catalogue beside the orders.
const ORDERS_ITEMS: usize = 1_000;
/// Rows per page of the dispatcher's list (`PAGE` in ui/src/screens/Dispatch.svelte).
const DISPATCH_PAGE: u32 = 25;

/// One inventory size's figures (medians over the samples).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ItemsRow {
    items: usize,
    started: String,
    load: String,
    samples: usize,
    seed_secs: f64,
    prime_ms: f64,
    prime_rss_mib: f64,
    prime_rows: u64,
    prime_requests: u64,
    prime_bytes: u64,
    delta_changed: usize,
    delta_ms: f64,
    delta_rss_mib: f64,
    delta_rows: u64,
    delta_bytes: u64,
    device_mib: f64,
}

/// One order-count's figures (medians over the samples).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OrdersRow {
    orders: usize,
    started: String,
    load: String,
    samples: usize,
    seed_secs: f64,
    push_orders: usize,
    push_mutations: u64,
    push_ms: f64,
    push_rss_mib: f64,
    push_requests: u64,
    dispatcher_orders: usize,
    dispatcher_prime_ms: f64,
    dispatcher_prime_rss_mib: f64,
    dispatcher_device_mib: f64,
    search_first_ms: f64,
    search_p50_ms: f64,
    search_p99_ms: f64,
    search_queries: usize,
    /// Each search's median, ms.
    #[serde(default)]
    search_medians: Vec<(String, f64)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Results {
    items: Vec<ItemsRow>,
    orders: Vec<OrdersRow>,
}

/// The fields of `outpost sync --json` this benchmark reads.
#[derive(Debug, Deserialize)]
struct SyncReport {
    pushed: u64,
    acknowledged: u64,
    pulled_rows: u64,
    requests: u64,
    bytes_received: u64,
    remaining: Remaining,
}

#[derive(Debug, Deserialize)]
struct Remaining {
    pending: usize,
    failed: usize,
    conflicts: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mib_of_kib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The `p`-th percentile (0–100) of sorted samples, nearest rank.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Bytes under `dir`, every file counted.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn sync(dev: &CliDevice) -> (Measured, SyncReport) {
    synced(dev, None)
}

/// [`sync`], under `perf record` into `perf` when given (its RSS is then perf's).
fn synced(dev: &CliDevice, perf: Option<&Path>) -> (Measured, SyncReport) {
    let mut cmd = dev.command(&["--json", "sync"]);
    if let Some(out) = perf {
        cmd = outpost_tests::perf::wrapped(&cmd, out);
    }
    let m = measure(cmd, None);
    let r: SyncReport = serde_json::from_str(&m.stdout)
        .unwrap_or_else(|e| panic!("outpost sync --json printed no report: {e}: {}", m.stdout));
    assert_eq!(r.remaining.pending, 0, "everything acknowledged: {r:?}");
    assert_eq!(r.remaining.failed + r.remaining.conflicts, 0, "{r:?}");
    (m, r)
}

/// `outpost-server seed --demo --items N` into a new database under `dir`; its time.
fn seed(dir: &Path, items: usize) -> (PathBuf, f64) {
    let db = dir.join("server.db");
    let mut cmd = Command::new(bin("outpost-server"));
    cmd.args(["seed", "--demo", "--items", &items.to_string(), "--db"])
        .arg(format!("sqlite:{}", db.display()));
    let m = measure(cmd, None);
    (db, m.took.as_secs_f64())
}

/// The business system's export of every 100th item with a new price (the `round`-th
/// change): 1 % of the catalogue, applied as `outpost-server inventory import` does.
async fn change_prices(db: &outpost_server::Db, items: usize, round: i64) -> usize {
    use outpost_server::inventory::{import, ErpExport, ErpItem, ImportOptions};
    let changed: Vec<ErpItem> = (0..items)
        .step_by(100)
        .map(|i| {
            let it = outpost_server::seed::demo_item(i);
            ErpItem {
                sku: it.sku,
                name: it.name,
                unit: it.unit,
                price_cents: it.price_cents + round,
                description: Some(it.description),
                stock: it.stock,
            }
        })
        .collect();
    let n = changed.len();
    let export = ErpExport {
        taken_at: Utc::now(),
        items: changed,
    };
    let report = import(
        db,
        &outpost_server::SystemClock,
        export,
        ImportOptions::default(),
    )
    .await
    .expect("import the price changes");
    assert_eq!(report.changed, n, "every listed item changed: {report:?}");
    n
}

async fn items_step(base: &Path, items: usize, samples: usize) -> ItemsRow {
    let started = Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let load = loadavg();
    let dir = tempfile::tempdir_in(base).expect("a directory for the run");
    let (db, seed_secs) = seed(dir.path(), items);
    let server = Server::start(&db, &[]);
    let admin = outpost_server::Db::open(&format!("sqlite:{}", db.display()))
        .await
        .expect("open the server's database");
    let outpost = bin("outpost");
    let (mut prime, mut prime_rss, mut delta, mut delta_rss, mut device) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut prime_report, mut delta_report, mut changed) = (None, None, 0);
    for s in 0..samples {
        let dev = CliDevice::new(&format!("items-{items}-{s}"), &outpost);
        dev.login(&server.url, "tech1");
        let (m, r) = sync(&dev);
        assert!(
            r.pulled_rows >= items as u64,
            "priming pulled the catalogue: {r:?}"
        );
        prime.push(ms(m.took));
        prime_rss.push(mib_of_kib(m.peak_rss_kib));
        prime_report = Some(r);
        changed = change_prices(&admin, items, s as i64 + 1).await;
        let (m, r) = sync(&dev);
        assert!(
            r.pulled_rows >= changed as u64,
            "the delta brought every changed item: {r:?}"
        );
        delta.push(ms(m.took));
        delta_rss.push(mib_of_kib(m.peak_rss_kib));
        delta_report = Some(r);
        device.push(dir_bytes(dev.dir.path()) as f64 / (1024.0 * 1024.0));
        println!(
            "  items {items:>8} sample {s}: prime {:.0} ms ({:.0} MiB), delta of {changed} {:.0} ms ({:.0} MiB)",
            prime[s], prime_rss[s], delta[s], delta_rss[s]
        );
    }
    drop(admin);
    drop(server);
    let (p, d) = (
        prime_report.expect("a sample"),
        delta_report.expect("a sample"),
    );
    ItemsRow {
        items,
        started,
        load,
        samples,
        seed_secs,
        prime_ms: median(prime),
        prime_rss_mib: median(prime_rss),
        prime_rows: p.pulled_rows,
        prime_requests: p.requests,
        prime_bytes: p.bytes_received,
        delta_changed: changed,
        delta_ms: median(delta),
        delta_rss_mib: median(delta_rss),
        delta_rows: d.pulled_rows,
        delta_bytes: d.bytes_received,
        device_mib: median(device),
    }
}

const JOBS: [&str; 5] = [
    "Boiler service",
    "Pump seal",
    "HVAC filter",
    "Heat pump check",
    "Valve replacement",
];
const TOWNS: [&str; 6] = ["Tromsø", "Nordvik", "Bodø", "Alta", "Harstad", "Narvik"];

/// The i-th added order: first [`OPEN_PER_TECH`] open ones for each of tech1–tech3
/// (upcoming), then the history: 85 % completed over the past year, the rest open,
/// spread over [`HISTORY_TECHS`] technicians.
fn added_order(i: usize, now: chrono::DateTime<Utc>) -> WorkOrder {
    let mut o = WorkOrder::blank(uuid::Uuid::from_u128(
        0x6a0e_0000_0000_7000_8000_0000_0000_0000 + i as u128,
    ));
    o.title = format!("{} {i}", JOBS[i % JOBS.len()]);
    o.description = "Annual service as agreed. ".repeat(4);
    o.customer.name = format!("Customer {}", i % 700);
    o.site.address = format!("Storgata {}, {}", i % 90, TOWNS[i % TOWNS.len()]);
    o.equipment.asset_tag = format!("AST-{i:06}");
    let own = 3 * OPEN_PER_TECH;
    let (assignee, days, status) = if i < own {
        (
            format!("tech{}", i / OPEN_PER_TECH + 1),
            1 + (i % 30) as i64,
            Status::Scheduled,
        )
    } else if i % 20 < 17 {
        (
            load::username(i % HISTORY_TECHS),
            -1 - (i % 365) as i64,
            Status::Completed,
        )
    } else {
        (
            load::username(i % HISTORY_TECHS),
            (i % 60) as i64 - 10,
            Status::Scheduled,
        )
    };
    let start = now + chrono::Duration::days(days);
    let end = start + chrono::Duration::hours(2);
    o.scheduled = Some(ScheduledWindow {
        start,
        end,
        time_zone: "Europe/Oslo".into(),
    });
    o.assignee = Some(assignee);
    if status == Status::Completed {
        o.completed_at = Some(end);
    }
    o.status = status;
    o.version = 1;
    o
}

/// A device of `user`, primed, with `n` of its open orders edited offline (a note and
/// a part on each, every second one completed with a signature); nothing synced yet.
async fn offline_edits(server: &Server, user: &str, n: usize) -> (Device, usize) {
    let mut dev = Device::primed(&server.url, user).await;
    let sku = outpost_server::seed::demo_sku(7);
    let ids: Vec<String> = dev
        .app
        .orders()
        .expect("orders")
        .into_iter()
        .filter(|r| r.order.status == Status::Scheduled && r.order.checklist.is_empty())
        .take(n)
        .map(|r| r.order.id.to_string())
        .collect();
    for (k, id) in ids.iter().enumerate() {
        dev.app
            .edit_order(
                id,
                OrderEdit {
                    notes: vec![format!("Seal replaced, pump tested ({k})")],
                    parts: vec![(sku.clone(), Quantity::from_units(1))],
                    ..OrderEdit::default()
                },
            )
            .expect("edit offline");
        if k % 2 == 0 {
            dev.app
                .complete_order(
                    id,
                    Completion {
                        signature_png: Evidence {
                            bytes: png(&format!("signature {user} {k}")),
                            name: "signature.png".into(),
                        },
                        signer: "Site manager".into(),
                        photos: Vec::new(),
                    },
                )
                .expect("complete offline");
        }
    }
    let edited = ids.len();
    (dev, edited)
}

/// The dispatcher's list as the desktop asks for it: every order, `text` searched.
fn dispatch_query(text: &str, assignee: Option<&str>) -> OrderQueryInput {
    OrderQueryInput {
        text: text.to_owned(),
        bucket: None,
        tomorrow: None,
        status: None,
        priority: None,
        sync: None,
        assignee: assignee.map(str::to_owned),
        offset: 0,
        limit: DISPATCH_PAGE,
    }
}

/// The dispatcher's list timed on a device.
struct Searched {
    /// The first page after opening, ms.
    first_ms: f64,
    /// Every search's time, sorted, ms.
    sorted: Vec<f64>,
    /// Each search's median, ms.
    medians: Vec<(String, f64)>,
    /// Orders on the device.
    orders: usize,
}

/// Time the dispatcher's list on `app`: the first page after opening, then `rounds` of
/// seven searches.
fn search(app: &Outpost, rounds: usize) -> Searched {
    let t = Instant::now();
    let first = app.order_page(&dispatch_query("", None)).expect("the list");
    let first_ms = ms(t.elapsed());
    let queries = [
        ("", None),
        ("boiler", None),
        ("storgata 12", None),
        ("pump seal 9", None),
        ("customer 65", None),
        ("zzz-no-match", None),
        ("", Some(load::username(3))),
    ];
    let mut each: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    for _ in 0..rounds {
        for ((text, who), times) in queries.iter().zip(&mut each) {
            let q = dispatch_query(text, who.as_deref());
            let t = Instant::now();
            let page = app.order_page(&q).expect("a search");
            times.push(ms(t.elapsed()));
            assert!(page.rows.len() <= DISPATCH_PAGE as usize);
        }
    }
    let mut sorted: Vec<f64> = each.iter().flatten().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let medians = queries
        .iter()
        .zip(each)
        .map(|((text, who), times)| {
            let name = match who {
                Some(w) => format!("assignee {w}"),
                None => format!("{text:?}"),
            };
            (name, median(times))
        })
        .collect();
    Searched {
        first_ms,
        sorted,
        medians,
        // Every order is in one of the tabs (the page's total stops counting at 1,000).
        orders: (first.counts.today + first.counts.upcoming + first.counts.completed) as usize,
    }
}

async fn orders_step(
    base: &Path,
    orders: usize,
    samples: usize,
    push_n: usize,
    rounds: usize,
) -> OrdersRow {
    assert!(
        orders >= DEMO_ORDERS + 3 * OPEN_PER_TECH,
        "at least {} orders (the demo fleet and the technicians' open orders)",
        DEMO_ORDERS + 3 * OPEN_PER_TECH
    );
    let started = Utc::now().format("%Y-%m-%d %H:%M UTC").to_string();
    let load = loadavg();
    let dir = tempfile::tempdir_in(base).expect("a directory for the run");
    let t = Instant::now();
    let (db, _) = seed(dir.path(), ORDERS_ITEMS);
    let db_url = format!("sqlite:{}", db.display());
    load::provision(&db_url, HISTORY_TECHS, 0)
        .await
        .expect("the history's technicians");
    let now = Utc::now();
    load::add_orders(&db_url, orders - DEMO_ORDERS, move |i| added_order(i, now))
        .await
        .expect("add the orders");
    let seed_secs = t.elapsed().as_secs_f64();
    let server = Server::start(&db, &[]);
    let outpost = bin("outpost");

    // Every technician's device prepared before any push is timed.
    let mut devices = Vec::new();
    for s in 0..samples.min(3) {
        devices.push(offline_edits(&server, &format!("tech{}", s + 1), push_n).await);
    }
    let (mut push, mut push_rss, mut push_report, mut edited) = (vec![], vec![], None, 0);
    for (s, (dev, n)) in devices.into_iter().enumerate() {
        let Device { app, dir, key } = dev;
        drop(app);
        let cli = CliDevice {
            name: format!("push-{orders}-{s}"),
            dir,
            key,
            binary: outpost.clone(),
        };
        let (m, r) = sync(&cli);
        assert!(r.acknowledged >= n as u64, "every edit acknowledged: {r:?}");
        println!(
            "  orders {orders:>7} sample {s}: push of {n} edited orders ({} mutations) {:.0} ms ({:.0} MiB)",
            r.pushed,
            ms(m.took),
            mib_of_kib(m.peak_rss_kib)
        );
        push.push(ms(m.took));
        push_rss.push(mib_of_kib(m.peak_rss_kib));
        push_report = Some(r);
        edited = n;
    }

    // The dispatcher's device: priming every order, then the list searched on it.
    let dispatcher = CliDevice::new(&format!("dispatcher-{orders}"), &outpost);
    dispatcher.login(&server.url, "dispatcher");
    let perf = std::env::var_os("OUTPOST_GROWTH_PERF").map(PathBuf::from);
    let server_perf = perf.as_ref().map(|dir| {
        outpost_tests::perf::Recording::attach(
            server.pid(),
            &dir.join(format!("dispatcher-{orders}-server.data")),
        )
    });
    let client_perf = perf
        .as_ref()
        .map(|dir| dir.join(format!("dispatcher-{orders}-client.data")));
    let (m, _) = synced(&dispatcher, client_perf.as_deref());
    if let Some(p) = server_perf {
        p.stop();
    }
    let (disp_ms, disp_rss) = (ms(m.took), mib_of_kib(m.peak_rss_kib));
    let disp_mib = dir_bytes(dispatcher.dir.path()) as f64 / (1024.0 * 1024.0);
    drop(server);
    let app = Outpost::open(Device::options(dispatcher.dir.path(), &dispatcher.key))
        .expect("open the dispatcher's device");
    let Searched {
        first_ms: first,
        sorted,
        medians,
        orders: on_device,
    } = search(&app, rounds);
    drop(app);
    println!(
        "  orders {orders:>7}: dispatcher primes {on_device} orders in {disp_ms:.0} ms ({disp_rss:.0} MiB); list first page {first:.1} ms, search p50 {:.2} ms p99 {:.2} ms over {} queries; medians: {}",
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        sorted.len(),
        medians
            .iter()
            .map(|(q, m)| format!("{q} {m:.2} ms"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let r = push_report.expect("a sample");
    OrdersRow {
        orders,
        started,
        load,
        samples: push.len(),
        seed_secs,
        push_orders: edited,
        push_mutations: r.pushed,
        push_ms: median(push),
        push_rss_mib: median(push_rss),
        push_requests: r.requests,
        dispatcher_orders: on_device,
        dispatcher_prime_ms: disp_ms,
        dispatcher_prime_rss_mib: disp_rss,
        dispatcher_device_mib: disp_mib,
        search_first_ms: first,
        search_p50_ms: percentile(&sorted, 50.0),
        search_p99_ms: percentile(&sorted, 99.0),
        search_queries: sorted.len(),
        search_medians: medians,
    }
}

/// A cost's growth: per step, the ratio per 10× of size.
fn per_tenfold(points: &[(usize, f64)]) -> Vec<f64> {
    points
        .windows(2)
        .map(|w| {
            let (s1, c1) = (w[0].0 as f64, w[0].1.max(1e-9));
            let (s2, c2) = (w[1].0 as f64, w[1].1.max(1e-9));
            (c2 / c1).powf(1.0 / (s2 / s1).log10())
        })
        .collect()
}

/// Worse than linear: a step whose ratio per 10× is over this.
const WORSE_THAN_LINEAR: f64 = 12.0;

fn verdict(ratios: &[f64]) -> &'static str {
    match ratios
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
    {
        None => "one size only",
        Some(r) if r > WORSE_THAN_LINEAR => "**worse than linear**",
        Some(r) if r > 8.0 => "linear",
        Some(_) => "better than linear",
    }
}

/// A named cost against size, for the growth table and the plot.
struct Series {
    name: &'static str,
    axis: &'static str,
    unit: &'static str,
    points: Vec<(usize, f64)>,
}

fn series(results: &Results) -> Vec<Series> {
    let mut items = results.items.clone();
    items.sort_by_key(|r| r.items);
    let mut orders = results.orders.clone();
    orders.sort_by_key(|r| r.orders);
    let i = |name, unit, f: &dyn Fn(&ItemsRow) -> f64| Series {
        name,
        axis: "items",
        unit,
        points: items.iter().map(|r| (r.items, f(r))).collect(),
    };
    let o = |name, unit, f: &dyn Fn(&OrdersRow) -> f64| Series {
        name,
        axis: "orders",
        unit,
        points: orders.iter().map(|r| (r.orders, f(r))).collect(),
    };
    vec![
        i("priming time", "ms", &|r| r.prime_ms),
        i("priming peak RSS", "MiB", &|r| r.prime_rss_mib),
        i("priming bytes down", "MB", &|r| r.prime_bytes as f64 / 1e6),
        i("1 % delta time", "ms", &|r| r.delta_ms),
        i("1 % delta peak RSS", "MiB", &|r| r.delta_rss_mib),
        i("1 % delta bytes down", "MB", &|r| {
            r.delta_bytes as f64 / 1e6
        }),
        o("push of edited orders", "ms", &|r| r.push_ms),
        o("push peak RSS", "MiB", &|r| r.push_rss_mib),
        o("dispatcher priming time", "ms", &|r| r.dispatcher_prime_ms),
        o("dispatcher priming peak RSS", "MiB", &|r| {
            r.dispatcher_prime_rss_mib
        }),
        o("order-list search p50", "ms", &|r| r.search_p50_ms),
        o("order-list search p99", "ms", &|r| r.search_p99_ms),
    ]
}

fn markdown(results: &Results, load_now: &str) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "Command: `make bench-scale` (`{COMMAND}`); the release `outpost-server` on SQLite and the release \
         `outpost` CLI on loopback, every command timed from process start to exit with its peak RSS \
         (`VmHWM`). Fresh server database per size; figures are medians over fresh devices (samples \
         column). Load average when the table was written: {load_now}.\n\n"
    ));
    md.push_str("**Inventory** (tech1's new device; the demo fleet's 500 orders; 1 % of the prices changed by an ERP import)\n\n");
    md.push_str("| items | run (load) | samples | seed s | priming ms | priming RSS MiB | rows / requests | MB down | 1 % delta ms | delta RSS MiB | delta rows | delta KB down | device MiB |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut items = results.items.clone();
    items.sort_by_key(|r| r.items);
    for r in &items {
        md.push_str(&format!(
            "| {} | {} ({}) | {} | {:.1} | {:.0} | {:.0} | {} / {} | {:.2} | {:.0} | {:.0} | {} | {:.1} | {:.1} |\n",
            r.items, r.started, r.load, r.samples, r.seed_secs, r.prime_ms, r.prime_rss_mib,
            r.prime_rows, r.prime_requests, r.prime_bytes as f64 / 1e6, r.delta_ms, r.delta_rss_mib,
            r.delta_rows, r.delta_bytes as f64 / 1e3, r.device_mib
        ));
    }
    md.push_str(&format!(
        "\n**Orders on the server** (a {ORDERS_ITEMS}-item catalogue; the push: a technician's device of constant size, \
         {OPEN_PER_TECH} orders edited offline — note and part on each, every second completed with a signature; the \
         dispatcher's device holds every order; search: `Outpost::order_page` as the desktop's dispatcher list asks, \
         {DISPATCH_PAGE} rows, seven searches, p50/p99 over all)\n\n"
    ));
    md.push_str("| orders | run (load) | samples | seed s | push ms | push RSS MiB | mutations / requests | dispatcher priming ms | its RSS MiB | its device MiB | list first page ms | search p50 / p99 ms |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut orders = results.orders.clone();
    orders.sort_by_key(|r| r.orders);
    for r in &orders {
        md.push_str(&format!(
            "| {} | {} ({}) | {} | {:.1} | {:.0} | {:.0} | {} / {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.2} / {:.2} |\n",
            r.orders, r.started, r.load, r.samples, r.seed_secs, r.push_ms, r.push_rss_mib,
            r.push_mutations, r.push_requests, r.dispatcher_prime_ms, r.dispatcher_prime_rss_mib,
            r.dispatcher_device_mib, r.search_first_ms, r.search_p50_ms, r.search_p99_ms
        ));
    }
    md.push_str("\nEach search's median (ms):");
    for r in orders.iter().filter(|r| !r.search_medians.is_empty()) {
        md.push_str(&format!(
            " {} orders: {};",
            r.orders,
            r.search_medians
                .iter()
                .map(|(q, m)| format!("{q} {m:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    md.push('\n');
    md.push_str(&format!(
        "\n**Growth**: the ratio per 10× of size, `(c₂/c₁)^(1/log₁₀(s₂/s₁))` per step — about 10 is linear, \
         below is better than linear, over {WORSE_THAN_LINEAR} is named worse than linear.\n\n"
    ));
    md.push_str("| cost | against | values | ratio per 10× | grows |\n|---|---|---|---|---|\n");
    for s in series(results) {
        if s.points.is_empty() {
            continue;
        }
        let ratios = per_tenfold(&s.points);
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            s.name,
            s.axis,
            s.points
                .iter()
                .map(|(n, v)| format!("{n}: {v:.1} {}", s.unit))
                .collect::<Vec<_>>()
                .join("; "),
            ratios
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            verdict(&ratios)
        ));
    }
    md.push_str("\n![Cost against data size, log–log](bench-growth.svg)\n");
    md
}

/// Time (solid) and peak RSS (faint) against size, log–log: one line per cost.
fn plot(results: &Results, dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("bench-growth.svg");
    let root = SVGBackend::new(&path, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = series(results);
    let shown: Vec<&Series> = all
        .iter()
        .filter(|s| s.unit != "MB" && !s.name.ends_with("p99") && !s.points.is_empty())
        .collect();
    let xmax = shown
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(10) as f64;
    let ymax = shown
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cost against data size (solid: time ms, faint: peak RSS MiB)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (100.0..xmax * 2.0).log_scale(),
            (0.05..ymax * 3.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("inventory items or orders")
        .y_desc("ms / MiB")
        .draw()?;
    for (k, s) in shown.iter().enumerate() {
        let c = Palette99::pick(k).to_rgba();
        let style: ShapeStyle = if s.unit == "MiB" {
            c.mix(0.6).stroke_width(2)
        } else {
            c.stroke_width(2)
        };
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|&(n, v)| (n as f64, v.max(0.05)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), style))?
            .label(format!("{} ({}, vs {})", s.name, s.unit, s.axis))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

fn sizes(var: &str, default: &str) -> Vec<usize> {
    std::env::var(var)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// A cost's name as an id: lower-case words joined by `-`.
fn slug(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("-")
}

fn results_path() -> PathBuf {
    outpost_tests::target_tmp()
        .join("bench-growth")
        .join("results.json")
}

fn main() -> anyhow::Result<()> {
    let quick = !std::env::args().any(|a| a == "--bench");
    let (item_sizes, order_sizes, samples, push_n, rounds) = if quick {
        (vec![200, 2_000], vec![900, 2_000], 1, 10, 2)
    } else {
        (
            sizes("OUTPOST_GROWTH_ITEMS", "10000,100000,1000000"),
            sizes("OUTPOST_GROWTH_ORDERS", "1000,10000,100000"),
            std::env::var("OUTPOST_GROWTH_SAMPLES")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(3),
            OPEN_PER_TECH,
            30,
        )
    };
    let results_file = results_path();
    let mut results: Results = if quick {
        Results::default()
    } else {
        std::fs::read(&results_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    };
    let base = outpost_tests::target_tmp().join(format!("bench-growth-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let save = |results: &Results| -> anyhow::Result<()> {
        if !quick {
            if let Some(parent) = results_file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&results_file, serde_json::to_vec_pretty(results)?)?;
        }
        Ok(())
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("growth: load average {} at the start", loadavg());
    rt.block_on(async {
        for &n in &item_sizes {
            // A million items primes for tens of seconds: one sample unless asked.
            let s = if n >= 1_000_000 && std::env::var_os("OUTPOST_GROWTH_SAMPLES").is_none() {
                1
            } else {
                samples
            };
            let row = items_step(&base, n, s).await;
            println!(
                "items {n:>8}: seed {:.1} s; priming {:.0} ms, RSS {:.0} MiB, {} rows in {} requests, {:.2} MB down; 1 % delta ({} items) {:.0} ms, RSS {:.0} MiB, {} rows, {:.1} KB down; device {:.1} MiB",
                row.seed_secs, row.prime_ms, row.prime_rss_mib, row.prime_rows, row.prime_requests,
                row.prime_bytes as f64 / 1e6, row.delta_changed, row.delta_ms, row.delta_rss_mib,
                row.delta_rows, row.delta_bytes as f64 / 1e3, row.device_mib
            );
            results.items.retain(|r| r.items != n);
            results.items.push(row);
            save(&results)?;
        }
        for &n in &order_sizes {
            let row = orders_step(&base, n, samples, push_n, rounds).await;
            println!(
                "orders {n:>7}: seed {:.1} s; push of {} orders ({} mutations) {:.0} ms, RSS {:.0} MiB; dispatcher primes {} orders {:.0} ms, RSS {:.0} MiB; search p50 {:.2} ms, p99 {:.2} ms",
                row.seed_secs, row.push_orders, row.push_mutations, row.push_ms, row.push_rss_mib,
                row.dispatcher_orders, row.dispatcher_prime_ms, row.dispatcher_prime_rss_mib,
                row.search_p50_ms, row.search_p99_ms
            );
            results.orders.retain(|r| r.orders != n);
            results.orders.push(row);
            save(&results)?;
        }
        anyhow::Ok(())
    })?;
    let _ = std::fs::remove_dir_all(&base);

    println!("\ngrowth per 10× of size (about 10 = linear; over {WORSE_THAN_LINEAR} = worse than linear):");
    for s in series(&results) {
        if s.points.len() < 2 {
            continue;
        }
        let ratios = per_tenfold(&s.points);
        let verdict = verdict(&ratios).trim_matches('*');
        println!(
            "  {:<30} vs {:<6} {}  ratio/10× {}  {verdict}",
            s.name,
            s.axis,
            s.points
                .iter()
                .map(|(n, v)| format!("{n}: {v:.1} {}", s.unit))
                .collect::<Vec<_>>()
                .join(", "),
            ratios
                .iter()
                .map(|r| format!("{r:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        outpost_tests::bench_result(
            quick,
            serde_json::json!({
                "id": format!("growth-{}-{}", s.axis, slug(s.name)),
                "group": "Growth (issue 25)",
                "command": COMMAND,
                "figure": format!("{} against {} ({})", s.name, s.axis, s.points.iter().map(|p| p.0.to_string()).collect::<Vec<_>>().join(", ")),
                "outpost": format!("{}; ratio per 10×: {}", s.points.iter().map(|(n, v)| format!("{n}: {v:.1} {}", s.unit)).collect::<Vec<_>>().join(", "), ratios.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(", ")),
                "target": "linear or better",
                "met": ratios.iter().all(|&r| r <= WORSE_THAN_LINEAR),
            }),
        );
    }
    if quick {
        let out = tempfile::tempdir()?;
        plot(&results, out.path())?;
        let svg = std::fs::read_to_string(out.path().join("bench-growth.svg"))?;
        anyhow::ensure!(
            svg.contains("<svg") && svg.contains("priming"),
            "the plot is empty"
        );
        println!("growth: smoke run done (the full runs: make bench-scale)");
        return Ok(());
    }
    let docs = Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .parent()
    .map(|p| p.join("docs"))
    .ok_or_else(|| anyhow::anyhow!("no docs directory"))?;
    plot(&results, &docs)?;
    outpost_tests::write_docs_section(&docs, "bench-growth", &markdown(&results, &loadavg()))?;
    println!("results: {}", results_file.display());
    Ok(())
}
