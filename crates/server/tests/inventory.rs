//! The inventory's way in from a company's business system and back (issue 23):
//! `outpost-server inventory import FILE` run as a real process against the test
//! server's database (SQLite and PostgreSQL), devices pulling over HTTP from the
//! server running on it, and parts pushed by a technician at times the test sets.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use common::process::{run, run_ok};
use common::*;
use outpost_protocol::mutation::ListItem;
use outpost_protocol::wire::*;
use outpost_protocol::*;
use uuid::Uuid;

both!(
    an_import_changes_exactly_the_differing_rows_a_device_pulls_exactly_those_and_a_reimport_changes_nothing,
    the_exports_quantity_is_the_truth_as_of_its_time_and_parts_used_after_it_are_subtracted,
    a_full_export_with_discontinue_missing_tombstones_the_skus_it_lacks_and_nothing_else,
    the_parts_used_export_lists_the_parts_pushed_in_its_window_with_order_technician_sku_quantity_location_and_time,
);

/// The items the server has now, in SKU order.
async fn items(s: &TestServer) -> Vec<InventoryItem> {
    s.db.read(|sql| {
        let rows = sql.query("SELECT body FROM inventory ORDER BY sku", &[])?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.text(0)?)?))
            .collect()
    })
    .await
    .expect("items")
}

async fn item(s: &TestServer, sku: &str) -> InventoryItem {
    items(s)
        .await
        .into_iter()
        .find(|i| i.sku == sku)
        .unwrap_or_else(|| panic!("{sku} exists"))
}

fn qty_at(item: &InventoryItem, location: &str) -> Quantity {
    item.stock
        .iter()
        .find(|l| l.location == location)
        .map(|l| l.quantity)
        .unwrap_or_else(|| panic!("{} has stock at {location}", item.sku))
}

