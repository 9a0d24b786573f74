//! The reconnect after a day offline (issue 24 item 1), timed as a new user would:
//! `outpost sync` on a device that created and completed 1,000 orders offline, each
//! with a note, a part and a distinct signature (2,000 mutations), from process start
//! to exit, against a real `outpost-server` (SQLite, release build) on loopback.
//!
//! Run: `cargo build --release --bins && cargo bench -p outpost-tests --bench
//! reconnect` (part of `make bench`). `--quick` (and `cargo test --benches`) runs 20
//! orders once, as a smoke test. Each sample is its own device (tech1 … tech5 in turn)
//! prepared offline before any is timed, so every `outpost sync` starts from the same
//! kind of state; the server keeps the earlier samples' orders (noted in the output).
//!
//! `BENCH_RECONNECT_DIR=DIR` (issue 24 item 4, the desktop's reconnect) prepares one
//! device the same way (tech1; 1,000 orders, or 20 with `--quick`) and times nothing:
//! it leaves in `DIR` the server's database (`server.db`), the device's data directory
//! (`device/`) and `bench.json` (the device's key, its user, the server address it
//! signed in to, the number of orders), for `ui/e2e/reconnect.bench.mjs` to start the
//! server on that database and open the device in the desktop app with its link cut
//! (scripts/bench-desktop-reconnect.sh runs both).
//!
//! `OUTPOST_BENCH_PERF=DIR` records the client of the first sample (or of sample
//! `OUTPOST_BENCH_PERF_SAMPLE`) with `perf record` (call graphs) into
//! `DIR/reconnect-client.data`, and the server for that sample into
//! `DIR/reconnect-server.data`, for a flame graph (`perf script | inferno-collapse-perf
//! | inferno-flamegraph`, or `perf report`).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outpost_core::{Completion, Evidence, NewOrder, OrderEdit};
use outpost_protocol::Quantity;
use outpost_tests::{bin, png, seeded_db, target_tmp, Device, Server};

/// The pass's own report (`outpost sync --json`), the fields this benchmark prints.
#[derive(serde::Deserialize, Debug)]
struct Report {
    pushed: usize,
    acknowledged: usize,
    uploaded: usize,
    pulled_rows: usize,
    requests: usize,
    bytes_sent: usize,
    bytes_received: usize,
    remaining: Remaining,
}

#[derive(serde::Deserialize, Debug)]
struct Remaining {
    pending: usize,
    failed: usize,
    conflicts: usize,
}

/// `dev`, signed in as `user` and primed, then `orders` orders created and completed
/// offline (nothing syncs until the timed `outpost sync`: no engine runs). Returns the
/// data directory (kept) and the key.
async fn offline_day(
    mut dev: Device,
    server: &Server,
    user: &str,
    orders: usize,
    tag: usize,
) -> (tempfile::TempDir, String) {
    dev.login(&server.url, user).await;
    dev.sync().await.unwrap();
    let sku = dev
        .app
        .search_inventory("", 1)
        .unwrap()
        .into_iter()
        .next()
        .expect("an inventory item")
        .sku;
    for i in 0..orders {
        let row = dev
            .app
            .create_order(NewOrder {
                title: format!("Follow-up {tag}-{i}: replace the seal"),
                customer: "Harbour Bakery".into(),
                ..NewOrder::default()
            })
            .unwrap();
        let id = row.order.id.to_string();
        dev.app
            .edit_order(
                &id,
                OrderEdit {
                    notes: vec![format!("Seal replaced, pump tested for 10 minutes ({i})")],
                    parts: vec![(sku.clone(), Quantity::from_units(1))],
                    ..OrderEdit::default()
                },
            )
            .unwrap();
        dev.app
            .complete_order(
                &id,
                Completion {
                    signature_png: Evidence {
                        bytes: png(&format!("signature {tag}-{i}")),
                        name: "signature.png".into(),
                    },
                    signer: "Site manager".into(),
                    photos: Vec::new(),
                },
            )
            .unwrap();
    }
    let Device { app, dir, key } = dev;
    drop(app);
    (dir, key)
}

