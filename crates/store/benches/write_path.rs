//! The local write path: one user action = validate, update the order row and append
//! its mutation to the outbox, in one transaction (`Store::record`), with
//! `synchronous=FULL` on disk. Measured on SQLCipher and, in the same run with the
//! same code, on plain SQLite; plus the time to open the encrypted store with a raw key.
//!
//! Run: `cargo bench -p outpost-store --bench write_path` (or `make bench`).
//! Optional: `OUTPOST_BENCH_EDITS=5000` (edits per store, default 3000);
//! `OUTPOST_BENCH_FRAMES=1` also counts the WAL frames (pages) each action writes, with
//! automatic checkpoints off so that the WAL only grows: a diagnostic run whose timings
//! are not comparable with a normal run.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use outpost_protocol::mutation::EntityKind;
use outpost_protocol::{Mutation, MutationKind, NoteEntry, Op, SetOp, WorkOrder, FORMAT_VERSION};
use outpost_store::{DbKey, Store};
use uuid::Uuid;

const ORDERS: usize = 1000;
const BLOCK: usize = 250;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn seed(store: &mut Store) -> Vec<WorkOrder> {
    let orders: Vec<WorkOrder> = (0..ORDERS)
        .map(|i| {
            let mut o = WorkOrder::blank(Uuid::now_v7());
            o.title = format!("Order {i}");
            o.number = Some(i as u64 + 1);
            o.version = 1;
            o
        })
        .collect();
    store
        .put_server_orders(&orders, Utc::now())
        .expect("seed orders");
    orders
}

fn edit(order: &WorkOrder, device: Uuid, i: usize) -> Mutation {
    Mutation {
        mutation_id: Uuid::now_v7(),
        device_id: device,
        entity: EntityKind::WorkOrder,
        entity_id: order.id,
        kind: MutationKind::Update,
        base_version: order.version,
        format: FORMAT_VERSION,
        device_time: Utc::now(),
        ops: vec![
            Op::Set(SetOp::Description(format!("edit {i}"))),
            Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::now_v7(),
                    author: "bench".into(),
                    text: format!("Measured pressure {i} kPa"),
                    at: Utc::now(),
                },
            },
        ],
        base_epoch: None,
        reason: None,
        seen: Vec::new(),
    }
}

