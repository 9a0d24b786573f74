//! Device sync integrity end to end (issue 15): no edit lost during a push, each
//! mutation applied once however often its reply is lost, no stall on a deferred
//! change, and what the device has not sent reported to the server. A real
//! `outpost-server` (SQLite) on loopback, real devices on encrypted data directories,
//! and the fault-injecting proxy of `tests/src/proxy.rs`.
//!
//! The idempotency tests resend a mutation whose first outcome the server recorded
//! but whose reply was lost, for each kind of outcome whose second apply would show: a
//! hold (a second conflict), a rejection (a second failed sync) and a create
//! (`already_exists`). Each checks first that the server did commit the first send.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use outpost_core::{Completion, Evidence, NewOrder, OrderEdit, Outpost, PassOptions};
use outpost_protocol::{Quantity, Status};
use outpost_tests::{
    eventually, fast_client, fast_engine, notes_with, open_order, png, setup, Device, Fault,
};
use uuid::Uuid;

/// A dispatcher's device, synced: what the server holds, as staff see it.
async fn office(url: &str) -> Device {
    let dispatcher = Device::primed(url, "dispatcher").await;
    dispatcher
}

/// The id of the only mutation in `dev`'s outbox.
fn only_mutation(dev: &Device) -> Uuid {
    let rows = dev.app.outbox().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0].mutation.mutation_id
}

/// Send the outbox with the reply lost after the server committed it.
async fn lose_the_reply(dev: &mut Device, proxy: &outpost_tests::Proxy) {
    proxy.set(Fault::DropReplies);
    assert!(dev.sync().await.is_err(), "the reply never arrives");
    proxy.set(Fault::None);
}

