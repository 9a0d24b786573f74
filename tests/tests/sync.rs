//! The sync engine end to end: real `outpost-server` (SQLite) on loopback, real client
//! engines on encrypted data directories, and a proxy that cuts, delays, throttles and
//! breaks the connection. Exactly-once is checked on what a double apply would change:
//! stock decremented by parts used, and note entries counted.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use outpost_core::{
    Completion, EngineConfig, Evidence, NewOrder, OrderEdit, PassOptions, Progress, SyncState,
};
use outpost_protocol::wire::paths;
use outpost_protocol::{Quantity, Status};
use outpost_tests::{
    bin, eventually, fast_engine, notes_with, open_order, png, setup, Device, Fault, SkewedClock,
    TestAddress,
};

fn stock(dev: &Device, sku: &str) -> i64 {
    dev.app
        .inventory_item(sku)
        .unwrap()
        .unwrap_or_else(|| panic!("{sku} is in the local inventory"))
        .total_stock()
        .milli()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_and_completions_reach_the_server_once_the_connection_returns() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::new();
    tech.login(&proxy.url(), "tech1").await;
    tech.sync().await.expect("first sync");
    let sku = "SKU-00007";
    let stock_before = stock(&tech, sku);

    proxy.set(Fault::Refuse);
    let a = open_order(&tech);
    let marker = format!("offline note {}", uuid::Uuid::new_v4());
    tech.app
        .edit_order(
            &a,
            OrderEdit {
                notes: vec![marker.clone()],
                parts: vec![(sku.into(), Quantity::from_units(3))],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    let b = tech.order_id(|o| {
        o.status != Status::Completed && o.id.to_string() != a && !o.checklist.is_empty()
    });
    let required: Vec<String> = tech
        .app
        .order(&b)
        .unwrap()
        .order
        .checklist
        .iter()
        .map(|c| c.id.clone())
        .collect();
    tech.app
        .edit_order(
            &b,
            OrderEdit {
                check: required,
                ..OrderEdit::default()
            },
        )
        .unwrap();
    tech.app
        .complete_order(
            &b,
            Completion {
                signature_png: Evidence {
                    bytes: png("signed offline"),
                    name: "sig.png".into(),
                },
                signer: "Customer".into(),
                photos: vec![Evidence {
                    bytes: outpost_core::photos::synthetic_photo(640, 480, 1),
                    name: "after.jpg".into(),
                }],
            },
        )
        .unwrap();
    assert_eq!(tech.app.order(&a).unwrap().sync_state, SyncState::Saved);

    let engine = tech.app.start_engine(fast_engine()).unwrap();
    let mut status = engine.subscribe();
    eventually(
        Duration::from_secs(10),
        "the engine notices it is offline",
        || {
            matches!(
                status.borrow_and_update().connectivity,
                outpost_sync::Connectivity::Offline
            )
        },
    )
    .await;
    let refused = proxy.refused();
    eventually(
        Duration::from_secs(10),
        "the offline engine tries again (and is refused again)",
        || proxy.refused() > refused,
    )
    .await;
    assert!(
        engine.status().pending > 0,
        "nothing was sent while offline"
    );

    proxy.set(Fault::None);
    eventually(
        Duration::from_secs(30),
        "the outbox drains with no button pressed",
        || {
            let s = status.borrow_and_update().clone();
            s.pending == 0 && s.last_error.is_none()
        },
    )
    .await;
    engine.stop(Duration::from_secs(5)).await;

    // Another device sees exactly one of each effect on the server.
    let dispatcher = Device::primed(&proxy.url(), "dispatcher").await;
    assert_eq!(
        notes_with(&dispatcher, &a, &marker),
        1,
        "the note arrived once"
    );
    assert_eq!(
        stock(&dispatcher, sku),
        stock_before - 3000,
        "stock decremented once"
    );
    let done = dispatcher.app.order(&b).unwrap().order;
    assert_eq!(done.status, Status::Completed);
    assert_eq!(done.photos.len(), 1);
    assert!(done.signature.is_some());
    tech.sync().await.unwrap();
    assert_eq!(tech.app.order(&a).unwrap().sync_state, SyncState::Synced);
    assert_eq!(tech.app.order(&b).unwrap().sync_state, SyncState::Synced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (CAP_NET_ADMIN) to add an address to lo: make test runs it, as root in CI"]
async fn an_os_network_change_wakes_an_offline_engine_at_once() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    proxy.set(Fault::Refuse);
    let a = open_order(&tech);
    tech.app
        .edit_order(
            &a,
            OrderEdit {
                notes: vec!["sent when the network came back".into()],
                ..OrderEdit::default()
            },
        )
        .unwrap();

    // Offline probes back off to one or two minutes: only the OS's event can wake the
    // engine within this test.
    let slow = outpost_sync::Timing {
        probe_backoff_min_ms: 120_000,
        probe_backoff_max_ms: 120_000,
        periodic_ms: 120_000,
        debounce_ms: 50,
    };
    let engine = tech
        .app
        .start_engine(EngineConfig {
            timing: slow,
            watch_network: true,
            ..fast_engine()
        })
        .unwrap();
    let status = engine.subscribe();
    let offline = || {
        matches!(
            status.borrow().connectivity,
            outpost_sync::Connectivity::Offline
        )
    };
    eventually(
        Duration::from_secs(10),
        "the engine's first probe is refused and it says it is offline",
        || proxy.refused() > 0 && offline(),
    )
    .await;
    proxy.set(Fault::None);
    // Not a wait for something to happen: two seconds in which nothing may (the next
    // probe is minutes away), and in which the network watcher settles on the
    // addresses present at its start.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        offline(),
        "the server is back, but nothing has told the engine"
    );
    assert_eq!(engine.status().pending, 1);

    let _joined = TestAddress::add();
    eventually(
        Duration::from_secs(10),
        "the network change wakes the engine, which finds the server and drains the outbox",
        || {
            let s = status.borrow();
            s.pending == 0 && s.connectivity == outpost_sync::Connectivity::Online
        },
    )
    .await;
    engine.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_reply_after_the_server_committed_is_applied_exactly_once() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let sku = "SKU-00011";
    let before = stock(&tech, sku);
    let a = open_order(&tech);
    let marker = format!("lost reply {}", uuid::Uuid::new_v4());
    tech.app
        .edit_order(
            &a,
            OrderEdit {
                notes: vec![marker.clone()],
                parts: vec![(sku.into(), Quantity::from_units(1))],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    let sent_body = tech.app.outbox().unwrap()[0].body.clone();

    proxy.set(Fault::DropReplies);
    assert!(tech.sync().await.is_err(), "the reply never arrives");
    let rows = tech.app.outbox().unwrap();
    assert_eq!(rows.len(), 1, "the mutation is still unacknowledged");
    assert_eq!(rows[0].state, outpost_core::OutboxState::Sent, "and sealed");
    assert_eq!(rows[0].body, sent_body, "byte for byte");

    // An edit made while the first is in flight becomes its own mutation.
    tech.app
        .edit_order(
            &a,
            OrderEdit {
                notes: vec!["second".into()],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    assert_eq!(tech.app.outbox().unwrap().len(), 2);

    proxy.set(Fault::None);
    let report = tech.sync().await.unwrap();
    assert_eq!(report.remaining.pending, 0);
    assert_eq!(notes_with(&tech, &a, &marker), 1);
    assert_eq!(notes_with(&tech, &a, "second"), 1);
    assert_eq!(stock(&tech, sku), before - 1000, "applied once, not twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priming_fifty_thousand_items_reports_progress_and_deltas_follow() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::new();
    tech.login(&proxy.url(), "tech2").await;
    let mut seen: Vec<Progress> = Vec::new();
    let mut on_progress = |p: Progress| seen.push(p);
    let report = tech
        .app
        .sync_once(
            &outpost_tests::fast_client(),
            PassOptions::default(),
            &mut on_progress,
        )
        .await
        .unwrap();
    assert_eq!(tech.app.inventory_count().unwrap(), 50_000);
    let orders = tech.app.orders().unwrap();
    assert_eq!(orders.len(), 100, "tech2's orders");
    assert!(orders
        .iter()
        .all(|o| o.order.assignee.as_deref() == Some("tech2")));
    let priming: Vec<_> = seen
        .iter()
        .filter_map(|p| match p {
            Progress::Priming { phase, done, total } => Some((*phase, *done, *total)),
            _ => None,
        })
        .collect();
    assert!(priming.len() > 10, "progress is reported page by page");
    use outpost_protocol::wire::PrimingPhase;
    let first_inventory = priming.iter().position(|p| p.0 == PrimingPhase::Inventory);
    let last_orders = priming.iter().rposition(|p| p.0 == PrimingPhase::Orders);
    if let (Some(i), Some(o)) = (first_inventory, last_orders) {
        assert!(o < i, "assigned orders come before inventory");
    }
    let last = priming.last().unwrap();
    assert!(
        last.2 >= 50_100,
        "the total counts orders and items: {last:?}"
    );
    assert_eq!(last.1, last.2, "priming ends at done == total");
    assert!(report.pages >= 50, "pages are bounded");
    // The next page is asked for while the current one is applied: each page once.
    assert!(
        report.requests <= report.pages + 2,
        "each page asked for once: {report:?}"
    );

    // A delta is small.
    let before = proxy.bytes_down();
    let report = tech.sync().await.unwrap();
    assert!(report.pulled_rows < 10, "nothing changed: {report:?}");
    assert!(proxy.bytes_down() - before < 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_changes_and_reassignments_arrive_as_deltas() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut dispatcher = Device::primed(&proxy.url(), "dispatcher").await;
    assert_eq!(
        dispatcher.app.orders().unwrap().len(),
        500,
        "a dispatcher sees every order"
    );
    let mut tech1 = Device::primed(&proxy.url(), "tech1").await;
    let mut tech2 = Device::primed(&proxy.url(), "tech2").await;

    let x = open_order(&tech1);
    dispatcher
        .app
        .edit_order(
            &x,
            OrderEdit {
                title: Some("Changed at the office".into()),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    dispatcher.sync().await.unwrap();
    tech1.sync().await.unwrap();
    assert_eq!(
        tech1.app.order(&x).unwrap().order.title,
        "Changed at the office"
    );

    // Reassigned away from tech1 (no unsynced work there): it leaves tech1, reaches tech2.
    dispatcher.app.assign_order(&x, "tech2").unwrap();
    dispatcher.sync().await.unwrap();
    tech1.sync().await.unwrap();
    assert!(tech1.app.order(&x).is_err(), "gone from tech1");
    assert!(tech2.app.order(&x).is_err(), "not yet on tech2");
    tech2.sync().await.unwrap();
    assert_eq!(
        tech2.app.order(&x).unwrap().order.assignee.as_deref(),
        Some("tech2")
    );

    // Reassigned while tech2 has an unsynced edit: the edit is not lost.
    tech2
        .app
        .edit_order(
            &x,
            OrderEdit {
                notes: vec!["tech2 was here".into()],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    dispatcher.sync().await.unwrap();
    dispatcher.app.assign_order(&x, "tech3").unwrap();
    dispatcher.sync().await.unwrap();
    tech2.sync().await.unwrap();
    dispatcher.sync().await.unwrap();
    // The push came after the reassignment: the server holds the whole edit in a
    // conflict for a person, and tech2 keeps the order, marked, with its conflict.
    let held = tech2.app.conflicts().unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    let conflict = held[0].id.clone();
    let kept = tech2.app.order(&x).unwrap();
    assert_eq!(kept.reassigned_to.as_deref(), Some("tech3"));
    assert_eq!(tech2.app.sync_counts().unwrap().pending, 0);
    let on_server = dispatcher.app.order(&x).unwrap().order;
    assert_eq!(on_server.assignee.as_deref(), Some("tech3"));
    assert!(!on_server.notes.iter().any(|n| n.text == "tech2 was here"));

    // The dispatcher lets the note stand; tech2's device learns it and lets the order go.
    dispatcher
        .app
        .resolve_conflict(&conflict, &[], true)
        .unwrap();
    dispatcher.sync().await.unwrap();
    let on_server = dispatcher.app.order(&x).unwrap().order;
    let notes = |o: &outpost_protocol::WorkOrder| {
        o.notes
            .iter()
            .filter(|n| n.text == "tech2 was here")
            .count()
    };
    assert_eq!(notes(&on_server), 1, "the note stands, once");
    assert_eq!(on_server.assignee.as_deref(), Some("tech3"));
    tech2.sync().await.unwrap();
    assert_eq!(tech2.app.conflict(&conflict).unwrap().status, "resolved");
    assert!(
        tech2.app.order(&x).is_err(),
        "nothing keeps the order on tech2's device any more"
    );
    let counts = tech2.app.sync_counts().unwrap();
    assert_eq!((counts.pending, counts.failed, counts.conflicts), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discontinued_item_is_deleted_on_devices_and_a_late_use_of_it_is_shown_as_failed() {
    let (_tmp, server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let (gone, kept) = ("SKU-00007", "SKU-00008");
    assert!(tech.app.inventory_item(gone).unwrap().is_some());

    // Offline, the technician books the item that the office is about to discontinue.
    let order = open_order(&tech);
    proxy.set(Fault::Refuse);
    tech.app
        .edit_order(
            &order,
            OrderEdit {
                parts: vec![(gone.into(), Quantity::from_units(2))],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    let out = server.admin(&["inventory", "discontinue", "--sku", gone], None);
    assert!(out.contains("discontinued"), "{out}");
    proxy.set(Fault::None);

    let report = tech.sync().await.unwrap();
    assert!(
        report.removed >= 1,
        "the tombstone removed a row: {report:?}"
    );
    assert!(
        tech.app.inventory_item(gone).unwrap().is_none(),
        "the delta deleted the discontinued item"
    );
    assert!(tech.app.inventory_item(kept).unwrap().is_some());
    assert_eq!(tech.app.inventory_count().unwrap(), 49_999);
    // The booking of the discontinued item was refused and waits for a person.
    let failed = tech.app.failed_syncs().unwrap();
    assert!(
        failed
            .iter()
            .any(|f| f.order_id == order && f.code == "unknown_sku"),
        "{failed:?}"
    );

    // A device primed afterwards never sees the item; discontinuing twice says so.
    let fresh = Device::primed(&proxy.url(), "tech2").await;
    assert!(fresh.app.inventory_item(gone).unwrap().is_none());
    assert_eq!(fresh.app.inventory_count().unwrap(), 49_999);
    let again = std::process::Command::new(bin("outpost-server"))
        .args(["inventory", "discontinue", "--sku", gone, "--db"])
        .arg(server.db_arg())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no inventory item"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_epoch_forces_a_resync_that_keeps_pending_work() {
    let (_tmp, mut server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let before = tech.app.orders().unwrap().len();

    // Work saved while the server is down for a restore: a new order and an edit. A
    // failed send defers both for minutes, so the resync below happens while they are
    // still unsent.
    let deferred = PassOptions {
        ignore_backoff: false,
        retry_delay_ms_min: 600_000,
        retry_delay_ms_max: 600_000,
        ..PassOptions::default()
    };
    let made = tech
        .app
        .create_order(NewOrder {
            title: "Made during the restore".into(),
            ..NewOrder::default()
        })
        .unwrap();
    let a = open_order(&tech);
    tech.app
        .edit_order(
            &a,
            OrderEdit {
                notes: vec!["kept through the resync".into()],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    server.kill();
    let mut ignore = |_| {};
    let client = outpost_tests::fast_client();
    assert!(tech
        .app
        .sync_once(&client, deferred.clone(), &mut ignore)
        .await
        .is_err());

    server.admin(&["epoch", "reset"], None);
    proxy.set_upstream({
        server.restart();
        server.addr
    });
    let report = tech
        .app
        .sync_once(&client, deferred, &mut ignore)
        .await
        .unwrap();
    assert!(report.resynced, "the server asked for a resync: {report:?}");
    assert_eq!(
        report.pushed, 0,
        "nothing was sent before the resync: {report:?}"
    );
    assert_eq!(
        report.remaining.pending, 2,
        "the resync happened with the work still unsent: {report:?}"
    );
    let after = tech.app.orders().unwrap();
    assert_eq!(after.len(), before + 1, "the new order is kept");
    assert_eq!(notes_with(&tech, &a, "kept through the resync"), 1);
    assert_eq!(tech.app.inventory_count().unwrap(), 50_000);

    // Then it goes.
    let report = tech.sync().await.unwrap();
    assert_eq!(report.remaining.pending, 0);
    let kept = tech.app.order(&made.order.id.to_string()).unwrap();
    assert!(
        kept.order.number.is_some(),
        "the new order reached the server"
    );
    assert_eq!(notes_with(&tech, &a, "kept through the resync"), 1);
}

/// Wait until the server's own clock (its health answer) has passed `at`.
async fn server_time_passes(url: &str, at: chrono::DateTime<chrono::Utc>) {
    let client = outpost_sync::SyncClient::new(url, &outpost_tests::fast_client()).unwrap();
    let start = tokio::time::Instant::now();
    while client.health().await.unwrap().server_time <= at {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the server's clock did not pass {at}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_mid_sync() {
    // Access tokens live one second on the server, and the device's clock is an hour
    // behind: to the device every token still looks fresh, so it is not renewed ahead
    // of time and only the server's 401 says that it expired. Each sync below must
    // take the refresh-and-retry path.
    let (_tmp, server, proxy) = setup(&["--access-ttl-secs", "1"]).await;
    let mut tech = Device::with_clock(Arc::new(SkewedClock {
        behind: chrono::Duration::hours(1),
    }));
    tech.login(&proxy.url(), "tech1").await;
    tech.sync().await.unwrap();
    for i in 0..3 {
        let session = tech.app.store().session().unwrap().unwrap();
        server_time_passes(&server.url, session.access_expires_at).await;
        let refused_before = server.answered(paths::PUSH, 401);
        let a = open_order(&tech);
        tech.app
            .edit_order(
                &a,
                OrderEdit {
                    notes: vec![format!("after expiry {i}")],
                    ..OrderEdit::default()
                },
            )
            .unwrap();
        let report = tech
            .sync()
            .await
            .expect("the token is refreshed, the sync goes on");
        assert_eq!(report.remaining.pending, 0);
        assert_eq!(
            server.answered(paths::PUSH, 401),
            refused_before + 1,
            "round {i}: the push was refused once as expired, then retried with a fresh token"
        );
        let renewed = tech.app.store().session().unwrap().unwrap();
        assert_ne!(renewed.access_token, session.access_token, "round {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_push_loses_nothing_and_doubles_nothing() {
    let (_tmp, mut server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let ids: Vec<String> = tech
        .app
        .orders()
        .unwrap()
        .iter()
        .filter(|r| r.order.status != Status::Completed && r.order.status != Status::Cancelled)
        .take(40)
        .map(|r| r.order.id.to_string())
        .collect();
    for id in &ids {
        tech.app
            .edit_order(
                id,
                OrderEdit {
                    notes: vec!["restart test".into()],
                    ..OrderEdit::default()
                },
            )
            .unwrap();
    }
    proxy.set(Fault::Throttle {
        bytes_per_sec: 4_000,
    });
    let pass = PassOptions {
        batch_count: 5,
        ..PassOptions::default()
    };
    let pushed = Arc::new(AtomicUsize::new(0));
    let mut count = {
        let pushed = pushed.clone();
        move |p| {
            if let Progress::Pushing { done, .. } = p {
                pushed.store(done, Ordering::SeqCst);
            }
        }
    };
    let client = outpost_tests::fast_client();
    let sync = tech.app.sync_once(&client, pass, &mut count);
    let restart = async {
        eventually(
            Duration::from_secs(30),
            "the first batch is acknowledged",
            || pushed.load(Ordering::SeqCst) > 0,
        )
        .await;
        server.kill();
        pushed.load(Ordering::SeqCst)
    };
    let (result, pushed_at_kill) = tokio::join!(sync, restart);
    assert!(result.is_err(), "the pass broke off");
    assert!(
        pushed_at_kill < ids.len(),
        "the server went down mid-push: {pushed_at_kill} of {} sent",
        ids.len()
    );
    server.restart();
    proxy.set_upstream(server.addr);
    proxy.set(Fault::None);
    let report = tech.sync().await.unwrap();
    assert_eq!(report.remaining.pending, 0);
    for id in &ids {
        assert_eq!(notes_with(&tech, id, "restart test"), 1, "order {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_killed_mid_push_resumes_and_applies_each_change_once() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = outpost_tests::random_key();
    let outpost = |args: &[&str]| {
        let mut c = std::process::Command::new(bin("outpost"));
        c.arg("--data-dir")
            .arg(dir.path())
            .args(args)
            .env("OUTPOST_DB_KEY", &key);
        c
    };
    let mut login = outpost(&[
        "login",
        "--server",
        &proxy.url(),
        "--username",
        "tech1",
        "--password-stdin",
    ])
    .stdin(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    {
        use std::io::Write;
        login
            .stdin
            .take()
            .unwrap()
            .write_all(b"outpost-demo\n")
            .unwrap();
    }
    assert!(login.wait().unwrap().success());
    assert!(outpost(&["sync"]).status().unwrap().success());
    let list = outpost(&["--json", "orders", "list"]).output().unwrap();
    let orders: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let ids: Vec<String> = orders
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["status"] != "completed" && o["status"] != "cancelled")
        .take(30)
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        assert!(outpost(&["orders", "edit", id, "--note", "killed test"])
            .status()
            .unwrap()
            .success());
    }
    proxy.set(Fault::Throttle {
        bytes_per_sec: 3_000,
    });
    let sealed = || {
        let list = outpost(&["--json", "outbox", "list"]).output().unwrap();
        let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap_or_default();
        rows.as_array()
            .map(|r| r.iter().filter(|r| r["state"] == "sent").count())
            .unwrap_or(0)
    };
    let mut child = outpost(&["sync"]).spawn().unwrap();
    // Kill it once its push is on the wire: rows sealed, the request under way.
    let start = proxy.bytes_up();
    eventually(Duration::from_secs(20), "the push is under way", || {
        sealed() > 0 && proxy.bytes_up() > start + 2_000
    })
    .await;
    child.kill().unwrap();
    let _ = child.wait();
    let in_flight = sealed();
    assert!(
        in_flight > 0,
        "the kill landed mid-push: sealed rows were never acknowledged"
    );
    proxy.set(Fault::None);
    let out = outpost(&["sync"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = outpost(&["--json", "status"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["pending"], 0);
    assert_eq!(status["connectivity"], "online");
    for id in &ids {
        let shown = outpost(&["--json", "orders", "show", id]).output().unwrap();
        let o: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
        let n = o["notes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["text"] == "killed test")
            .count();
        assert_eq!(n, 1, "order {id}");
        assert_eq!(o["sync_state"], "synced");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_must_sign_in_again_and_keeps_its_work() {
    let (_tmp, server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let a = open_order(&tech);
    tech.app
        .edit_order(
            &a,
            OrderEdit {
                notes: vec!["before revocation".into()],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    server.admin(
        &[
            "device",
            "revoke",
            "--device-id",
            &tech.app.device_id().to_string(),
        ],
        None,
    );
    let err = tech.sync().await.expect_err("revoked");
    assert_eq!(err.code(), "sign_in_required", "{err}");
    assert_eq!(err.exit_code(), 8);
    assert_eq!(tech.app.outbox().unwrap().len(), 1, "the work is kept");
    let status = tech
        .app
        .status(&outpost_tests::fast_client())
        .await
        .unwrap();
    assert_eq!(status.connectivity, "sign_in_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_process_syncs_a_data_directory() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::new();
    tech.login(&proxy.url(), "tech1").await;
    let engine = tech.app.start_engine(EngineConfig::default()).unwrap();
    let out = std::process::Command::new(bin("outpost"))
        .arg("--data-dir")
        .arg(tech.dir.path())
        .arg("sync")
        .env("OUTPOST_DB_KEY", &tech.key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(9));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already syncing"));
    engine.stop(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_signed_in_through_the_cli_sees_every_order_after_sync() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = outpost_tests::random_key();
    let outpost = |args: &[&str]| {
        let mut c = std::process::Command::new(bin("outpost"));
        c.arg("--data-dir")
            .arg(dir.path().join("fresh"))
            .args(args)
            .env("OUTPOST_DB_KEY", &key);
        c
    };
    let mut login = outpost(&[
        "login",
        "--server",
        &proxy.url(),
        "--username",
        "dispatcher",
        "--password-stdin",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    {
        use std::io::Write;
        login
            .stdin
            .take()
            .unwrap()
            .write_all(b"outpost-demo\n")
            .unwrap();
    }
    let out = login.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login initialises the missing data directory"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("as dispatcher (dispatcher)"));
    assert!(outpost(&["sync"]).status().unwrap().success());
    let list = outpost(&["--json", "orders", "list"]).output().unwrap();
    let orders: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(orders.as_array().unwrap().len(), 500);

    // Unreachable server: a non-zero exit with the reason.
    proxy.set(Fault::Refuse);
    let out = outpost(&["sync"]).output().unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be reached"));
    let status = outpost(&["--json", "status"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["connectivity"], "offline");
    for key in ["pending", "failed", "conflicts", "last_sync"] {
        assert!(status.get(key).is_some(), "status has {key}");
    }
}

/// Issue 25 item 4: a device away for longer than the server keeps its change log and
/// idempotency records (here `prune --keep-days 0`: everything before now is dropped).
/// What happens then is a clear re-prime, never silent loss and never a double apply:
/// its sent-but-unacknowledged change (the reply was lost before it went away) is sent
/// again without an idempotency record to answer it, its unsent change goes, and what
/// the office changed meanwhile arrives through the new snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_past_the_retention_re_primes_and_loses_or_doubles_nothing() {
    let (_tmp, server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let mut dispatcher = Device::primed(&proxy.url(), "dispatcher").await;
    let sku = "SKU-00011";
    let before = stock(&tech, sku);
    let office_before = stock(&dispatcher, sku);
    let a = open_order(&tech);
    let b = tech.order_id(|o| o.id.to_string() != a && o.status == Status::Scheduled);
    let marker = format!("before the long absence {}", uuid::Uuid::new_v4());
    tech.app
        .edit_order(
            &a,
            OrderEdit {
                notes: vec![marker.clone()],
                parts: vec![(sku.into(), Quantity::from_units(1))],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    proxy.set(Fault::DropReplies);
    assert!(tech.sync().await.is_err(), "the reply never arrives");
    proxy.set(Fault::None);
    tech.app
        .edit_order(
            &b,
            OrderEdit {
                notes: vec!["written while away".into()],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    dispatcher
        .app
        .edit_order(
            &b,
            OrderEdit {
                title: Some("Changed at the office meanwhile".into()),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    dispatcher.sync().await.unwrap();

    let pruned = server.admin(&["prune", "--keep-days", "0"], None);
    assert!(pruned.starts_with("pruned "), "{pruned}");

    let report = tech.sync().await.unwrap();
    assert!(
        report.resynced,
        "a cursor older than the pruned log re-primes: {report:?}"
    );
    assert_eq!(report.remaining.pending, 0, "{report:?}");
    assert_eq!(report.remaining.failed, 0, "{report:?}");
    assert_eq!(notes_with(&tech, &a, &marker), 1, "the note is there once");
    assert_eq!(
        stock(&tech, sku),
        before - 1000,
        "the part used was taken from stock once, not twice"
    );
    assert_eq!(notes_with(&tech, &b, "written while away"), 1);
    assert_eq!(
        tech.app.order(&b).unwrap().order.title,
        "Changed at the office meanwhile"
    );
    // The server agrees: the office sees the note once and the stock moved once.
    dispatcher.sync().await.unwrap();
    assert_eq!(notes_with(&dispatcher, &a, &marker), 1);
    assert_eq!(stock(&dispatcher, sku), office_before - 1000);
}

/// Issue 25 item 4, the one thing the retention changes for a device away longer: a
/// new order whose create reached the server but whose reply was lost. Its resend
/// finds no idempotency record, so the server refuses it as `already_exists`. Nothing
/// is lost (the order is on the server once, and on the device), but a person is shown
/// a failed sync for it (docs/server.md, "Retention"): within the retention the same
/// resend is answered `duplicate` and nobody sees anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_order_resent_past_the_retention_is_shown_as_failed_not_lost() {
    let (_tmp, server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let made = tech
        .app
        .create_order(NewOrder {
            title: "Made before the long absence".into(),
            ..NewOrder::default()
        })
        .unwrap();
    proxy.set(Fault::DropReplies);
    assert!(tech.sync().await.is_err(), "the reply never arrives");
    proxy.set(Fault::None);
    server.admin(&["prune", "--keep-days", "0"], None);

    let report = tech.sync().await.unwrap();
    assert!(report.resynced, "{report:?}");
    let id = made.order.id.to_string();
    assert_eq!(
        tech.app.order(&id).unwrap().order.title,
        "Made before the long absence",
        "the order is on the device, from the server's snapshot"
    );
    let failed = tech.app.failed_syncs().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        (failed[0].order_id.as_str(), failed[0].code.as_str()),
        (id.as_str(), "already_exists"),
        "shown to the technician, not dropped"
    );
    let office = Device::primed(&proxy.url(), "dispatcher").await;
    let titled = office
        .app
        .orders()
        .unwrap()
        .iter()
        .filter(|o| o.order.title == "Made before the long absence")
        .count();
    assert_eq!(titled, 1, "the server holds the order once");
}

// ---- issue 24 item 1: the pull after a push (echo suppression) -------------------

/// `count` orders created and completed on `dev` without syncing (two mutations each,
/// no parts, so the push writes only order rows); their ids.
fn offline_orders(dev: &mut Device, count: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let row = dev
            .app
            .create_order(NewOrder {
                title: format!("Echo {tag} {i}"),
                customer: "Harbour Bakery".into(),
                ..NewOrder::default()
            })
            .unwrap();
        let id = row.order.id.to_string();
        dev.app
            .complete_order(
                &id,
                Completion {
                    signature_png: Evidence {
                        bytes: png(&format!("echo {tag} {i}")),
                        name: "sig.png".into(),
                    },
                    signer: "Site manager".into(),
                    photos: Vec::new(),
                },
            )
            .unwrap();
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pull_after_a_push_whose_replies_arrived_sends_back_none_of_its_rows() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let ids = offline_orders(&mut tech, 3, "acked");

    let report = tech.sync().await.unwrap();
    assert_eq!(report.remaining.pending, 0, "{report:?}");
    assert_eq!(report.acknowledged, 6, "{report:?}");
    assert_eq!(
        report.pulled_rows, 0,
        "the device received every acknowledgement (with the order rows), so the pull \
         brings none of the rows its own push wrote back: {report:?}"
    );

    // What the device holds is the server's row all the same.
    let dispatcher = Device::primed(&proxy.url(), "dispatcher").await;
    for id in &ids {
        let mine = tech.app.order(id).unwrap().order;
        let server = dispatcher.app.order(id).unwrap().order;
        assert!(mine.number.is_some(), "numbered by the server");
        assert_eq!(mine, server, "the device holds the server's row");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_office_change_made_while_the_technician_was_offline_arrives_beside_the_echo() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let mut dispatcher = Device::primed(&proxy.url(), "dispatcher").await;
    let x = open_order(&tech);

    // The office renames the order; the technician, offline, adds a note to it.
    dispatcher
        .app
        .edit_order(
            &x,
            OrderEdit {
                title: Some("Renamed at the office".into()),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    dispatcher.sync().await.unwrap();
    let marker = format!("offline note {}", uuid::Uuid::new_v4());
    tech.app
        .edit_order(
            &x,
            OrderEdit {
                notes: vec![marker.clone()],
                ..OrderEdit::default()
            },
        )
        .unwrap();

    // The push merges the note onto the office's version; the pull then brings the
    // office's (older) row and must not put the device back behind its own reply.
    let report = tech.sync().await.unwrap();
    assert_eq!(report.remaining.pending, 0, "{report:?}");
    dispatcher.sync().await.unwrap();
    let mine = tech.app.order(&x).unwrap().order;
    let server = dispatcher.app.order(&x).unwrap().order;
    assert_eq!(mine.title, "Renamed at the office");
    assert_eq!(notes_with(&tech, &x, &marker), 1);
    assert_eq!(mine, server, "the device holds the server's latest row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_push_reply_is_still_repaired_by_the_pull() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    // Orders without evidence, so that the push itself is the first request whose
    // reply is lost (a completion's signature upload would be).
    let ids: Vec<String> = (0..2)
        .map(|i| {
            let row = tech
                .app
                .create_order(NewOrder {
                    title: format!("Lost reply {i}"),
                    customer: "Harbour Bakery".into(),
                    ..NewOrder::default()
                })
                .unwrap();
            row.order.id.to_string()
        })
        .collect();

    proxy.set(Fault::DropReplies);
    assert!(tech.sync().await.is_err(), "the replies never arrive");
    assert!(
        tech.app.order(&ids[0]).unwrap().order.number.is_none(),
        "not numbered yet: the reply with the server's row was lost"
    );
    proxy.set(Fault::None);
    // The resend is answered `duplicate` (no row, and no rows written): nothing this
    // device received covers the rows the lost push wrote, so the pull brings them.
    let report = tech.sync().await.unwrap();
    assert_eq!(report.remaining.pending, 0, "{report:?}");
    assert!(report.pulled_rows >= 2, "{report:?}");
    let dispatcher = Device::primed(&proxy.url(), "dispatcher").await;
    for id in &ids {
        let mine = tech.app.order(id).unwrap().order;
        assert!(mine.number.is_some(), "the pull brought the server's row");
        assert_eq!(mine, dispatcher.app.order(id).unwrap().order);
    }
}
