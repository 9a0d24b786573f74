//! `cargo bench -p outpost-server --bench retention` (issue 25 item 4): how much the
//! change log and the idempotency records grow per technician-day, and what a device
//! that was away pulls when it comes back.
//!
//! A real server (SQLite, a temporary file) on loopback, driven over HTTP as devices
//! drive it. One technician-day, as simulated here (each figure a setting, below):
//!
//! - the office creates the day's orders for the technician (`ORDERS` a day, one push:
//!   title, site, a three-item checklist, the assignee and the time window);
//! - the technician works them in bursts (the van comes back into coverage after two
//!   visits): per visit "en route" and "in progress", two notes, the checklist ticked,
//!   two parts used, a time entry, and the completion with a 3 kB signature and a
//!   200 kB photo uploaded first; `MUTATIONS_PER_VISIT` mutations, one push per burst,
//!   then a delta pull;
//! - between bursts the engine's pull every 30 s over an 8-hour day (`PULLS_PER_DAY`,
//!   960 by default): these write no change-log row and no idempotency record.
//!
//! Printed: rows and bytes of `changes` and `idempotency` per technician-day (bytes of
//! the rows' columns, and bytes on disk with their indexes, measured by deleting each
//! table from a copy of the database and vacuuming), the pulls' effect on both, and
//! what a delta after `DAYS` days away costs one technician's device (rows, bytes).
//! Settings: `OUTPOST_BENCH_TECHS` (10), `OUTPOST_BENCH_DAYS` (5),
//! `OUTPOST_BENCH_PULLS` (pulls per technician-day, 960).

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use chrono::Utc;
use common::{Kind, Session, TestServer, PASSWORD};
use outpost_protocol::mutation::ListItem;
use outpost_protocol::wire::*;
use outpost_protocol::*;
use uuid::Uuid;

/// Orders a technician works in a day.
const ORDERS: usize = 6;
/// Visits between two pushes (the van comes back into coverage).
const VISITS_PER_BURST: usize = 2;
/// What a visit sends (see the list at the top).
const MUTATIONS_PER_VISIT: usize = 8;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (rows, bytes of their columns) of `changes` and of `idempotency`.
async fn table_sizes(s: &TestServer) -> anyhow::Result<[(u64, u64); 2]> {
    Ok(s.db
        .read(|sql| {
            let c = sql.query(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(entity) + LENGTH(entity_id) + LENGTH(body) \
                 + LENGTH(mutation_ids) + LENGTH(audience) + COALESCE(LENGTH(scope_user), 0) \
                 + COALESCE(LENGTH(scope_user2), 0) + 3 * 8), 0) FROM changes",
                &[],
            )?;
            let i = sql.query(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(username) + LENGTH(device_id) \
                 + LENGTH(mutation_id) + LENGTH(body_hash) + LENGTH(result) + 2 * 8), 0) \
                 FROM idempotency",
                &[],
            )?;
            Ok([(c[0].u64(0)?, c[0].u64(1)?), (i[0].u64(0)?, i[0].u64(1)?)])
        })
        .await?)
}

/// Bytes on disk of each table with its indexes, in a copy of the SQLite file: the file
/// after `VACUUM`, less the file after dropping the table's rows and vacuuming again.
fn disk_bytes(db: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("copy.db");
    let c = rusqlite::Connection::open(db)?;
    c.execute("VACUUM INTO ?1", [copy.to_string_lossy()])?;
    drop(c);
    let c = rusqlite::Connection::open(&copy)?;
    let size = |c: &rusqlite::Connection| -> anyhow::Result<u64> {
        c.execute_batch("VACUUM")?;
        let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(u64::try_from(pages * page)?)
    };
    let all = size(&c)?;
    c.execute("DELETE FROM idempotency", [])?;
    let without_idem = size(&c)?;
    c.execute("DELETE FROM changes", [])?;
    let without_both = size(&c)?;
    Ok((without_idem - without_both, all - without_idem))
}

struct Tech {
    s: Session,
    cursor: String,
}

fn note(s: &Session, text: &str) -> Op {
    Op::AppendNote {
        note: NoteEntry {
            id: Uuid::now_v7(),
            author: s.username.clone(),
            text: text.into(),
            at: Utc::now(),
        },
    }
}

/// Upload `data` whole in one request; returns its name.
async fn upload(s: &Session, data: &[u8]) -> anyhow::Result<String> {
    let hash = sha256_hex(data);
    let resp = s.put_chunk(&hash, 0, data.len(), data).await;
    anyhow::ensure!(resp.status() == 200, "upload answered {}", resp.status());
    Ok(hash)
}