/// "Sync now" after a lost reply: the change goes again. Returns how many mutations
/// the pass pushed, checked to be the one whose reply was lost.
async fn resend(dev: &mut Device) {
    let report = dev.sync().await.unwrap();
    assert_eq!(report.pushed, 1, "the change was sent again: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_saved_while_a_photo_uploads_over_a_slow_link_is_not_lost() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;

    // Offline: order A completed with a 1400 × 1000 photo, a note added to order B.
    let a = tech.order_id(|o| o.status != Status::Completed && !o.checklist.is_empty());
    let b = tech.order_id(|o| {
        o.id.to_string() != a && matches!(o.status, Status::Scheduled | Status::InProgress)
    });
    let steps: Vec<String> = tech
        .app
        .order(&a)
        .unwrap()
        .order
        .checklist
        .iter()
        .map(|c| c.id.clone())
        .collect();
    tech.app
        .edit_order(
            &a,
            OrderEdit {
                check: steps,
                ..OrderEdit::default()
            },
        )
        .unwrap();
    tech.app
        .complete_order(
            &a,
            Completion {
                signature_png: Evidence {
                    bytes: png("signed"),
                    name: "sig.png".into(),
                },
                signer: "Customer".into(),
                photos: vec![Evidence {
                    bytes: outpost_core::photos::synthetic_photo(1400, 1000, 7),
                    name: "after.jpg".into(),
                }],
            },
        )
        .unwrap();
    tech.app
        .edit_order(
            &b,
            OrderEdit {
                notes: vec!["before the sync".into()],
                ..OrderEdit::default()
            },
        )
        .unwrap();

    // `outpost sync` through a link capped at 64 KB/s; while the photo goes up, a second
    // process (the app, or `outpost orders edit B --note …`) adds a note to B.
    proxy.set(Fault::Throttle {
        bytes_per_sec: 64_000,
    });
    let mut other = Outpost::open(Device::options(tech.dir.path(), &tech.key)).unwrap();
    let start = proxy.bytes_up();
    let edit = async {
        eventually(
            Duration::from_secs(30),
            "the photo is on its way up",
            || proxy.bytes_up() > start + 96_000,
        )
        .await;
        other
            .edit_order(
                &b,
                OrderEdit {
                    notes: vec!["saved during the sync".into()],
                    ..OrderEdit::default()
                },
            )
            .unwrap();
    };
    let (first, ()) = tokio::join!(tech.sync(), edit);
    first.unwrap();
    proxy.set(Fault::None);
    tech.sync().await.unwrap();
    tech.sync().await.unwrap();

    let office = office(&proxy.url()).await;
    assert_eq!(
        office.app.order(&a).unwrap().order.status,
        Status::Completed
    );
    assert_eq!(notes_with(&office, &b, "before the sync"), 1);
    assert_eq!(
        notes_with(&office, &b, "saved during the sync"),
        1,
        "the note saved during the upload is on the server"
    );
    assert_eq!(
        notes_with(&tech, &b, "saved during the sync"),
        1,
        "and on the device"
    );
    assert_eq!(tech.app.sync_counts().unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_sends_a_deferred_change_at_once() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let a = open_order(&tech);
    tech.app
        .edit_order(
            &a,
            OrderEdit {
                notes: vec!["waits for the network".into()],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    // A failed send defers the change by five to ten minutes.
    proxy.set(Fault::Refuse);
    let long = PassOptions {
        retry_delay_ms_min: 600_000,
        retry_delay_ms_max: 600_000,
        ..PassOptions::default()
    };
    let mut ignore = |_| {};
    let pass = PassOptions {
        ignore_backoff: false,
        ..long.clone()
    };
    assert!(tech
        .app
        .sync_once(&fast_client(), pass, &mut ignore)
        .await
        .is_err());
    assert!(tech.app.outbox().unwrap()[0].next_attempt_at.is_some());

    // The engine finds the server unreachable, then the network comes back.
    let mut config = fast_engine();
    config.pass = long;
    let engine = tech.app.start_engine(config).unwrap();
    let status = engine.subscribe();
    eventually(
        Duration::from_secs(10),
        "the engine's probe is refused",
        || proxy.refused() > 1,
    )
    .await;
    proxy.set(Fault::None);
    eventually(
        Duration::from_secs(10),
        "on reconnect the change goes at once, not minutes later",
        || status.borrow().pending == 0,
    )
    .await;
    engine.stop(Duration::from_secs(5)).await;
}

/// The device's report in a request head: the `x-outpost-unsent` header, a
/// structured-field dictionary (`count=2, oldest_secs=5`).
fn unsent_report(head: &str) -> Vec<(String, String)> {
    let value = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-outpost-unsent")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no x-outpost-unsent header in:\n{head}"));
    value
        .split(',')
        .filter_map(|kv| kv.trim().split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_reports_what_the_device_has_not_sent() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let a = open_order(&tech);
    let b = tech.order_id(|o| {
        o.id.to_string() != a && matches!(o.status, Status::Scheduled | Status::InProgress)
    });
    for id in [&a, &b] {
        tech.app
            .edit_order(
                id,
                OrderEdit {
                    notes: vec!["not sent yet".into()],
                    ..OrderEdit::default()
                },
            )
            .unwrap();
    }
    assert_eq!(tech.app.outbox().unwrap().len(), 2);
    proxy.record_requests();
    tech.sync().await.unwrap();

    let heads = proxy.request_heads();
    let push = heads
        .iter()
        .find(|h| h.starts_with("POST /v1/push"))
        .expect("a push was sent");
    let report = unsent_report(push);
    assert!(report.contains(&("count".into(), "2".into())), "{report:?}");
    assert!(
        report.iter().any(|(k, _)| k == "oldest_secs"),
        "the age of the oldest: {report:?}"
    );
    let pull = heads
        .iter()
        .rfind(|h| h.starts_with("POST /v1/pull"))
        .expect("a pull was sent");
    let after = unsent_report(pull);
    assert!(
        after.contains(&("count".into(), "0".into())),
        "after the push nothing is left: {after:?}"
    );
    assert!(!after.iter().any(|(k, _)| k == "oldest_secs"), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_change_resent_after_a_lost_reply_opens_one_conflict() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let mut dispatcher = office(&proxy.url()).await;
    let x = open_order(&tech);
    tech.app
        .edit_order(
            &x,
            OrderEdit {
                notes: vec!["held for a person".into()],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    let m = only_mutation(&tech);
    // Reassigned at the office before the technician's note arrives: held.
    dispatcher.app.assign_order(&x, "tech3").unwrap();
    dispatcher.sync().await.unwrap();

    let conflicts_naming = |d: &Device| {
        d.app
            .conflicts()
            .unwrap()
            .into_iter()
            .filter(|c| {
                c.record
                    .as_ref()
                    .is_some_and(|r| r.mutation.mutation_id == m)
            })
            .count()
    };
    lose_the_reply(&mut tech, &proxy).await;
    dispatcher.sync().await.unwrap();
    assert_eq!(
        conflicts_naming(&dispatcher),
        1,
        "the server held the first send"
    );
    resend(&mut tech).await;
    dispatcher.sync().await.unwrap();
    assert_eq!(
        conflicts_naming(&dispatcher),
        1,
        "one conflict for the held change"
    );
    assert_eq!(tech.app.conflicts().unwrap().len(), 1);
    assert_eq!(tech.app.sync_counts().unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_change_resent_after_a_lost_reply_records_one_failed_sync() {
    let (_tmp, server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let gone = "SKU-00009";
    let x = open_order(&tech);
    tech.app
        .edit_order(
            &x,
            OrderEdit {
                parts: vec![(gone.into(), Quantity::from_units(1))],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    let m = only_mutation(&tech);
    server.admin(&["inventory", "discontinue", "--sku", gone], None);

    let failed_naming = |d: &Device| {
        d.app
            .server_failed_syncs()
            .unwrap()
            .into_iter()
            .filter(|f| f.mutation.mutation_id == m)
            .count()
    };
    lose_the_reply(&mut tech, &proxy).await;
    let mut dispatcher = office(&proxy.url()).await;
    assert_eq!(
        failed_naming(&dispatcher),
        1,
        "the server refused the first send"
    );
    resend(&mut tech).await;
    dispatcher.sync().await.unwrap();
    assert_eq!(
        failed_naming(&dispatcher),
        1,
        "one failed sync for the refused change"
    );
    let failed = tech.app.failed_syncs().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].code, "unknown_sku");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_order_resent_after_a_lost_reply_is_created_once() {
    let (_tmp, _server, proxy) = setup(&[]).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let title = format!("Made on site {}", Uuid::new_v4());
    let made = tech
        .app
        .create_order(NewOrder {
            title: title.clone(),
            ..NewOrder::default()
        })
        .unwrap();

    lose_the_reply(&mut tech, &proxy).await;
    let mut dispatcher = office(&proxy.url()).await;
    let same = |d: &Device| {
        d.app
            .orders()
            .unwrap()
            .into_iter()
            .filter(|r| r.order.title == title)
            .count()
    };
    assert_eq!(
        same(&dispatcher),
        1,
        "the server created it on the first send"
    );
    resend(&mut tech).await;
    assert!(
        tech.app.failed_syncs().unwrap().is_empty(),
        "the resend is not refused as already existing"
    );
    let kept = tech.app.order(&made.order.id.to_string()).unwrap();
    assert!(kept.order.number.is_some(), "numbered by the server");
    dispatcher.sync().await.unwrap();
    assert_eq!(same(&dispatcher), 1, "created once");
}
