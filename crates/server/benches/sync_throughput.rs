//! `cargo bench -p outpost-server`: push and pull throughput over real HTTP on
//! loopback, and bytes on the wire for a full pull versus a 1% delta.
//!
//! - push: batches of 100 `update` mutations (idempotency records on), mutations/s;
//! - pull: priming 100,000 inventory rows at a fixed page size (1,000), rows/s;
//! - bytes: the full priming pull versus the pull after 1% of the items changed.
//!
//! Runs on SQLite; also on PostgreSQL when `OUTPOST_TEST_PG_URL` is set (see
//! scripts/with-postgres.sh). Sizes can be lowered with `OUTPOST_BENCH_ITEMS`. As a
//! smoke test (`cargo test --benches`) the PostgreSQL run is an ignored test: it runs
//! only with `--include-ignored` (as `make test` passes it), and then fails without
//! PostgreSQL, like the other tests that need it (README, "Tests").

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use chrono::Utc;
use outpost_protocol::mutation::{EntityKind, ListItem};
use outpost_protocol::wire::*;
use outpost_protocol::*;
use outpost_server::{Db, PasswordCost, ServerConfig};
use uuid::Uuid;

const PASSWORD: &str = "bench-password";

/// This process's CPU time (user + system) in seconds, from `/proc/self/stat` (Linux;
/// `None` elsewhere). On a machine shared with other work the wall-clock rate depends
/// on what else runs; CPU time per mutation does not.
fn cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux configuration Rust supports.
    Some((utime + stime) / 100.0)
}

