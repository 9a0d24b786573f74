//! The dispatcher's commands in the CLI and the fleet's sync health (issue 21 items 1
//! and 2), against a real `outpost-server` on loopback: `outpost fleet`, `outpost
//! orders assign|cancel|reopen`, and `outpost conflicts list` / `outpost failed list`
//! over the whole fleet, one item per order. A technician gets "dispatchers only"
//! (exit 3).
//!
//! A laptop "last seen two days ago" is a real sync against the server started with its
//! clock two days behind (`OUTPOST_TEST_CLOCK_OFFSET_SECS`, test builds only), then the
//! server restarted on the real time.

// Test code: reading the wall clock is fine here (how long ago a device was seen).
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)]

use outpost_core::OrderEdit;
use outpost_tests::cli::CliDevice;
use outpost_tests::{bin, open_order, small_fleet, Device, Server};
use serde_json::Value;

const TWO_DAYS_AGO: &str = "-172800";

struct Fleet {
    _tmp: tempfile::TempDir,
    _server: Server,
    url: String,
    tech1: Device,
    tech1_laptop: Device,
    dispatcher: CliDevice,
    /// tech1's order with a failed sync (a technician may not cancel).
    failed_order: String,
    /// tech1's order with two conflicts (one from each of tech1's devices).
    conflict_order: String,
}

fn retitle(dev: &mut Device, id: &str, title: &str) {
    dev.app
        .edit_order(
            id,
            OrderEdit {
                title: Some(title.into()),
                ..OrderEdit::default()
            },
        )
        .unwrap();
}

/// tech2 synced two days ago and not since; tech1 has a failed sync on one order and
/// two conflicts (from two devices) on another; the dispatcher is on the CLI.
async fn fleet() -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let db = small_fleet(tmp.path());
    let url_of = |db: &std::path::Path| format!("sqlite:{}", db.display());
    let mut server = Server::start_with(
        &url_of(&db),
        &[],
        &[("OUTPOST_TEST_CLOCK_OFFSET_SECS", TWO_DAYS_AGO)],
    );
    let tech2 = Device::primed(&server.url, "tech2").await;
    drop(tech2);
    server.restart();
    let url = server.url.clone();

    let mut tech1 = Device::primed(&url, "tech1").await;
    let mut tech1_laptop = Device::primed(&url, "tech1").await;
    let dispatcher = CliDevice::new("dispatcher", &bin("outpost"));
    dispatcher.login(&url, "dispatcher");
    dispatcher.ok(&["sync"]);

    let failed_order = open_order(&tech1);
    tech1.app.cancel_order(&failed_order, "no access").unwrap();
    tech1.sync().await.unwrap();
    assert_eq!(
        tech1.app.failed_syncs().unwrap().len(),
        1,
        "refused: technicians may not cancel"
    );

    let conflict_order = tech1.order_id(|o| {
        o.id.to_string() != failed_order && matches!(o.status, outpost_protocol::Status::Scheduled)
    });
    dispatcher.ok(&[
        "orders",
        "edit",
        &conflict_order,
        "--title",
        "Title from the office",
    ]);
    dispatcher.ok(&["sync"]);
    retitle(&mut tech1, &conflict_order, "Title from the van");
    tech1.sync().await.unwrap();
    retitle(&mut tech1_laptop, &conflict_order, "Title from the laptop");
    tech1_laptop.sync().await.unwrap();
    dispatcher.ok(&["sync"]);
    Fleet {
        _tmp: tmp,
        _server: server,
        url,
        tech1,
        tech1_laptop,
        dispatcher,
        failed_order,
        conflict_order,
    }
}

