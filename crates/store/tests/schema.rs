//! Golden schema tests: the schema reached by migrating from empty, and from every
//! earlier version with data in it, is the committed snapshot
//! (`migrations/client/schema.snapshot.sql`). Regenerate the snapshot after adding a
//! migration with `UPDATE_SNAPSHOTS=1 cargo test -p outpost-store --test schema`.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;

use outpost_protocol::mutation::EntityKind;
use outpost_protocol::{Mutation, MutationKind, Op, SetOp, FORMAT_VERSION};
use outpost_store::{DbKey, InventoryQuery, OpenError, StockScope, Store, MIGRATIONS};
use uuid::Uuid;

fn snapshot_path() -> PathBuf {
    PathBuf::from(
        &*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../migrations/client/schema.snapshot.sql")
}

fn key() -> DbKey {
    DbKey::from_bytes([7; 32])
}

fn check_against_snapshot(schema: &str) {
    let path = snapshot_path();
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, schema).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).expect(
        "the schema snapshot exists (make it with UPDATE_SNAPSHOTS=1 cargo test -p outpost-store --test schema)",
    );
    assert_eq!(
        schema, expected,
        "the migrated schema differs from the committed snapshot; if the change is intended, \
         add a migration and regenerate the snapshot"
    );
}

/// Outbox rows as `(seq, mutation, state)`, the same on every call.
fn outbox_fixture() -> Vec<(i64, Mutation, &'static str)> {
    let order = Uuid::parse_str("018f0000-0000-7000-8000-000000000001").expect("uuid");
    [(3, "pending"), (5, "sent"), (9, "failed"), (10, "pending")]
        .into_iter()
        .map(|(seq, state)| {
            let mutation = Mutation {
                mutation_id: Uuid::from_u128(
                    0x018f_0000_0000_7000_8000_0000_0000_0100 + seq as u128,
                ),
                device_id: Uuid::parse_str("8c1f2b8e-4a57-4a2a-9d43-5b1c5e2f7a10").expect("uuid"),
                entity: EntityKind::WorkOrder,
                entity_id: order,
                kind: MutationKind::Update,
                base_version: 1,
                format: FORMAT_VERSION,
                device_time: "2026-01-01T00:00:00Z".parse().expect("time"),
                ops: vec![Op::Set(SetOp::Title(format!("edit {seq}")))],
                base_epoch: None,
                reason: None,
                seen: Vec::new(),
            };
            (seq, mutation, state)
        })
        .collect()
}

#[test]
fn migrating_from_empty_gives_the_snapshot_schema() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = Store::create(tmp.path(), &key()).expect("create");
    assert_eq!(
        store.schema_version().expect("version"),
        MIGRATIONS.len() as i64
    );
    check_against_snapshot(&store.schema_sql().expect("schema"));
}