/// `outpost sync --json` on `dir`: wall time from spawn to exit, and its report.
fn outpost_sync(dir: &Path, key: &str, perf: Option<&Path>) -> (Duration, Report) {
    let mut cmd = Command::new(bin("outpost"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["sync", "--json"])
        .env("OUTPOST_DB_KEY", key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(out) = perf {
        cmd = outpost_tests::perf::wrapped(&cmd, &out.join("reconnect-client.data"));
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "outpost sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "outpost sync --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (took, report)
}

/// `BENCH_RECONNECT_DIR`: the server's database and one device's offline day left in
/// `keep` for the desktop's reconnect benchmark (`ui/e2e/reconnect.bench.mjs`).
async fn keep_for_the_window(keep: &Path, orders: usize) {
    let _ = std::fs::remove_dir_all(keep);
    std::fs::create_dir_all(keep).unwrap();
    let db = seeded_db(keep);
    let server = Server::start(&db, &[]);
    let user = "tech1";
    let device_dir = tempfile::Builder::new()
        .prefix("device-")
        .tempdir_in(keep)
        .unwrap();
    let key = outpost_tests::random_key();
    let app = outpost_core::Outpost::init(Device::options(device_dir.path(), &key), None).unwrap();
    let dev = Device {
        app,
        dir: device_dir,
        key,
    };
    let (dir, key) = offline_day(dev, &server, user, orders, 0).await;
    let url = server.url.clone();
    drop(server);
    let device = keep.join("device");
    std::fs::rename(dir.keep(), &device).unwrap();
    let info = serde_json::json!({
        "server_db": db,
        "device_dir": device,
        "key": key,
        "user": user,
        "signed_in_to": url,
        "orders": orders,
    });
    std::fs::write(keep.join("bench.json"), info.to_string()).unwrap();
    println!(
        "kept for the desktop's reconnect: {orders} orders created and completed offline by {user}, in {}",
        keep.display()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
    let (orders, samples) = if quick {
        (20, 1)
    } else {
        (
            1000,
            std::env::var("OUTPOST_BENCH_SAMPLES")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(5),
        )
    };
    let perf_dir = std::env::var_os("OUTPOST_BENCH_PERF").map(std::path::PathBuf::from);
    let perf_sample: usize = std::env::var("OUTPOST_BENCH_PERF_SAMPLE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let Some(keep) = std::env::var_os("BENCH_RECONNECT_DIR") {
        rt.block_on(keep_for_the_window(Path::new(&keep), orders));
        return;
    }
    rt.block_on(async {
        let base = target_tmp().join(format!("bench-reconnect-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let db = seeded_db(&base);
        let server = Server::start(&db, &[]);

        // Every device prepared before any is timed.
        let mut devices = Vec::new();
        for s in 0..samples {
            let user = format!("tech{}", s % 5 + 1);
            let day = offline_day(Device::new(), &server, &user, orders, s).await;
            devices.push((user.clone(), day));
        }
        println!(
            "reconnect after a day offline: {orders} orders created and completed offline, each with a note, a part and a distinct signature; `outpost sync` process start to exit; {samples} sample(s), one device each"
        );
        let mut times = Vec::new();
        let mut last = (0, 0, 0, 0);
        for (i, (user, (dir, key))) in devices.iter().enumerate() {
            let perf = perf_dir.as_deref().filter(|_| i == perf_sample);
            let server_perf = perf.map(|out| {
                outpost_tests::perf::Recording::attach(
                    server.pid(),
                    &out.join("reconnect-server.data"),
                )
            });
            let (took, r) = outpost_sync(dir.path(), key, perf);
            if let Some(p) = server_perf {
                p.stop();
            }
            assert_eq!(r.remaining.pending, 0, "everything acknowledged: {r:?}");
            assert_eq!(r.remaining.failed + r.remaining.conflicts, 0, "{r:?}");
            assert!(r.acknowledged >= 2 * orders, "{r:?}");
            println!(
                "  sample {i} ({user}): {:.0} ms; {} requests; pushed {} mutations, {} acknowledged; {} attachments uploaded; pulled {} rows; {:.2} MB sent, {:.2} MB received",
                ms(took),
                r.requests,
                r.pushed,
                r.acknowledged,
                r.uploaded,
                r.pulled_rows,
                r.bytes_sent as f64 / 1e6,
                r.bytes_received as f64 / 1e6,
            );
            times.push(ms(took));
            last = (r.requests, r.pulled_rows, r.bytes_sent, r.bytes_received);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "reconnect: median {median:.0} ms (min {:.0}, max {:.0}) over {} sample(s); target ≤ 300 ms",
            times[0],
            times[times.len() - 1],
            times.len()
        );
        let (requests, pulled, up, down) = last;
        outpost_tests::bench_result(quick, serde_json::json!({
            "id": "reconnect",
            "group": "Sync (issue 24)",
            "figure": format!("Reconnect after a day offline: {orders} orders created and completed offline (note, part, distinct signature each; {} mutations), `outpost sync` start to exit", 2 * orders),
            "outpost": format!("**{median:.0} ms** median of {} (range {:.0}–{:.0}); {requests} requests, {pulled} rows pulled back, {:.2} MB up, {:.2} MB down", times.len(), times[0], times[times.len() - 1], up as f64 / 1e6, down as f64 / 1e6),
            "target": "≤ 300 ms",
            "met": median <= 300.0,
            "command": "cargo build --release --bins && cargo bench -p outpost-tests --bench reconnect",
        }));
        drop(server);
        let _ = std::fs::remove_dir_all(&base);
    });
}