struct Run {
    store: Store,
    orders: Vec<WorkOrder>,
    device: Uuid,
    samples: Vec<Duration>,
    /// Set in a frame-counting run: the WAL file, its page size, frames per action.
    frames: Option<(PathBuf, u64, Vec<u64>)>,
    next: usize,
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

impl Run {
    fn step(&mut self, n: usize, keep: bool) {
        for _ in 0..n {
            let order = &self.orders[self.next % ORDERS];
            // Seal what is there now and then, as the sync engine does, so rows stay small.
            if self.next.is_multiple_of(ORDERS) && self.next > 0 {
                let ids: Vec<String> = self
                    .store
                    .outbox()
                    .expect("outbox")
                    .into_iter()
                    .map(|r| r.mutation_id)
                    .collect();
                self.store.mark_sent(&ids).expect("mark sent");
            }
            let m = edit(order, self.device, self.next);
            let wal_before = self.frames.as_ref().map(|(wal, _, _)| file_len(wal));
            let start = Instant::now();
            self.store.record(m, Utc::now()).expect("record");
            let took = start.elapsed();
            if keep {
                self.samples.push(took);
                if let (Some((wal, page, counts)), Some(before)) = (&mut self.frames, wal_before) {
                    // A WAL frame is a 24-byte header and one page.
                    counts.push((file_len(wal) - before) / (*page + 24));
                }
            }
            self.next += 1;
        }
    }
}

fn report(name: &str, samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let (p50, p99) = (ms(percentile(samples, 0.50)), ms(percentile(samples, 0.99)));
    println!(
        "{name:<17} n={:<6} p50 {p50:>7.3} ms   p99 {p99:>7.3} ms   max {:>7.3} ms",
        samples.len(),
        ms(*samples.last().expect("samples"))
    );
    (p50, p99)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this once, quickly.
    let quick =
        std::env::args().any(|a| a == "--test") || !std::env::args().any(|a| a == "--bench");
    let edits: usize = std::env::var("OUTPOST_BENCH_EDITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 100 } else { 3000 });
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("write-path-bench");
    let _ = std::fs::remove_dir_all(&base);
    let key = DbKey::generate().expect("key");

    let mut enc_store = Store::create(&base.join("encrypted"), &key).expect("create encrypted");
    let mut plain_store =
        Store::create_plaintext_for_benchmark(&base.join("plain")).expect("create plain");
    let sync_enc = enc_store.check().expect("check").synchronous;
    let sync_plain = plain_store.check().expect("check").synchronous;
    let cipher = enc_store.pragma_text("cipher_version").expect("cipher");
    let hmac = enc_store
        .pragma_text("cipher_hmac_algorithm")
        .expect("hmac");
    let provider = enc_store.pragma_text("cipher_provider").expect("provider");
    let provider_version = enc_store
        .pragma_text("cipher_provider_version")
        .expect("provider version");
    let memsec = enc_store
        .pragma_text("cipher_memory_security")
        .unwrap_or_default();
    let page_size = |s: &Store| -> u64 {
        s.pragma_text("page_size")
            .expect("page size")
            .parse()
            .expect("a number")
    };
    let (enc_page, plain_page) = (page_size(&enc_store), page_size(&plain_store));
    println!("cipher_memory_security={memsec}; page size: encrypted={enc_page} plain={plain_page}");
    let count_frames = std::env::var_os("OUTPOST_BENCH_FRAMES").is_some();
    if count_frames {
        for s in [&enc_store, &plain_store] {
            s.pragma_text("wal_autocheckpoint = 0")
                .expect("checkpoints off");
        }
        println!("counting WAL frames: automatic checkpoints are off, timings are not comparable");
    }
    let enc_orders = seed(&mut enc_store);
    let plain_orders = seed(&mut plain_store);
    let device = Uuid::new_v4();
    let frames = |dir: &str, page: u64| {
        count_frames.then(|| (base.join(dir).join("outpost.db-wal"), page, Vec::new()))
    };
    let mut enc = Run {
        store: enc_store,
        orders: enc_orders,
        device,
        samples: Vec::new(),
        frames: frames("encrypted", enc_page),
        next: 0,
    };
    let mut plain = Run {
        store: plain_store,
        orders: plain_orders,
        device,
        samples: Vec::new(),
        frames: frames("plain", plain_page),
        next: 0,
    };
    enc.step(50, false);
    plain.step(50, false);
    // Alternate blocks so that disk and CPU noise fall on both alike.
    let mut done = 0;
    while done < edits {
        let n = BLOCK.min(edits - done);
        enc.step(n, true);
        plain.step(n, true);
        done += n;
    }

    println!(
        "Local write path: Store::record = validate + order row + outbox row, one transaction"
    );
    println!(
        "on disk at {} ({} orders, {edits} edits each)",
        base.display(),
        ORDERS
    );
    println!(
        "synchronous: encrypted={sync_enc} plain={sync_plain}; SQLCipher {cipher}, page HMAC {hmac}"
    );
    println!("page crypto: SQLCipher's own provider, {provider} ({provider_version})");
    let (e50, e99) = report("sqlcipher", &mut enc.samples);
    let (p50, p99) = report("plain", &mut plain.samples);
    println!(
        "ratio      p50 {:.2}x   p99 {:.2}x  (encrypted / plain)",
        e50 / p50,
        e99 / p99
    );
    for (name, run) in [("sqlcipher", &mut enc), ("plain", &mut plain)] {
        if let Some((_, _, counts)) = &mut run.frames {
            counts.sort_unstable();
            let mean = counts.iter().sum::<u64>() as f64 / counts.len().max(1) as f64;
            println!(
                "{name:<17} WAL frames (pages written) per action: p50 {}, mean {mean:.2}, max {}",
                counts.get(counts.len() / 2).copied().unwrap_or(0),
                counts.last().copied().unwrap_or(0)
            );
        }
    }
    drop(enc);
    drop(plain);

    let mut opens = Vec::new();
    for _ in 0..if quick { 3 } else { 30 } {
        let start = Instant::now();
        let store = Store::open(&base.join("encrypted"), &key).expect("open");
        opens.push(start.elapsed());
        drop(store);
    }
    let (open50, _) = report("open(raw key)", &mut opens);
    // The figures for docs/benchmarks.md's "Latest run" (`make bench` collects these
    // lines; `cargo xtask bench-report` describes them).
    let command = "cargo bench -p outpost-store --bench write_path";
    for (id, what, enc, plain, target, limit) in [
        ("write-p50", "p50", e50, p50, "< 0.3 ms", 0.3),
        ("write-p99", "p99", e99, p99, "< 2 ms", 2.0),
    ] {
        let line = serde_json::json!({
            "id": id, "group": "Local write path (issue 24)", "command": command, "quick": quick,
            "figure": format!("One user action (validate, order row, outbox row; one transaction, synchronous=FULL), {what}, {edits} edits"),
            "outpost": format!("**{enc:.3} ms** on SQLCipher ({cipher})"),
            "baseline": format!("plain SQLite, same code: {plain:.3} ms ({:.2}×)", enc / plain),
            "target": target,
            "met": enc < limit,
        });
        println!("bench-result: {line}");
    }
    let line = serde_json::json!({
        "id": "open", "group": "Local write path (issue 24)", "command": command, "quick": quick,
        "figure": "Opening the encrypted store with a raw key, median",
        "outpost": format!("{open50:.1} ms"),
        "target": "< 20 ms",
        "met": open50 < 20.0,
    });
    println!("bench-result: {line}");
    println!(
        "targets: p50 < 1 ms, p99 < 5 ms, open < 20 ms (absolute figures; the ratio is shown, not a target); synchronous must be FULL"
    );
    assert_eq!(sync_enc, "FULL", "the benchmark measures synchronous=FULL");
    assert_eq!(
        sync_plain, "FULL",
        "the benchmark measures synchronous=FULL"
    );
}
