//! Sync benchmarks on loopback: a real `outpost-server` (SQLite, release build), real
//! clients, and the test proxy counting bytes. Each figure stands beside a baseline
//! measured in the same run that differs only in what it names.
//!
//! Run: `make bench` (or `cargo build --release --bins && cargo bench -p outpost-tests
//! --bench sync`). Under `cargo test --benches` it runs once on small sizes, as a test;
//! there the engine's reconnect, which needs root, is an ignored test (run with
//! `--include-ignored`, as `make test` does).
//!
//! - reconnect: time from connectivity returning to 1,000 offline-edited orders
//!   acknowledged (batches of 100), beside one request per order;
//! - priming: a new device pulls the fleet's inventory (the `outpost` CLI as a child
//!   process: wall time and peak RSS);
//! - delta: a 1% change of the inventory after priming, beside a full re-download;
//! - requests per sync against ceil(rows / page size) + 2;
//! - evidence: bytes on the wire per completed order with a signature and two photos,
//!   before and after downscaling, and the time to push 100 such completions on
//!   loopback and through a proxy throttled to 1 Mbit/s.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use outpost_core::{Completion, EngineConfig, Evidence, NewOrder, OrderEdit, PassOptions};
use outpost_protocol::Status;
use outpost_sync::Timing;
use outpost_tests::{bin, fast_client, Device, Fault, Proxy, Server, TestAddress, DEMO_PASSWORD};

struct Sizes {
    items: usize,
    edits: usize,
    completions: usize,
    throttled_completions: usize,
}

fn seed(dir: &std::path::Path, items: usize) -> std::path::PathBuf {
    let db = dir.join("server.db");
    let arg = format!("sqlite:{}", db.display());
    let with_items = Command::new(bin("outpost-server"))
        .args([
            "seed",
            "--demo",
            "--items",
            &items.to_string(),
            "--db",
            &arg,
        ])
        .output()
        .unwrap();
    if !with_items.status.success() {
        // An older server without --items seeds its default 50,000.
        let out = Command::new(bin("outpost-server"))
            .args(["seed", "--demo", "--db", &arg])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!("note: this server has no `seed --items`; seeded its default inventory");
    }
    db
}