async fn db_url(kind: &str, dir: &std::path::Path) -> Option<String> {
    if kind == "sqlite" {
        return Some(format!("sqlite:{}", dir.join("bench.db").display()));
    }
    let base = std::env::var("OUTPOST_TEST_PG_URL").ok()?;
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    let name = format!("outpost_bench_{}", Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .ok()?;
    let (head, _) = base.rsplit_once('/')?;
    Some(format!("{head}/{name}"))
}

/// `required`: fail rather than skip when the backend is not there.
async fn run(kind: &str, items: usize, required: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let Some(url) = db_url(kind, dir.path()).await else {
        anyhow::ensure!(
            !required,
            "{kind}: needs PostgreSQL (OUTPOST_TEST_PG_URL, through scripts/with-postgres.sh)"
        );
        println!("{kind}: skipped (set OUTPOST_TEST_PG_URL)");
        return Ok(());
    };
    let cfg = ServerConfig {
        password_cost: PasswordCost::for_tests(),
        ..ServerConfig::default()
    };
    let db = Db::open(&url).await?;
    outpost_server::add_user(&db, &cfg, "dispatcher", Role::Dispatcher, PASSWORD).await?;
    let now_us = cfg.now_us();
    let t = Instant::now();
    db.write(move |sql| {
        let all: Vec<InventoryItem> = (0..items).map(outpost_server::seed::demo_item).collect();
        outpost_server::seed::insert_items(sql, &all, now_us)
    })
    .await?;
    let seed_time = t.elapsed();
    let state = outpost_server::state(db.clone(), cfg.clone()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let running = outpost_server::spawn(listener, state, None)?;
    let base = format!("http://{}", running.addr);
    // No gzip: measure bytes as sent.
    let http = reqwest::Client::builder()
        .no_gzip()
        .timeout(Duration::from_secs(300))
        .build()?;
    let device = Uuid::new_v4();
    let tokens: TokenResponse = http
        .post(format!("{base}{}", paths::LOGIN))
        .json(&LoginRequest {
            username: "dispatcher".into(),
            password: PASSWORD.into(),
            device_id: device,
        })
        .send()
        .await?
        .json()
        .await?;
    let post = |path: &str| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&tokens.access_token)
    };

    // Orders to push on.
    let orders: Vec<Uuid> = (0..100).map(|_| Uuid::now_v7()).collect();
    let mk = |id: Uuid, kind: MutationKind, base_version: u64, ops: Vec<Op>| Mutation {
        mutation_id: Uuid::now_v7(),
        device_id: device,
        entity: EntityKind::WorkOrder,
        entity_id: id,
        kind,
        base_version,
        format: FORMAT_VERSION,
        device_time: Utc::now(),
        ops,
        base_epoch: None,
        reason: None,
        seen: Vec::new(),
    };
    let creates: Vec<Mutation> = orders
        .iter()
        .map(|id| {
            mk(
                *id,
                MutationKind::Create,
                0,
                vec![
                    Op::Set(SetOp::Title("Bench order".into())),
                    Op::Set(SetOp::Assignee(Some("tech1".into()))),
                    Op::Add(ListItem::Checklist(ChecklistItem {
                        id: "c1".into(),
                        label: "Step".into(),
                        required: false,
                        done: false,
                    })),
                ],
            )
        })
        .collect();
    post(paths::PUSH)
        .json(&PushRequest { mutations: creates })
        .send()
        .await?
        .error_for_status()?;

    // Push: 50 batches of 100 updates.
    let batches = 50;
    let mut pushed = 0;
    let t = Instant::now();
    let cpu0 = cpu_secs();
    for b in 0..batches {
        let muts: Vec<Mutation> = orders
            .iter()
            .map(|id| {
                mk(
                    *id,
                    MutationKind::Update,
                    1,
                    vec![
                        Op::Set(SetOp::Description(format!("pass {b}"))),
                        Op::AppendNote {
                            note: NoteEntry {
                                id: Uuid::now_v7(),
                                author: "dispatcher".into(),
                                text: "bench".into(),
                                at: Utc::now(),
                            },
                        },
                    ],
                )
            })
            .collect();
        pushed += muts.len();
        let r: PushResponse = post(paths::PUSH)
            .json(&PushRequest { mutations: muts })
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        assert!(r
            .results
            .iter()
            .all(|r| matches!(r.outcome, PushOutcome::Applied(_))));
    }
    let push_rate = pushed as f64 / t.elapsed().as_secs_f64();
    let push_cpu_us = match (cpu0, cpu_secs()) {
        (Some(a), Some(b)) => format!("{:.0}", (b - a) * 1e6 / pushed as f64),
        _ => "?".into(),
    };

    // Pull: prime everything at page size 1000.
    let pull_all = |cursor: Option<String>| {
        let post = &post;
        async move {
            let mut cursor = cursor;
            let (mut rows, mut bytes, mut pages) = (0usize, 0usize, 0usize);
            loop {
                let body = post(paths::PULL)
                    .json(&PullRequest {
                        cursor: cursor.clone(),
                        limit: Some(1000),
                        max_bytes: Some(limits::PULL_BYTES_MAX),
                        confirmed: Vec::new(),
                    })
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                bytes += body.len();
                pages += 1;
                let page: PullResponse = serde_json::from_slice(&body)?;
                rows += page.changes.len();
                cursor = Some(page.cursor);
                if !page.has_more {
                    break;
                }
            }
            anyhow::Ok((rows, bytes, pages, cursor))
        }
    };
    let t = Instant::now();
    let (rows, full_bytes, pages, cursor) = pull_all(None).await?;
    let pull_secs = t.elapsed().as_secs_f64();
    let pull_rate = rows as f64 / pull_secs;

    // 1% of the items change (parts used on an order decrement their stock).
    let changed = items / 100;
    let lines: Vec<Op> = (0..changed)
        .map(|i| {
            Op::Add(ListItem::PartsUsed(PartUsed {
                id: Uuid::now_v7(),
                sku: outpost_server::seed::demo_sku(i * 100 % items),
                quantity: Quantity(1000),
            }))
        })
        .collect();
    for (n, chunk) in lines.chunks(100).enumerate() {
        let id = orders[n % orders.len()];
        let list_id = Uuid::now_v7();
        let mut ops = chunk.to_vec();
        ops.push(Op::AppendNote {
            note: NoteEntry {
                id: list_id,
                author: "d".into(),
                text: "parts".into(),
                at: Utc::now(),
            },
        });
        let r: PushResponse = post(paths::PUSH)
            .json(&PushRequest {
                mutations: vec![mk(id, MutationKind::Update, 1, ops)],
            })
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if !matches!(r.results[0].outcome, PushOutcome::Applied(_)) {
            anyhow::bail!("delta push failed: {:?}", r.results[0].outcome);
        }
    }
    let t = Instant::now();
    let (delta_rows, delta_bytes, delta_pages, _) = pull_all(cursor).await?;
    let delta_secs = t.elapsed().as_secs_f64();

    println!(
        "{kind}: seeded {items} items in {:.1} s",
        seed_time.as_secs_f64()
    );
    println!(
        "{kind}: push  {pushed} mutations in batches of 100: {push_rate:.0} mutations/s \
         ({push_cpu_us} µs CPU per mutation, server and bench client together)"
    );
    println!("{kind}: pull  {rows} rows in {pages} pages of 1000: {pull_secs:.2} s = {pull_rate:.0} rows/s");
    println!(
        "{kind}: bytes full pull {full_bytes} B; 1% delta ({changed} items changed): {delta_rows} rows, {delta_pages} pages, {delta_bytes} B in {delta_secs:.3} s = {:.2}% of full",
        100.0 * delta_bytes as f64 / full_bytes as f64
    );
    let line = serde_json::json!({
        "id": format!("server-{kind}"), "group": "Server", "quick": items < 100_000,
        "command": "scripts/with-postgres.sh cargo bench -p outpost-server",
        "figure": format!("One server on {kind}: pushes in batches of 100, pull of {rows} rows in pages of 1,000"),
        "outpost": format!("push {push_rate:.0} mutations/s, pull {pull_rate:.0} rows/s; 1% delta {delta_rows} rows in {:.0} ms", delta_secs * 1000.0),
    });
    println!("bench-result: {line}");
    running.stop().await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; `cargo test --benches` (part of `make test`) runs
    // this once on small sizes, as a smoke test, where the PostgreSQL run is an ignored
    // test (see the header).
    let quick = !std::env::args().any(|a| a == "--bench");
    let ignored_asked_for = std::env::args().any(|a| a == "--include-ignored" || a == "--ignored");
    let items: usize = std::env::var("OUTPOST_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_000 } else { 100_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        run("sqlite", items, true).await?;
        if quick && !ignored_asked_for {
            println!("postgres: ignored, needs PostgreSQL: scripts/with-postgres.sh cargo test -p outpost-server --benches -- --include-ignored (make test runs it)");
            return Ok(());
        }
        run("postgres", items, quick).await
    })
}
