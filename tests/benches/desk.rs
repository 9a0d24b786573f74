//! The dispatcher's desk with 500 open items (issue 20): how long its first page
//! takes to build in `outpost-core` (`Outpost::desk`, 50 items side by side with
//! their stock effect) on a real SQLCipher store. A benchmark, not a timed test: the
//! figures are printed (p50, p95, max) for docs/benchmarks.md.
//!
//! The records are made here, as a dispatcher's device receives them in pull pages (400
//! failed syncs and 100 held completions after a cancellation, each on its own order,
//! across five technicians), and applied through `Store::apply_pull_page`: the server
//! is not needed to measure the desk. With `BENCH_DESK_DIR` set the data directory is
//! kept there, signed in as a dispatcher (to an address nobody answers), for
//! `ui/e2e/bench.mjs` to time the window's first render of the desk; its key is
//! written to `<dir>/bench.key`.

#![allow(clippy::unwrap_used)]
// Benchmark code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use outpost_core::desk::DeskFilter;
use outpost_core::{KeyEnv, MemoryCredentialStore, OpenOptions, Outpost, SystemClock};
use outpost_protocol::mutation::{EntityKind, ListItem};
use outpost_protocol::wire::{
    Change, ChangeBody, ChangeEntity, ConflictField, ConflictKind, ConflictRecord, ErrorCode,
    FailedSyncRecord, PullResponse, RecordStatus,
};
use outpost_protocol::{
    InventoryItem, Mutation, MutationKind, NoteEntry, Op, PartUsed, Quantity, Role, SetOp,
    Signature, Status, StockLevel, WorkOrder, FORMAT_VERSION,
};
use uuid::Uuid;
use zeroize::Zeroizing;

const ITEMS: usize = 500;
const RUNS: usize = 30;

fn completion(order: &WorkOrder, device: Uuid, i: usize) -> Mutation {
    Mutation {
        mutation_id: Uuid::now_v7(),
        device_id: device,
        entity: EntityKind::WorkOrder,
        entity_id: order.id,
        kind: MutationKind::Complete,
        base_version: 1,
        format: FORMAT_VERSION,
        device_time: Utc::now(),
        ops: vec![
            Op::Add(ListItem::PartsUsed(PartUsed {
                id: Uuid::now_v7(),
                sku: format!("SKU-{:05}", i % 50),
                quantity: Quantity::from_units(2),
            })),
            Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::now_v7(),
                    author: order.assignee.clone().unwrap_or_default(),
                    text: format!("Replaced the seal on unit {i}"),
                    at: Utc::now(),
                },
            },
            Op::Set(SetOp::Signature(Some(Signature {
                hash: format!("{:064x}", i + 1),
                signer: "Site manager".into(),
            }))),
            Op::Set(SetOp::CompletedAt(Some(Utc::now()))),
        ],
        base_epoch: None,
        seen: Vec::new(),
        reason: None,
    }
}

fn change(seq: u64, entity: ChangeEntity, id: String, change: ChangeBody) -> Change {
    Change {
        seq,
        entity,
        id,
        version: 1,
        mutation_ids: Vec::new(),
        change,
    }
}