/// Run `outpost` with the data directory and key; wall time and peak RSS (KiB).
fn outpost_measured(
    dir: &std::path::Path,
    key: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (Duration, u64, String) {
    let mut cmd = Command::new(bin("outpost"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("OUTPOST_DB_KEY", key);
    let m = outpost_tests::cli::measure(cmd, stdin);
    (m.took, m.peak_rss_kib, m.stdout)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A dispatcher's device with at least `n` open orders (made when the fleet has fewer),
/// synced; returns it and `n` of those orders.
async fn dispatcher_with_open_orders(proxy: &Proxy, n: usize) -> (Device, Vec<String>) {
    let mut dev = Device::primed(&proxy.url(), "dispatcher").await;
    let mut ids: Vec<String> = dev
        .app
        .orders()
        .unwrap()
        .into_iter()
        .filter(|r| !matches!(r.order.status, Status::Completed | Status::Cancelled))
        .map(|r| r.order.id.to_string())
        .collect();
    while ids.len() < n {
        let row = dev
            .app
            .create_order(NewOrder {
                title: format!("Bench order {}", ids.len()),
                ..NewOrder::default()
            })
            .unwrap();
        ids.push(row.order.id.to_string());
    }
    dev.sync().await.unwrap();
    ids.truncate(n);
    (dev, ids)
}

/// A note on each order, saved on the device.
fn note_each(dev: &mut Device, ids: &[String], text: &str) {
    for id in ids {
        dev.app
            .edit_order(
                id,
                OrderEdit {
                    notes: vec![text.into()],
                    ..OrderEdit::default()
                },
            )
            .unwrap();
    }
}

/// The sync pass alone, from the moment the server can be reached again.
async fn reconnect(proxy: &Proxy, edits: usize, batch: usize) -> (Duration, usize) {
    let (mut dev, ids) = dispatcher_with_open_orders(proxy, edits).await;
    proxy.set(Fault::Refuse);
    note_each(&mut dev, &ids, "offline edit");
    proxy.set(Fault::None);
    let start = Instant::now();
    let mut ignore = |_| {};
    let pass = PassOptions {
        ignore_backoff: true,
        batch_count: batch,
        ..PassOptions::default()
    };
    let report = dev
        .app
        .sync_once(&fast_client(), pass, &mut ignore)
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(report.remaining.pending, 0);
    assert!(report.acknowledged >= edits);
    (took, report.requests)
}

/// From connectivity returning to every offline edit acknowledged, the way a laptop
/// lives it: the background engine is running and offline (its probes refused), the
/// server becomes reachable and the OS reports a network change (an address added to
/// `lo`); the clock runs until the engine's status shows nothing pending. The probe
/// backoff is held at a minute so that the OS's event, not a timer, wakes the engine.
async fn reconnect_engine(proxy: &Proxy, edits: usize, batch: usize) -> Duration {
    let (mut dev, ids) = dispatcher_with_open_orders(proxy, edits).await;
    proxy.set(Fault::Refuse);
    let refused = proxy.refused();
    note_each(&mut dev, &ids, "offline edit, engine");
    let engine = dev
        .app
        .start_engine(EngineConfig {
            client: fast_client(),
            timing: Timing {
                probe_backoff_min_ms: 60_000,
                probe_backoff_max_ms: 60_000,
                ..Timing::default()
            },
            pass: PassOptions {
                batch_count: batch,
                ..PassOptions::default()
            },
            watch_network: true,
        })
        .unwrap();
    let mut status = engine.subscribe();
    while proxy.refused() == refused {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the refused probe land and the watcher settle on the current addresses.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(engine.status().pending, edits, "nothing went while offline");

    proxy.set(Fault::None);
    let start = Instant::now();
    let _joined = TestAddress::add();
    tokio::time::timeout(
        Duration::from_secs(120),
        status.wait_for(|s| s.pending == 0),
    )
    .await
    .expect("the engine drained the outbox")
    .unwrap();
    let took = start.elapsed();
    engine.stop(Duration::from_secs(10)).await;
    took
}

async fn completions(
    proxy: &Proxy,
    user: &str,
    n: usize,
    throttle: Option<u64>,
    seed: u32,
) -> (Duration, u64, usize, usize, usize) {
    let mut dev = Device::primed(&proxy.url(), user).await;
    let ids: Vec<String> = dev
        .app
        .orders()
        .unwrap()
        .into_iter()
        .filter(|r| !matches!(r.order.status, Status::Completed | Status::Cancelled))
        .take(n)
        .map(|r| r.order.id.to_string())
        .collect();
    // A technician's open orders (the demo fleet gives each about 90).
    let n = ids.len();
    proxy.set(Fault::Refuse);
    let mut raw = 0usize;
    let mut stored = 0usize;
    for (i, id) in ids.iter().enumerate() {
        let checklist: Vec<String> = dev
            .app
            .order(id)
            .unwrap()
            .order
            .checklist
            .iter()
            .map(|c| c.id.clone())
            .collect();
        dev.app
            .edit_order(
                id,
                OrderEdit {
                    check: checklist,
                    ..OrderEdit::default()
                },
            )
            .unwrap();
        let photos: Vec<Evidence> = (0..2)
            .map(|k| Evidence {
                bytes: outpost_core::photos::synthetic_photo(4000, 3000, seed + (i * 2 + k) as u32),
                name: format!("photo-{k}.jpg"),
            })
            .collect();
        raw += photos.iter().map(|p| p.bytes.len()).sum::<usize>();
        let sig = outpost_tests::png(&format!("signature {i}"));
        raw += sig.len();
        let row = dev
            .app
            .complete_order(
                id,
                Completion {
                    signature_png: Evidence {
                        bytes: sig,
                        name: "sig.png".into(),
                    },
                    signer: "Customer".into(),
                    photos,
                },
            )
            .unwrap();
        stored += row
            .order
            .attachment_hashes()
            .iter()
            .map(|h| dev.app.attachment(h).unwrap().len())
            .sum::<usize>();
    }
    let up_before = proxy.stats.lock().map(|s| s.bytes_up).unwrap_or(0);
    proxy.set(
        throttle
            .map(|b| Fault::Throttle { bytes_per_sec: b })
            .unwrap_or(Fault::None),
    );
    let start = Instant::now();
    let report = dev.sync().await.unwrap();
    let took = start.elapsed();
    proxy.set(Fault::None);
    assert_eq!(report.remaining.pending, 0);
    let up = proxy.stats.lock().map(|s| s.bytes_up).unwrap_or(0) - up_before;
    (took, up, raw / n.max(1), stored / n.max(1), n)
}

/// How responses travel (the client's Accept-Encoding, the server's choice).
const COMPRESSION: &str = "zstd";

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let sizes = if quick {
        Sizes {
            items: 2_000,
            edits: 50,
            completions: 3,
            throttled_completions: 1,
        }
    } else {
        Sizes {
            items: 100_000,
            edits: 1_000,
            completions: 100,
            throttled_completions: 100,
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tmp = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let db = seed(tmp.path(), sizes.items);
        println!("seeded the server in {:.1} s", t.elapsed().as_secs_f64());
        let server = Server::start(&db, &[]);
        let proxy = Proxy::start(server.addr).await;

        // Priming, as a new device does it (the CLI as its own process).
        let key = outpost_tests::random_key();
        let dev_dir = tmp.path().join("device");
        let login = ["login", "--server", &proxy.url(), "--username", "tech1", "--password-stdin"];
        outpost_measured(&dev_dir, &key, &login, Some(DEMO_PASSWORD));
        let down0 = proxy.bytes_down();
        let (prime_time, prime_rss, out) = outpost_measured(&dev_dir, &key, &["--json", "sync"], None);
        let full_bytes = proxy.bytes_down() - down0;
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        let rows = report["pulled_rows"].as_u64().unwrap();
        let requests = report["requests"].as_u64().unwrap();
        let page = PassOptions::default().pull_limit.unwrap_or(1000) as u64;
        let allowed = rows.div_ceil(page) + 2;

        // A 1% change of the inventory: parts used on 1% of the SKUs, by another device.
        let changed = (sizes.items / 100).max(1);
        let mut other = Device::primed(&proxy.url(), "tech2").await;
        let open: Vec<String> = other.app.orders().unwrap().into_iter()
            .filter(|r| !matches!(r.order.status, Status::Completed | Status::Cancelled))
            .map(|r| r.order.id.to_string()).collect();
        for (chunk_no, chunk) in (0..changed).collect::<Vec<_>>().chunks(400).enumerate() {
            let parts = chunk.iter().map(|i| (format!("SKU-{i:05}"), outpost_protocol::Quantity::from_units(1))).collect();
            other.app.edit_order(&open[chunk_no], OrderEdit { parts, ..OrderEdit::default() }).unwrap();
        }
        other.sync().await.unwrap();
        let down1 = proxy.bytes_down();
        let (delta_time, _, out) = outpost_measured(&dev_dir, &key, &["--json", "sync"], None);
        let delta_bytes = proxy.bytes_down() - down1;
        let delta: serde_json::Value = serde_json::from_str(&out).unwrap();
        let delta_rows = delta["pulled_rows"].as_u64().unwrap();
        let delta_requests = delta["requests"].as_u64().unwrap();
        // Baseline: a full re-download (a new data directory primes again).
        let base_dir = tmp.path().join("baseline");
        let base_key = outpost_tests::random_key();
        outpost_measured(&base_dir, &base_key, &login, Some(DEMO_PASSWORD));
        let down2 = proxy.bytes_down();
        let (full_time, _, _) = outpost_measured(&base_dir, &base_key, &["--json", "sync"], None);
        let full_again = proxy.bytes_down() - down2;

        // Reconnect with 1,000 offline edits, beside one request per order.
        let (batched, batched_requests) = reconnect(&proxy, sizes.edits, 100).await;
        let (single, single_requests) = reconnect(&proxy, sizes.edits, 1).await;
        // It needs root (an address added to `lo`): an ignored test in a smoke run.
        let woken = if quick && !outpost_tests::ignored_tests_asked_for() {
            println!("reconnect through the engine: ignored, {}", outpost_tests::NEEDS_ROOT);
            None
        } else {
            Some((
                reconnect_engine(&proxy, sizes.edits, 100).await,
                reconnect_engine(&proxy, sizes.edits, 1).await,
            ))
        };

        // Evidence.
        let (loop_time, loop_up, raw, stored, loop_n) = completions(&proxy, "tech3", sizes.completions, None, 1).await;
        // Other photos than the loopback run's, so that nothing is already on the server.
        let (thr_time, thr_up, _, _, thr_n) = completions(&proxy, "tech4", sizes.throttled_completions, Some(125_000), 100_000).await;

        println!("\nOutpost sync benchmarks (loopback, release build, SQLite server)");
        println!("inventory items: {}; page size {page}", sizes.items);
        println!("priming: {rows} rows in {:.0} ms, {requests} requests (allowed {allowed}), client peak RSS {:.0} MB, {:.1} MB on the wire",
            ms(prime_time), prime_rss as f64 / 1024.0, full_bytes as f64 / 1e6);
        let delta_allowed = delta_rows.div_ceil(page) + 2;
        println!("1% delta: {delta_rows} rows in {:.0} ms, {delta_requests} requests (allowed {delta_allowed}), {} bytes = {:.2}% of a full re-download ({} bytes, {:.0} ms): {:.1}x faster",
            ms(delta_time), delta_bytes, 100.0 * delta_bytes as f64 / full_again.max(1) as f64, full_again, ms(full_time), ms(full_time) / ms(delta_time).max(0.001));
        println!("reconnect, {} offline-edited orders, the pass: {:.0} ms batched ({batched_requests} requests) vs {:.0} ms one request per order ({single_requests} requests): {:.1}x",
            sizes.edits, ms(batched), ms(single), ms(single) / ms(batched).max(0.001));
        if let Some((woken_batched, woken_single)) = woken {
            println!("reconnect, {} offline-edited orders, from connectivity returning (OS network event) to all acknowledged by the background engine: {:.0} ms batched vs {:.0} ms one request per order: {:.1}x",
                sizes.edits, ms(woken_batched), ms(woken_single), ms(woken_single) / ms(woken_batched).max(0.001));
        }
        println!("evidence per completed order (signature + 2 photos): {:.0} KB as taken, {:.0} KB after downscaling, {:.0} KB on the wire",
            raw as f64 / 1024.0, stored as f64 / 1024.0, loop_up as f64 / loop_n.max(1) as f64 / 1024.0);
        println!("push {loop_n} completions after reconnect: {:.0} ms on loopback", ms(loop_time));
        println!("push {thr_n} completions through 1 Mbit/s: {:.1} s ({:.0} KB sent)", thr_time.as_secs_f64(), thr_up as f64 / 1024.0);
        println!("targets: reconnect < 1 s; priming 100,000 < 4 s with RSS < 250 MB; delta < 0.3 s and <= 2% of full; requests <= ceil(rows/page)+2");
        let group = "Sync (issue 24)";
        let command = "cargo build --release --bins && cargo bench -p outpost-tests --bench sync";
        let prime_rss_mb = prime_rss as f64 / 1024.0;
        outpost_tests::bench_result(quick, serde_json::json!({
            "id": "priming", "group": group, "command": command,
            "figure": format!("Priming a new device: {} inventory items and its orders ({rows} rows), `outpost sync` start to exit", sizes.items),
            "outpost": format!("**{:.2} s**, peak RSS **{prime_rss_mb:.0} MB**, {:.2} MB on the wire ({COMPRESSION}), {requests} requests", prime_time.as_secs_f64(), full_bytes as f64 / 1e6),
            "target": "≤ 1.2 s, ≤ 60 MB",
            "met": prime_time.as_secs_f64() <= 1.2 && prime_rss_mb <= 60.0,
        }));
        outpost_tests::bench_result(quick, serde_json::json!({
            "id": "delta", "group": group, "command": command,
            "figure": format!("A 1% inventory delta ({changed} items changed by another technician's parts), `outpost sync` start to exit"),
            "outpost": format!("**{:.0} ms**, {:.1} KB on the wire ({COMPRESSION}) = {:.2}% of a full re-download, {delta_requests} request(s)", ms(delta_time), delta_bytes as f64 / 1e3, 100.0 * delta_bytes as f64 / full_again.max(1) as f64),
            "target": "≤ 80 ms",
            "met": ms(delta_time) <= 80.0,
        }));
        outpost_tests::bench_result(quick, serde_json::json!({
            "id": "reconnect-pass", "group": group, "command": command,
            "figure": format!("{} offline-edited orders pushed by one sync pass, batched", sizes.edits),
            "outpost": format!("{:.0} ms, {batched_requests} requests", ms(batched)),
            "baseline": format!("one request per order: {:.0} ms, {single_requests} requests", ms(single)),
            "target": "< 1 s",
            "met": ms(batched) < 1000.0,
        }));
        if let Some((woken_batched, woken_single)) = woken {
            outpost_tests::bench_result(quick, serde_json::json!({
                "id": "reconnect-engine", "group": group, "command": command,
                "figure": format!("{} offline-edited orders, from the OS's network event to all acknowledged by the background engine", sizes.edits),
                "outpost": format!("{:.0} ms", ms(woken_batched)),
                "baseline": format!("one request per order: {:.0} ms", ms(woken_single)),
                "target": "< 1 s",
                "met": ms(woken_batched) < 1000.0,
            }));
        }
        outpost_tests::bench_result(quick, serde_json::json!({
            "id": "evidence", "group": group, "command": command,
            "figure": format!("{loop_n} completions with a signature and 2 photos each, pushed on loopback / through 1 Mbit/s"),
            "outpost": format!("{:.0} ms / {:.1} s; {:.0} KB per order on the wire (photos downscaled from {:.0} KB)", ms(loop_time), thr_time.as_secs_f64(), loop_up as f64 / loop_n.max(1) as f64 / 1024.0, raw as f64 / 1024.0),
        }));
        assert!(requests <= allowed, "requests per sync {requests} > {allowed}");
        assert!(delta_requests <= delta_allowed, "requests per delta sync {delta_requests} > {delta_allowed}");
    });
}