/// One visit's mutations, each on the version the previous one left (the device
/// knows it from the push answer only after the burst: all are sent on `base`, as a
/// device that was out of coverage sends them; the server merges field by field).
async fn visit(t: &Tech, order: Uuid, base: u64, n: usize) -> anyhow::Result<Vec<Mutation>> {
    let s = &t.s;
    let mut sig = format!("signature {order}").into_bytes();
    sig.resize(3_000, 7);
    let mut photo = format!("photo {order}").into_bytes();
    photo.extend((0..200_000u32).map(|i| (i % 251) as u8));
    let (sig, photo) = (upload(s, &sig).await?, upload(s, &photo).await?);
    let m = |kind, ops| s.mutation(order, kind, base, ops);
    let out = vec![
        m(
            MutationKind::Update,
            vec![Op::Set(SetOp::Status(Status::EnRoute))],
        ),
        m(
            MutationKind::Update,
            vec![Op::Set(SetOp::Status(Status::InProgress))],
        ),
        m(
            MutationKind::Update,
            vec![note(s, "Arrived; customer shows the fault")],
        ),
        m(
            MutationKind::Update,
            (1..=3)
                .map(|i| {
                    Op::Set(SetOp::ChecklistDone {
                        item_id: format!("c{i}"),
                        done: true,
                    })
                })
                .collect(),
        ),
        m(
            MutationKind::Update,
            (0..2)
                .map(|i| {
                    Op::Add(ListItem::PartsUsed(PartUsed {
                        id: Uuid::now_v7(),
                        sku: outpost_server::seed::demo_sku((n * 2 + i) % 20),
                        quantity: Quantity::from_units(1),
                    }))
                })
                .collect(),
        ),
        m(
            MutationKind::Update,
            vec![Op::Add(ListItem::TimeEntries(TimeEntry {
                id: Uuid::now_v7(),
                started_at: Utc::now() - chrono::Duration::minutes(90),
                ended_at: Some(Utc::now()),
                note: String::new(),
            }))],
        ),
        m(
            MutationKind::Update,
            vec![note(s, "Seal replaced, tested for 20 min")],
        ),
        m(
            MutationKind::Complete,
            vec![
                Op::Add(ListItem::Photos(PhotoRef {
                    hash: photo,
                    caption: "after".into(),
                    media_type: "image/jpeg".into(),
                })),
                Op::Set(SetOp::Signature(Some(Signature {
                    hash: sig,
                    signer: "Customer".into(),
                }))),
                Op::Set(SetOp::CompletedAt(Some(Utc::now()))),
            ],
        ),
    ];
    debug_assert_eq!(out.len(), MUTATIONS_PER_VISIT);
    Ok(out)
}

/// Pull from `cursor` to the end; (rows, bytes, new cursor).
async fn delta(s: &Session, cursor: &str) -> anyhow::Result<(usize, usize, String)> {
    let (mut rows, mut bytes, mut cursor) = (0, 0, cursor.to_owned());
    loop {
        let body = s
            .post(paths::PULL)
            .json(&PullRequest {
                cursor: Some(cursor.clone()),
                limit: None,
                max_bytes: None,
                ..PullRequest::default()
            })
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        bytes += body.len();
        let page: PullResponse = serde_json::from_slice(&body)?;
        rows += page.changes.len();
        cursor = page.cursor;
        if !page.has_more {
            return Ok((rows, bytes, cursor));
        }
    }
}