#[test]
fn migrating_from_every_earlier_version_keeps_data_and_gives_the_snapshot_schema() {
    for version in 1..MIGRATIONS.len() {
        let tmp = tempfile::tempdir().expect("temp dir");
        {
            let conn = Store::create_at_version_for_tests(tmp.path(), &key(), version)
                .expect("older schema");
            // A fixture row in every table that version 1 already had.
            conn.execute_batch(
                "INSERT INTO device VALUES (1, '8c1f2b8e-4a57-4a2a-9d43-5b1c5e2f7a10', '2026-01-01T00:00:00Z');
                 INSERT INTO kv VALUES ('username', 'tech1');
                 INSERT INTO work_orders (id, title, status, priority, body, updated_at)
                 VALUES ('018f0000-0000-7000-8000-000000000001', 'Old order', 'scheduled', 'normal',
                         '{\"id\":\"018f0000-0000-7000-8000-000000000001\",\"title\":\"Old order\",\"priority\":\"normal\",\"status\":\"scheduled\"}',
                         '2026-01-01T00:00:00Z');",
            )
            .expect("fixture");
            if version >= 2 {
                // An inventory item with stock in the warehouse and a van (schema 8
                // keeps the levels as rows, filled from the body by its hook).
                conn.execute_batch(
                    "INSERT INTO inventory (sku, name, unit, price_cents, total_stock_milli, body)
                     VALUES ('SKU-1', 'Seal kit', 'each', 100, 7500,
                             '{\"sku\":\"SKU-1\",\"name\":\"Seal kit\",\"unit\":\"each\",\"price_cents\":100,\"stock\":[{\"location\":\"main\",\"quantity\":5},{\"location\":\"van-tech1\",\"quantity\":2.5}]}');",
                )
                .expect("inventory fixture");
            }
            if version >= 8 {
                // Since schema 8 the levels are rows too, written with the item.
                conn.execute_batch(
                    "INSERT INTO inventory_stock (location, sku, van, quantity_milli)
                     VALUES ('main', 'SKU-1', 0, 5000), ('van-tech1', 'SKU-1', 1, 2500);",
                )
                .expect("stock fixture");
            }
            // Outbox rows, pending and sealed, with gaps in `seq` (acknowledged rows
            // leave them).
            for (seq, mutation, state) in outbox_fixture() {
                conn.execute(
                    "INSERT INTO outbox (seq, mutation_id, device_id, entity, entity_id, kind,
                                         base_version, body, created_at, attempts, state)
                     VALUES (?1, ?2, ?3, 'work_order', ?4, 'update', 1, ?5,
                             '2026-01-01T00:00:00Z', ?6, ?7)",
                    rusqlite::params![
                        seq,
                        mutation.mutation_id.to_string(),
                        mutation.device_id.to_string(),
                        mutation.entity_id.to_string(),
                        String::from_utf8(mutation.to_body().expect("body")).expect("utf-8"),
                        i64::from(state != "pending"),
                        state,
                    ],
                )
                .expect("outbox fixture");
            }
        }
        let mut store = Store::open(tmp.path(), &key()).expect("open migrates");
        let outbox = store.outbox().expect("outbox");
        let expected = outbox_fixture();
        assert_eq!(
            outbox.len(),
            expected.len(),
            "outbox rows from schema {version} survive"
        );
        for (row, (seq, mutation, state)) in outbox.iter().zip(&expected) {
            assert_eq!(row.seq, *seq);
            assert_eq!(row.mutation, *mutation);
            assert_eq!(
                serde_json::to_value(row.state).expect("state"),
                serde_json::json!(state)
            );
        }
        assert!(
            store.check().expect("check").sound,
            "indexes agree with rows"
        );
        assert_eq!(
            store.schema_version().expect("version"),
            MIGRATIONS.len() as i64
        );
        check_against_snapshot(&store.schema_sql().expect("schema"));
        let orders = store.orders().expect("orders");
        assert_eq!(orders.len(), 1, "data from schema {version} survives");
        assert_eq!(orders[0].order.title, "Old order");
        assert_eq!(
            store.get_setting("username").expect("kv").as_deref(),
            Some("tech1")
        );
        if version >= 2 {
            let van = store
                .inventory_page(&InventoryQuery {
                    text: String::new(),
                    scope: StockScope::At("van-tech1".into()),
                    offset: 0,
                    limit: 10,
                })
                .expect("van page");
            let rows: Vec<(&str, Option<i64>)> = van
                .rows
                .iter()
                .map(|r| (r.item.sku.as_str(), r.here.map(|q| q.milli())))
                .collect();
            assert_eq!(
                rows,
                [("SKU-1", Some(2_500))],
                "the van's stock from schema {version}"
            );
        }
        let device = store.device_id(chrono::Utc::now()).expect("device");
        assert_eq!(device.to_string(), "8c1f2b8e-4a57-4a2a-9d43-5b1c5e2f7a10");
    }
}

#[test]
fn a_database_newer_than_the_program_is_refused() {
    let tmp = tempfile::tempdir().expect("temp dir");
    {
        let store = Store::create(tmp.path(), &key()).expect("create");
        drop(store);
        let conn =
            Store::create_at_version_for_tests(tmp.path(), &key(), MIGRATIONS.len()).expect("open");
        conn.execute_batch("PRAGMA user_version = 1000")
            .expect("bump");
    }
    match Store::open(tmp.path(), &key()) {
        Err(OpenError::NewerSchema { found, supported }) => {
            assert_eq!(found, 1000);
            assert_eq!(supported, MIGRATIONS.len());
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[test]
fn the_store_runs_with_wal_and_synchronous_full() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let store = Store::create(tmp.path(), &key()).expect("create");
    let report = store.check().expect("check");
    assert_eq!(report.journal_mode, "wal");
    assert_eq!(report.synchronous, "FULL");
    assert!(report.encrypted && report.sound, "{report:?}");
    assert_eq!(store.pragma_text("foreign_keys").expect("pragma"), "1");
    assert_eq!(
        store.pragma_text("temp_store").expect("pragma"),
        "2",
        "temp data stays in memory"
    );
    assert_eq!(
        store.pragma_text("cache_size").expect("pragma"),
        format!("-{}", outpost_store::PAGE_CACHE_KIB)
    );
}