fn device_id(dev: &Device) -> String {
    dev.app.device_id().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_table_puts_the_laptop_unseen_for_two_days_first_then_the_one_with_failed_syncs()
{
    let f = fleet().await;
    let table = f.dispatcher.json(&["fleet"]);
    let rows = table.as_array().expect("an array");
    assert!(
        rows.len() >= 4,
        "tech2, tech1 twice, the dispatcher: {table:#}"
    );
    assert_eq!(
        rows[0]["username"], "tech2",
        "the unseen laptop first: {table:#}"
    );
    assert_eq!(rows[0]["stale"], true);
    let last_seen: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(rows[0]["last_seen"].clone()).unwrap();
    let unseen = chrono::Utc::now() - last_seen;
    assert!(
        unseen > chrono::Duration::hours(47),
        "seen {unseen} ago: {table:#}"
    );
    assert!(rows[0]["last_pull"].is_string(), "its last pull is known");

    assert_eq!(rows[1]["username"], "tech1");
    assert_eq!(rows[1]["device_id"], device_id(&f.tech1).as_str());
    assert_eq!(rows[1]["open_failed_syncs"], 1, "{table:#}");
    assert_eq!(rows[1]["open_conflicts"], 1, "{table:#}");
    assert_eq!(rows[1]["stale"], false);
    assert!(rows[1]["last_push"].is_string() && rows[1]["last_pull"].is_string());
    assert_eq!(rows[1]["app_version"], env!("CARGO_PKG_VERSION"));
    let laptop = rows
        .iter()
        .find(|r| r["device_id"] == device_id(&f.tech1_laptop).as_str())
        .expect("tech1's second device is a row of its own");
    assert_eq!(laptop["open_conflicts"], 1);
    assert_eq!(laptop["open_failed_syncs"], 0);

    let text = f.dispatcher.ok(&["fleet"]);
    let first = text
        .lines()
        .find(|l| l.contains("tech"))
        .expect("a row per device");
    assert!(first.contains("tech2"), "{text}");
    assert!(text.contains("not seen for 2 days"), "{text}");

    // A limit of a week: nobody is late.
    let week = f.dispatcher.json(&["fleet", "--stale-after", "168h"]);
    assert!(
        week.as_array().unwrap().iter().all(|r| r["stale"] == false),
        "{week:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_failed_syncs_are_listed_fleet_wide_one_item_per_order_with_the_per_field_view(
) {
    let f = fleet().await;
    let conflicts = f.dispatcher.json(&["conflicts", "list"]);
    let items = conflicts.as_array().expect("an array");
    let of_order: Vec<&Value> = items
        .iter()
        .filter(|i| i["order_id"] == f.conflict_order.as_str())
        .collect();
    assert_eq!(of_order.len(), 1, "one item per order: {conflicts:#}");
    let item = of_order[0];
    let records = item["conflicts"].as_array().expect("the order's conflicts");
    assert_eq!(records.len(), 2, "one per device: {item:#}");
    let mut mine: Vec<&str> = Vec::new();
    for r in records {
        let field = &r["fields"][0];
        assert_eq!(field["field"], "title", "{r:#}");
        assert_eq!(field["theirs"], "Title from the office", "{r:#}");
        mine.push(field["mine"].as_str().unwrap());
    }
    mine.sort();
    assert_eq!(mine, ["Title from the laptop", "Title from the van"]);
    assert!(
        item["title"].is_string() && item["number"].is_number(),
        "{item:#}"
    );

    let failed = f.dispatcher.json(&["failed", "list"]);
    let items = failed.as_array().expect("an array");
    assert_eq!(items.len(), 1, "{failed:#}");
    assert_eq!(items[0]["order_id"], f.failed_order.as_str());
    let records = items[0]["failed"]
        .as_array()
        .expect("the order's failed syncs");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["username"], "tech1");
    assert_eq!(records[0]["code"], "forbidden", "{failed:#}");

    let text = f.dispatcher.ok(&["conflicts", "list"]);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains(f.conflict_order.as_str()))
            .count(),
        1,
        "one line per order: {text}"
    );
    assert!(text.contains("2 conflicts"), "{text}");

    // tech1's own list is unchanged: their device's records.
    let own = CliDevice::new("tech1", &bin("outpost"));
    own.login(&f.url, "tech1");
    own.ok(&["sync"]);
    assert!(own.json(&["failed", "list"]).as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_assigns_cancels_and_reopens_an_order_from_the_cli_and_the_server_takes_each()
{
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let dispatcher = CliDevice::new("dispatcher", &bin("outpost"));
    dispatcher.login(&server.url, "dispatcher");
    dispatcher.ok(&["sync"]);
    let order = dispatcher
        .orders()
        .into_iter()
        .find(|r| r["status"] == "scheduled" && r["assignee"] == "tech1")
        .expect("a scheduled order of tech1");
    let id = order["id"].as_str().unwrap().to_owned();

    let tech3 = CliDevice::new("tech3", &bin("outpost"));
    tech3.login(&server.url, "tech3");
    tech3.ok(&["sync"]);
    assert!(tech3.run(&["orders", "show", &id]).status.code() == Some(6));

    let row = dispatcher.json(&["orders", "assign", &id, "--to", "tech3"]);
    assert_eq!(row["assignee"], "tech3");
    dispatcher.ok(&["sync"]);
    tech3.ok(&["sync"]);
    let seen = tech3.json(&["orders", "show", &id]);
    assert_eq!(seen["assignee"], "tech3", "the server took the assignment");

    let row = dispatcher.json(&["orders", "cancel", &id, "--reason", "Customer moved out"]);
    assert_eq!(row["status"], "cancelled");
    dispatcher.ok(&["sync"]);
    tech3.ok(&["sync"]);
    let seen = tech3.json(&["orders", "show", &id]);
    assert_eq!(seen["status"], "cancelled");
    assert!(
        seen["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["text"] == "Cancelled: Customer moved out"),
        "{seen:#}"
    );

    let row = dispatcher.json(&["orders", "reopen", &id]);
    assert_eq!(row["status"], "scheduled");
    dispatcher.ok(&["sync"]);
    tech3.ok(&["sync"]);
    assert_eq!(tech3.json(&["orders", "show", &id])["status"], "scheduled");
    assert!(dispatcher.outbox().is_empty(), "everything was accepted");
    assert!(dispatcher
        .json(&["failed", "list"])
        .as_array()
        .unwrap()
        .is_empty());

    // Reopening an order that is not cancelled says so.
    let out = dispatcher.run(&["orders", "reopen", &id]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A technician gets "dispatchers only", exit 3, and nothing is queued.
    for args in [
        vec!["orders", "assign", &id, "--to", "tech1"],
        vec!["orders", "cancel", &id, "--reason", "x"],
        vec!["orders", "reopen", &id],
        vec!["fleet"],
    ] {
        let out = tech3.run(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("dispatchers only"), "{args:?}: {err}");
    }
    assert!(tech3.outbox().is_empty());
}