async fn run(techs: usize, days: usize, pulls: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let s = TestServer::start(Kind::Sqlite).await;
    for i in 0..techs {
        let name = format!("field{i}");
        outpost_server::add_user(&s.db, &s.cfg, &name, Role::Technician, PASSWORD).await?;
    }
    let office = s.login("dispatcher").await;
    let mut crew = Vec::new();
    for i in 0..techs {
        let sess = s.login(&format!("field{i}")).await;
        let (_, cursor, _) = sess.pull_all(None, 1000).await;
        crew.push(Tech { s: sess, cursor });
    }
    let first_cursor = crew[0].cursor.clone();
    let base = table_sizes(&s).await?;
    let (mut pushes, mut mutations, mut pull_requests) = (0usize, 0usize, 0usize);
    let mut pull_effect = [(0u64, 0u64); 2];
    for day in 0..days {
        for (n, t) in crew.iter_mut().enumerate() {
            // The office plans the day.
            let creates: Vec<Mutation> = (0..ORDERS)
                .map(|k| {
                    let mut ops = vec![
                        Op::Set(SetOp::Title(format!("Day {day}, visit {k}: pump seal"))),
                        Op::Set(SetOp::Assignee(Some(t.s.username.clone()))),
                    ];
                    ops.extend((1..=3).map(|i| {
                        Op::Add(ListItem::Checklist(ChecklistItem {
                            id: format!("c{i}"),
                            label: format!("Step {i}"),
                            required: false,
                            done: false,
                        }))
                    }));
                    office.mutation(Uuid::now_v7(), MutationKind::Create, 0, ops)
                })
                .collect();
            let ids: Vec<Uuid> = creates.iter().map(|m| m.entity_id).collect();
            let out = office.push(creates).await;
            anyhow::ensure!(
                out.iter().all(|o| matches!(o, PushOutcome::Applied(_))),
                "the office's orders apply: {out:?}"
            );
            pushes += 1;
            mutations += ids.len();
            // The technician's day: bursts of visits, pulls in between.
            let bursts = ORDERS.div_ceil(VISITS_PER_BURST);
            let idle = pulls.saturating_sub(bursts);
            for (b, chunk) in ids.chunks(VISITS_PER_BURST).enumerate() {
                let mut batch = Vec::new();
                for (k, id) in chunk.iter().enumerate() {
                    batch.extend(visit(t, *id, 1, n + k).await?);
                }
                mutations += batch.len();
                let out = t.s.push(batch).await;
                pushes += 1;
                anyhow::ensure!(
                    out.iter().all(|o| matches!(
                        o,
                        PushOutcome::Applied(_) | PushOutcome::AppliedWithConflicts(_)
                    )),
                    "a day's work applies: {out:?}"
                );
                let (_, _, c) = delta(&t.s, &t.cursor).await?;
                t.cursor = c;
                pull_requests += 1;
                // The idle pulls until the next burst, measured on their own.
                let before = table_sizes(&s).await?;
                for _ in 0..idle / bursts + usize::from(b < idle % bursts) {
                    let (rows, _, c) = delta(&t.s, &t.cursor).await?;
                    anyhow::ensure!(rows == 0, "an idle pull brought {rows} rows");
                    t.cursor = c;
                    pull_requests += 1;
                }
                let after = table_sizes(&s).await?;
                for k in 0..2 {
                    pull_effect[k].0 += after[k].0 - before[k].0;
                    pull_effect[k].1 += after[k].1 - before[k].1;
                }
            }
        }
    }
    let end = table_sizes(&s).await?;
    let tech_days = (techs * days) as f64;
    // The first technician's device, away for the whole run.
    let away = s.login_device("field0", Uuid::new_v4()).await;
    let (away_rows, away_bytes, _) = delta(&away, &first_cursor).await?;
    let db_file = s.dir.path().join("server.db");
    let (changes_disk, idem_disk) = disk_bytes(&db_file)?;
    println!(
        "retention bench: {techs} technicians x {days} days, {ORDERS} orders a day each, \
         {pushes} pushes ({mutations} mutations), {pull_requests} pulls, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let names = ["change log (changes)", "idempotency records"];
    let disk = [changes_disk, idem_disk];
    println!("| table | rows / technician-day | bytes of columns / technician-day | bytes on disk with indexes / technician-day | written by the idle pulls |");
    println!("|---|---|---|---|---|");
    for k in 0..2 {
        let rows = (end[k].0 - base[k].0) as f64 / tech_days;
        let bytes = (end[k].1 - base[k].1) as f64 / tech_days;
        println!(
            "| {} | {rows:.1} | {:.1} kB | {:.1} kB | {} rows |",
            names[k],
            bytes / 1e3,
            disk[k] as f64 / tech_days / 1e3,
            pull_effect[k].0
        );
    }
    println!(
        "a device away {days} days (field0) pulls {away_rows} rows, {:.1} kB uncompressed: \
         {:.1} rows and {:.1} kB per day away",
        away_bytes as f64 / 1e3,
        away_rows as f64 / days as f64,
        away_bytes as f64 / 1e3 / days as f64
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo test --benches` runs this as a smoke test: a small run.
    let (techs, days, pulls) = if std::env::args().any(|a| a == "--bench") {
        (
            env("OUTPOST_BENCH_TECHS", 10),
            env("OUTPOST_BENCH_DAYS", 5),
            env("OUTPOST_BENCH_PULLS", 960),
        )
    } else {
        (2, 1, 10)
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(techs, days, pulls))
}