fn main() {
    let keep = std::env::var_os("BENCH_DESK_DIR").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.clone().unwrap_or_else(|| tmp.path().join("desk"));
    let _ = std::fs::remove_dir_all(&dir);
    let key = outpost_tests::random_key();
    let opts = OpenOptions {
        data_dir: dir.clone(),
        credentials: Arc::new(MemoryCredentialStore::default()),
        env: KeyEnv {
            db_key: Some(Zeroizing::new(key.clone())),
            passphrase: None,
        },
        clock: Arc::new(SystemClock),
    };
    let mut app = Outpost::init(opts, None).unwrap();
    app.set_username("dispatcher").unwrap();
    let mut store = app.connect().unwrap();
    let device = Uuid::new_v4();
    let mut changes = Vec::new();
    let mut seq = 0u64;
    let items: Vec<InventoryItem> = (0..50)
        .map(|i| InventoryItem {
            sku: format!("SKU-{i:05}"),
            name: format!("Seal kit {i}"),
            description: String::new(),
            unit: "each".into(),
            price_cents: 900,
            stock: vec![
                StockLevel {
                    location: "main".into(),
                    quantity: Quantity::from_units(40),
                },
                StockLevel {
                    location: format!("van-tech{}", i % 5 + 1),
                    quantity: Quantity::from_units(5),
                },
            ],
        })
        .collect();
    for item in items {
        seq += 1;
        changes.push(change(
            seq,
            ChangeEntity::InventoryItem,
            item.sku.clone(),
            ChangeBody::InventoryItem(item),
        ));
    }
    for i in 0..ITEMS {
        let tech = format!("tech{}", i % 5 + 1);
        let mut order = WorkOrder::blank(Uuid::now_v7());
        order.title = format!("Service visit {i}");
        order.number = Some(1000 + i as u64);
        order.assignee = Some(tech.clone());
        order.version = 1;
        let held = i % 5 == 0;
        if held {
            order.status = Status::Cancelled;
        }
        let m = completion(&order, device, i);
        seq += 1;
        changes.push(change(
            seq,
            ChangeEntity::WorkOrder,
            order.id.to_string(),
            ChangeBody::WorkOrder(order.clone()),
        ));
        let rid = Uuid::now_v7();
        seq += 1;
        changes.push(if held {
            change(
                seq,
                ChangeEntity::Conflict,
                rid.to_string(),
                ChangeBody::Conflict(ConflictRecord {
                    id: rid,
                    version: 1,
                    status: RecordStatus::Open,
                    kind: ConflictKind::CompletionAfterCancel,
                    order_id: order.id,
                    order_number: order.number,
                    assignee: Some(tech.clone()),
                    username: tech,
                    device_id: device,
                    created_at: Utc::now(),
                    device_time: Some(Utc::now()),
                    fields: m
                        .ops
                        .iter()
                        .filter_map(|op| match op {
                            Op::Set(s) => Some(ConflictField {
                                field: s.field_key(),
                                device: s.clone(),
                                server: outpost_protocol::merge::current_as_set(&order, s),
                                base: None,
                                server_set: None,
                            }),
                            _ => None,
                        })
                        .collect(),
                    held_by: None,
                    mutation: m,
                    resolution: None,
                }),
            )
        } else {
            change(
                seq,
                ChangeEntity::FailedSync,
                rid.to_string(),
                ChangeBody::FailedSync(FailedSyncRecord {
                    id: rid,
                    version: 1,
                    status: RecordStatus::Open,
                    order_id: order.id,
                    assignee: Some(tech.clone()),
                    username: tech,
                    device_id: device,
                    received_at: Utc::now(),
                    device_time: Some(Utc::now()),
                    code: ErrorCode::ValidationFailed,
                    message: "checklist: the step \"price\" is required".into(),
                    field_errors: Vec::new(),
                    mutation: m,
                    resolution: None,
                }),
            )
        });
    }
    store
        .apply_pull_page(
            &PullResponse {
                changes,
                cursor: "bench".into(),
                has_more: false,
                priming: None,
                server_time: Utc::now(),
                epoch: None,
            },
            Utc::now(),
        )
        .unwrap();

    let mut times = Vec::new();
    let mut shown = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        let page = app.desk(&DeskFilter::default()).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(page.total as usize, ITEMS, "every item is open");
        shown = page.items.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "desk, {ITEMS} open items, first page of {shown}: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms ({RUNS} runs)",
        times[RUNS / 2],
        times[RUNS * 95 / 100],
        times[RUNS - 1]
    );

    if let Some(dir) = keep {
        store
            .set_session(&outpost_store::Session {
                server_url: "http://127.0.0.1:9".into(),
                username: "dispatcher".into(),
                role: Role::Dispatcher,
                device_id: device,
                access_token: "bench".into(),
                access_expires_at: Utc::now() + chrono::Duration::days(1),
                refresh_token: "bench".into(),
                refresh_expires_at: Utc::now() + chrono::Duration::days(30),
                needs_sign_in: None,
            })
            .unwrap();
        std::fs::write(dir.join("bench.key"), key).unwrap();
        println!("kept for the window's benchmark: {}", dir.display());
    }
}