fn price(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An ERP's CSV export of `items`: one row per SKU and location.
fn csv_of(items: &[InventoryItem]) -> String {
    let mut out = String::from("sku,name,unit,price,location,quantity\n");
    for i in items {
        for l in &i.stock {
            out.push_str(&format!(
                "{},\"{}\",{},{},{},{}\n",
                i.sku,
                i.name,
                i.unit,
                price(i.price_cents),
                l.location,
                l.quantity
            ));
        }
    }
    out
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn write_file(s: &TestServer, name: &str, text: &str) -> String {
    let path = s.dir.path().join(name);
    std::fs::write(&path, text).expect("write the export");
    path.display().to_string()
}

/// `outpost-server inventory import FILE --db URL EXTRA…`; its stdout.
fn import(s: &TestServer, file: &str, extra: &[&str]) -> String {
    let mut args = vec!["inventory", "import", file, "--db", &s.url];
    args.extend_from_slice(extra);
    run_ok(&args, "")
}

/// The inventory rows a pull from `cursor` carries, by SKU (and the new cursor).
async fn pulled_items(d: &Session, cursor: &str) -> (Vec<Change>, String) {
    let (changes, cursor, _) = d.pull_all(Some(cursor.to_owned()), 1000).await;
    let items = changes
        .into_iter()
        .filter(|c| c.entity == ChangeEntity::InventoryItem)
        .collect();
    (items, cursor)
}

async fn an_import_changes_exactly_the_differing_rows_a_device_pulls_exactly_those_and_a_reimport_changes_nothing(
    kind: Kind,
) {
    let s = TestServer::start(kind).await;
    let tech = s.login("tech1").await;
    let (_, cursor, _) = tech.pull_all(None, 1000).await;

    let before = items(&s).await;
    let mut export = before.clone();
    assert_eq!(export.len(), 20, "the test server's 20 items");
    // Two rows differ (a quantity, a price), one is new; the other 17 are as they are.
    export[3].stock[0].quantity = Quantity::from_units(3);
    export[7].price_cents += 250;
    export.push(InventoryItem {
        sku: "ERP-NEW-1".into(),
        name: "Pressure gauge, 0-10 bar".into(),
        description: String::new(),
        unit: "each".into(),
        price_cents: 4_990,
        stock: vec![StockLevel {
            location: "main".into(),
            quantity: Quantity::from_units(12),
        }],
    });
    let file = write_file(&s, "erp.csv", &csv_of(&export));
    let taken_at = rfc3339(Utc::now());
    let seq_before = s.last_seq().await;
    // Chunks of 4 items: six write transactions for 21 items.
    let out = import(&s, &file, &["--taken-at", &taken_at, "--chunk-size", "4"]);
    assert!(
        out.contains("1 added, 2 changed, 18 unchanged, 0 discontinued"),
        "{out}"
    );
    assert!(out.contains("in 6 chunks"), "{out}");
    assert_eq!(
        s.last_seq().await,
        seq_before + 3,
        "one change-log row per differing row, none for the others"
    );

    let (pulled, cursor) = pulled_items(&tech, &cursor).await;
    let skus: BTreeSet<&str> = pulled.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(
        skus,
        BTreeSet::from(["SKU-00003", "SKU-00007", "ERP-NEW-1"]),
        "the device's next pull carries exactly the changed rows"
    );
    for c in &pulled {
        let ChangeBody::InventoryItem(row) = &c.change else {
            panic!("an inventory row, got {:?}", c.change);
        };
        let want = export
            .iter()
            .find(|i| i.sku == row.sku)
            .expect("an exported SKU");
        assert_eq!(row.price_cents, want.price_cents, "{}", row.sku);
        assert_eq!(row.stock, want.stock, "{}", row.sku);
        assert_eq!(row.name, want.name, "{}", row.sku);
    }
    // A description the export does not carry is kept.
    assert!(!before[3].description.is_empty());
    assert_eq!(
        item(&s, "SKU-00003").await.description,
        before[3].description
    );

    // The same file again: nothing changes, nothing is logged, a pull carries nothing.
    let seq = s.last_seq().await;
    let again = import(&s, &file, &["--taken-at", &taken_at, "--chunk-size", "4"]);
    assert!(
        again.contains("0 added, 0 changed, 21 unchanged, 0 discontinued"),
        "{again}"
    );
    assert_eq!(
        s.last_seq().await,
        seq,
        "a re-import writes no change-log row"
    );
    let (pulled, _) = pulled_items(&tech, &cursor).await;
    assert!(pulled.is_empty(), "nothing to pull: {pulled:?}");

    // The same export as JSON changes nothing either.
    let json = serde_json::json!({
        "taken_at": taken_at,
        "items": export.iter().map(|i| serde_json::json!({
            "sku": i.sku,
            "name": i.name,
            "unit": i.unit,
            "price": price(i.price_cents),
            "stock": i.stock.iter().map(|l| serde_json::json!({
                "location": l.location,
                "quantity": l.quantity.to_string(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    let json_file = write_file(&s, "erp.json", &json.to_string());
    let out = import(&s, &json_file, &[]);
    assert!(out.contains("0 added, 0 changed, 21 unchanged"), "{out}");
    assert_eq!(s.last_seq().await, seq);

    // A file a person got wrong is refused with the line, and writes nothing.
    let bad = write_file(
        &s,
        "bad.csv",
        "sku,name,unit,price,location,quantity\nSKU-00001,Filter 1,each,1.07,main,lots\n",
    );
    let out = run(
        &[
            "inventory",
            "import",
            &bad,
            "--taken-at",
            &taken_at,
            "--db",
            &s.url,
        ],
        "",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("quantity"), "{err}");
    assert_eq!(s.last_seq().await, seq);
}

/// The dispatcher makes an order for tech1; returns it.
async fn order_for_tech1(s: &TestServer) -> WorkOrder {
    s.login("dispatcher")
        .await
        .create_order(Some("tech1"))
        .await
}

/// tech1 uses `parts` (SKU, units) on `order`; returns the order after.
async fn use_parts(tech: &Session, order: &WorkOrder, parts: &[(&str, i64)]) -> WorkOrder {
    let ops = parts
        .iter()
        .map(|(sku, units)| {
            Op::Add(ListItem::PartsUsed(PartUsed {
                id: Uuid::now_v7(),
                sku: (*sku).into(),
                quantity: Quantity::from_units(*units),
            }))
        })
        .collect();
    match tech
        .push1(tech.mutation(order.id, MutationKind::Update, order.version, ops))
        .await
    {
        PushOutcome::Applied(a) => a.order.expect("the order back"),
        other => panic!("parts applied, got {other:?}"),
    }
}

/// An ERP export as JSON: `(SKU, [(location, units)])`, the other fields from `base`.
fn export_json(
    base: &[InventoryItem],
    taken_at: DateTime<Utc>,
    rows: &[(&str, &[(&str, i64)])],
) -> String {
    let items: Vec<_> = rows
        .iter()
        .map(|(sku, levels)| {
            let b = base.iter().find(|i| i.sku == *sku).expect("known SKU");
            serde_json::json!({
                "sku": sku,
                "name": b.name,
                "unit": b.unit,
                "price": price(b.price_cents),
                "stock": levels.iter().map(|(l, q)| serde_json::json!({"location": l, "quantity": q})).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "taken_at": rfc3339(taken_at), "items": items }).to_string()
}

async fn the_exports_quantity_is_the_truth_as_of_its_time_and_parts_used_after_it_are_subtracted(
    kind: Kind,
) {
    let clock = MovableClock::new();
    let s = TestServer::start_with(
        kind,
        outpost_server::ServerConfig {
            clock: clock.clone(),
            ..test_config()
        },
    )
    .await;
    let base = items(&s).await;
    // SKU-00001: only the warehouse (21). SKU-00000: warehouse 20 and tech1's van 5.
    let tech = s.login("tech1").await;
    let order = order_for_tech1(&s).await;
    use outpost_protocol::Clock as _;
    let before_any = clock.now() - chrono::Duration::hours(1);

    // Before the export: 2 from the warehouse, 1 from the van.
    let order = use_parts(&tech, &order, &[("SKU-00001", 2), ("SKU-00000", 1)]).await;
    clock.advance(Duration::from_secs(120));
    let taken_at = clock.now();
    clock.advance(Duration::from_secs(120));
    // After the export: 3 from the warehouse, 1 from the van.
    let order = use_parts(&tech, &order, &[("SKU-00001", 3), ("SKU-00000", 1)]).await;
    assert_eq!(
        qty_at(&item(&s, "SKU-00001").await, "main"),
        Quantity::from_units(16)
    );
    assert_eq!(
        qty_at(&item(&s, "SKU-00000").await, "van-tech1"),
        Quantity::from_units(3)
    );

    // An export taken before any part was used: every part pushed since is subtracted.
    let early = write_file(
        &s,
        "early.json",
        &export_json(
            &base,
            before_any,
            &[
                ("SKU-00001", &[("main", 50)]),
                ("SKU-00000", &[("main", 30), ("van-tech1", 10)]),
            ],
        ),
    );
    let out = import(&s, &early, &[]);
    assert!(out.contains("2 changed"), "{out}");
    assert_eq!(
        qty_at(&item(&s, "SKU-00001").await, "main"),
        Quantity::from_units(50 - 2 - 3)
    );
    assert_eq!(
        qty_at(&item(&s, "SKU-00000").await, "van-tech1"),
        Quantity::from_units(10 - 1 - 1)
    );
    assert_eq!(
        qty_at(&item(&s, "SKU-00000").await, "main"),
        Quantity::from_units(30)
    );

    // The export taken between the pushes: it counted the first, not the second.
    let mid = write_file(
        &s,
        "mid.json",
        &export_json(
            &base,
            taken_at,
            &[
                ("SKU-00001", &[("main", 40)]),
                ("SKU-00000", &[("main", 30), ("van-tech1", 8)]),
            ],
        ),
    );
    import(&s, &mid, &[]);
    assert_eq!(
        qty_at(&item(&s, "SKU-00001").await, "main"),
        Quantity::from_units(40 - 3)
    );
    assert_eq!(
        qty_at(&item(&s, "SKU-00000").await, "van-tech1"),
        Quantity::from_units(8 - 1)
    );

    // More parts after the import, then the same export again: still exact, no change.
    clock.advance(Duration::from_secs(120));
    use_parts(&tech, &order, &[("SKU-00001", 1)]).await;
    assert_eq!(
        qty_at(&item(&s, "SKU-00001").await, "main"),
        Quantity::from_units(36)
    );
    let seq = s.last_seq().await;
    let out = import(&s, &mid, &[]);
    assert!(out.contains("0 changed"), "{out}");
    assert_eq!(s.last_seq().await, seq, "the re-import changes nothing");
    assert_eq!(
        qty_at(&item(&s, "SKU-00001").await, "main"),
        Quantity::from_units(40 - 3 - 1)
    );

    // An export older than one already imported is refused: it would undo what the
    // newer one taught.
    let out = run(&["inventory", "import", &early, "--db", &s.url], "");
    assert!(!out.status.success(), "an older export is refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("older"), "{err}");
    assert_eq!(s.last_seq().await, seq);
}

async fn a_full_export_with_discontinue_missing_tombstones_the_skus_it_lacks_and_nothing_else(
    kind: Kind,
) {
    let s = TestServer::start(kind).await;
    let tech = s.login("tech2").await;
    let (_, cursor, _) = tech.pull_all(None, 1000).await;
    let mut export = items(&s).await;
    export.retain(|i| i.sku != "SKU-00005" && i.sku != "SKU-00011");
    let file = write_file(&s, "full.csv", &csv_of(&export));
    let taken_at = rfc3339(Utc::now());
    // Without the flag nothing is discontinued.
    let out = import(&s, &file, &["--taken-at", &taken_at]);
    assert!(
        out.contains("0 changed, 18 unchanged, 0 discontinued"),
        "{out}"
    );
    let out = import(
        &s,
        &file,
        &["--taken-at", &taken_at, "--discontinue-missing"],
    );
    assert!(out.contains("18 unchanged, 2 discontinued"), "{out}");
    let (pulled, _) = pulled_items(&tech, &cursor).await;
    let gone: BTreeSet<&str> = pulled
        .iter()
        .filter(|c| c.change == ChangeBody::Tombstone)
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(gone, BTreeSet::from(["SKU-00005", "SKU-00011"]));
    assert_eq!(pulled.len(), 2, "only the tombstones: {pulled:?}");
    assert_eq!(items(&s).await.len(), 18);
}

/// `outpost-server inventory export ARGS… --db URL`; its stdout.
fn export_parts(s: &TestServer, args: &[&str]) -> String {
    let mut all = vec!["inventory", "export"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--db", &s.url]);
    run_ok(&all, "")
}

async fn the_parts_used_export_lists_the_parts_pushed_in_its_window_with_order_technician_sku_quantity_location_and_time(
    kind: Kind,
) {
    let clock = MovableClock::new();
    let s = TestServer::start_with(
        kind,
        outpost_server::ServerConfig {
            clock: clock.clone(),
            ..test_config()
        },
    )
    .await;
    use outpost_protocol::Clock as _;
    let tech = s.login("tech1").await;
    let order = order_for_tech1(&s).await;
    let first_at = clock.now();
    let order = use_parts(&tech, &order, &[("SKU-00001", 2)]).await;
    clock.advance(Duration::from_secs(120));
    let since = clock.now();
    clock.advance(Duration::from_secs(120));
    let second_at = clock.now();
    let order = use_parts(&tech, &order, &[("SKU-00002", 3), ("SKU-00000", 1)]).await;

    // CSV (the default): the parts recorded in [since, until), oldest first. (Without
    // --until the window ends five minutes before the real clock, before this test's
    // clock, which the test moved ahead.)
    let until = rfc3339(second_at + chrono::Duration::seconds(1));
    let out = export_parts(&s, &["--since", &rfc3339(since), "--until", &until]);
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("a header row")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "recorded_at",
            "used_at",
            "order_id",
            "order_number",
            "technician",
            "sku",
            "quantity",
            "location"
        ]
    );
    let mut rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("a row").iter().map(str::to_owned).collect())
        .collect();
    rows.sort_by(|a, b| a[5].cmp(&b[5]));
    let number = order.number.expect("a number").to_string();
    let at = rfc3339(second_at);
    let want = |sku: &str, qty: &str, location: &str| {
        vec![
            at.clone(),
            String::new(),
            order.id.to_string(),
            number.clone(),
            "tech1".to_owned(),
            sku.to_owned(),
            qty.to_owned(),
            location.to_owned(),
        ]
    };
    // used_at is the device's clock: checked apart.
    for r in &mut rows {
        assert!(!r[1].is_empty(), "the device's time of use is given");
        r[1].clear();
    }
    assert_eq!(
        rows,
        vec![
            want("SKU-00000", "1", "van-tech1"),
            want("SKU-00002", "3", "main"),
        ],
        "the parts pushed after --since, where they came from"
    );

    // JSON, and a window that ends before the second push: only the first.
    let out = export_parts(
        &s,
        &[
            "--since",
            &rfc3339(first_at - chrono::Duration::seconds(1)),
            "--until",
            &rfc3339(since),
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let parts = v["parts"].as_array().expect("parts");
    assert_eq!(parts.len(), 1, "{v}");
    assert_eq!(parts[0]["sku"], "SKU-00001");
    assert_eq!(parts[0]["quantity"], "2");
    assert_eq!(parts[0]["location"], "main");
    assert_eq!(parts[0]["technician"], "tech1");
    assert_eq!(parts[0]["order_id"], order.id.to_string());
    assert_eq!(parts[0]["recorded_at"], rfc3339(first_at));
    assert_eq!(v["since"], rfc3339(first_at - chrono::Duration::seconds(1)));
    assert_eq!(v["until"], rfc3339(since));

    // An import's corrections are not parts used.
    let base = items(&s).await;
    let file = write_file(
        &s,
        "erp.json",
        &export_json(&base, since, &[("SKU-00001", &[("main", 99)])]),
    );
    import(&s, &file, &[]);
    let out = export_parts(
        &s,
        &[
            "--since",
            &rfc3339(first_at),
            "--until",
            &until,
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["parts"].as_array().expect("parts").len(), 3, "{v}");
}
