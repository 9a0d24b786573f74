//! The dispatcher's desk (issue 20) against a real server: every open conflict and
//! failed sync of an order is one item, side by side in words, decided as one unit.

#![allow(clippy::unwrap_used)]
// The tests compare the server's receive times with the wall clock around them.
#![allow(clippy::disallowed_methods)]

use outpost_core::desk::{DecisionInput, DeskFilter};
use outpost_core::{Completion, Evidence, OrderEdit};
use outpost_protocol::{Quantity, Status};
use outpost_tests::{png, seeded_db, Device, Fault, Proxy, Server};

struct Desk {
    _tmp: tempfile::TempDir,
    _server: Server,
    proxy: Proxy,
    tech_a: Device,
    tech_b: Device,
    dispatcher: Device,
    other_dispatcher: Device,
}

async fn desk() -> Desk {
    let tmp = tempfile::tempdir().unwrap();
    let db = seeded_db(tmp.path());
    let server = Server::start(&db, &[]);
    let proxy = Proxy::start(server.addr).await;
    let mut devs = Vec::new();
    for who in ["tech1", "tech1", "dispatcher", "dispatcher"] {
        let d = Device::primed(&proxy.url(), who).await;
        devs.push(d);
    }
    let other_dispatcher = devs.pop().unwrap();
    let dispatcher = devs.pop().unwrap();
    let tech_b = devs.pop().unwrap();
    let tech_a = devs.pop().unwrap();
    Desk {
        _tmp: tmp,
        _server: server,
        proxy,
        tech_a,
        tech_b,
        dispatcher,
        other_dispatcher,
    }
}

fn open_order(dev: &Device, skip: usize) -> String {
    dev.app
        .orders()
        .unwrap()
        .into_iter()
        .filter(|r| matches!(r.order.status, Status::Scheduled | Status::InProgress))
        .nth(skip)
        .map(|r| r.order.id.to_string())
        .unwrap()
}

/// The order #122: technician A completes it offline (checklist, a part, a
/// note, the customer's signature) and technician B's second device edits it, while a
/// dispatcher cancels it "customer cancelled by phone".
async fn completion_after_cancellation(d: &mut Desk) -> String {
    let id = open_order(&d.tech_a, 0);
    d.proxy.set(Fault::Refuse);
    d.dispatcher
        .app
        .cancel_order(&id, "customer cancelled by phone")
        .unwrap();
    let checklist: Vec<String> = d
        .tech_a
        .app
        .order(&id)
        .unwrap()
        .order
        .checklist
        .iter()
        .map(|c| c.id.clone())
        .collect();
    d.tech_a
        .app
        .edit_order(
            &id,
            OrderEdit {
                check: checklist,
                notes: vec!["Replaced the seal, tested for 10 minutes".into()],
                parts: vec![("SKU-00000".into(), Quantity::from_units(2))],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    d.tech_a
        .app
        .complete_order(
            &id,
            Completion {
                signature_png: Evidence {
                    bytes: png("customer signature"),
                    name: "sig.png".into(),
                },
                signer: "Site manager".into(),
                photos: Vec::new(),
            },
        )
        .unwrap();
    d.tech_b
        .app
        .edit_order(
            &id,
            OrderEdit {
                description: Some("Seal was leaking at the flange".into()),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    d.proxy.set(Fault::None);
    d.dispatcher.sync().await.unwrap();
    d.tech_a.sync().await.unwrap();
    d.tech_b.sync().await.unwrap();
    d.dispatcher.sync().await.unwrap();
    d.other_dispatcher.sync().await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_open_conflict_of_an_order_is_one_desk_item_decided_as_one_unit_and_a_decision_made_elsewhere_first_is_shown(
) {
    let mut d = desk().await;
    let id = completion_after_cancellation(&mut d).await;

    let page = d.dispatcher.app.desk(&DeskFilter::default()).unwrap();
    let items: Vec<_> = page.items.iter().filter(|i| i.order_id == id).collect();
    assert_eq!(items.len(), 1, "one item for the order: {page:#?}");
    let item = items[0];
    assert_eq!(
        item.records.len(),
        2,
        "both devices' held changes are in it"
    );
    assert_eq!(
        page.counts.open, page.total,
        "the navigation's count is the items'"
    );
    assert!(item.age_secs >= 0);
    assert!(
        page.items
            .windows(2)
            .all(|w| w[0].oldest_at <= w[1].oldest_at),
        "oldest first"
    );
    // Filters: technician, reason, age.
    let by_tech = |t: &str| DeskFilter {
        technician: Some(t.into()),
        ..DeskFilter::default()
    };
    assert!(d
        .dispatcher
        .app
        .desk(&by_tech("tech1"))
        .unwrap()
        .items
        .iter()
        .any(|i| i.order_id == id));
    assert!(d
        .dispatcher
        .app
        .desk(&by_tech("tech2"))
        .unwrap()
        .items
        .iter()
        .all(|i| i.order_id != id));
    let by_reason = DeskFilter {
        reason: Some("completion_after_cancel".into()),
        ..DeskFilter::default()
    };
    assert!(d
        .dispatcher
        .app
        .desk(&by_reason)
        .unwrap()
        .items
        .iter()
        .any(|i| i.order_id == id));
    let old_only = DeskFilter {
        older_than_secs: Some(3600),
        ..DeskFilter::default()
    };
    assert!(
        d.dispatcher.app.desk(&old_only).unwrap().items.is_empty(),
        "nothing is an hour old"
    );

    // Another dispatcher decides one of the two records first.
    let first = item.records[0].id.clone();
    d.other_dispatcher
        .app
        .resolve_conflict(&first, &[], false)
        .unwrap();
    d.other_dispatcher.sync().await.unwrap();

    // This dispatcher decides the whole item: both resolutions go as one unit.
    let receipt = d
        .dispatcher
        .app
        .decide(DecisionInput::keep(&id, "customer cancelled by phone"))
        .unwrap();
    assert_eq!(
        receipt.resolutions, 2,
        "one resolution per record of the item"
    );
    d.dispatcher.app.send_held_decisions_now().unwrap();
    d.dispatcher.sync().await.unwrap();
    let page = d.dispatcher.app.desk(&DeskFilter::default()).unwrap();
    assert!(page.items.iter().all(|i| i.order_id != id), "decided");
    let elsewhere: Vec<_> = page
        .decided_elsewhere
        .iter()
        .filter(|e| e.order_id == id)
        .collect();
    assert_eq!(
        elsewhere.len(),
        1,
        "the one decided first is shown: {page:#?}"
    );
    assert_eq!(elsewhere[0].decided_by, "dispatcher");
    assert_eq!(elsewhere[0].record_id, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_shows_each_field_side_by_side_in_words_with_the_stock_effect_and_the_cancellation_reason(
) {
    let mut d = desk().await;
    let id = completion_after_cancellation(&mut d).await;
    let page = d.dispatcher.app.desk(&DeskFilter::default()).unwrap();
    let item = page.items.iter().find(|i| i.order_id == id).unwrap();

    let status = item
        .fields
        .iter()
        .find(|f| f.field == "status")
        .expect("status row");
    assert_eq!(status.technician.as_deref(), Some("Completed"));
    assert_eq!(status.current.as_deref(), Some("Cancelled"));
    assert_eq!(status.current_by.as_deref(), Some("dispatcher"));
    assert!(
        status.current_at.is_some(),
        "when it was cancelled (device time)"
    );
    let description = item
        .fields
        .iter()
        .find(|f| f.field == "description")
        .expect("description row");
    assert_eq!(
        description.technician.as_deref(),
        Some("Seal was leaking at the flange")
    );

    let cancellation = item.cancellation.as_ref().expect("the cancellation");
    assert_eq!(cancellation.reason, "customer cancelled by phone");
    assert_eq!(cancellation.by, "dispatcher");

    assert!(
        item.checklist.iter().all(|c| c.technician_done),
        "ticks, not JSON"
    );
    assert!(item
        .notes
        .iter()
        .any(|n| n.text == "Replaced the seal, tested for 10 minutes" && n.author == "tech1"));
    let part = item
        .parts
        .iter()
        .find(|p| p.sku == "SKU-00000")
        .expect("the part");
    assert_eq!(part.quantity, "2 each");
    assert_eq!(part.name, "Filter 0");
    // SKU-00000 is stocked in tech1's van: accepting takes 2 from there.
    assert_eq!(part.stock_location.as_deref(), Some("van-tech1"));
    assert_eq!(
        part.stock_after_milli,
        part.stock_before_milli.map(|b| b - 2000)
    );

    let sig = item
        .evidence
        .iter()
        .find(|e| e.kind == "signature")
        .expect("signature");
    assert_eq!(sig.state, "not_downloaded");
    d.dispatcher
        .app
        .fetch_desk_evidence(&id, &outpost_tests::fast_client())
        .await
        .unwrap();
    let page = d.dispatcher.app.desk(&DeskFilter::default()).unwrap();
    let item = page.items.iter().find(|i| i.order_id == id).unwrap();
    let sig = item
        .evidence
        .iter()
        .find(|e| e.kind == "signature")
        .unwrap();
    assert_eq!(sig.state, "cached");
    let bytes = d.dispatcher.app.desk_evidence_bytes(&sig.hash).unwrap();
    assert_eq!(bytes, png("customer signature"), "the exact signature");
    assert!(
        !item.technical_details.is_empty(),
        "kept behind a disclosure"
    );
}

/// The desk's status row of the item for order `id`.
fn status_row(d: &Desk, id: &str) -> outpost_core::desk::DeskFieldView {
    let page = d.dispatcher.app.desk(&DeskFilter::default()).unwrap();
    let item = page.items.into_iter().find(|i| i.order_id == id).unwrap();
    item.fields
        .into_iter()
        .find(|f| f.field == "status")
        .expect("status row")
}

/// The current side of a completion held after a cancellation names who cancelled,
/// their device's time and when the server received the cancellation, as a field
/// conflict's current value does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_held_after_a_cancellation_shows_when_the_server_received_the_cancellation() {
    let started = chrono::Utc::now();
    let mut d = desk().await;
    let id = completion_after_cancellation(&mut d).await;
    let status = status_row(&d, &id);
    assert_eq!(status.current_by.as_deref(), Some("dispatcher"));
    let received = status
        .current_received_at
        .expect("the server's receive time of the cancellation");
    assert!(
        received >= started && received <= chrono::Utc::now(),
        "received at {received}, the test ran from {started}"
    );
}

/// `n` completions refused by the server (the office added a required step to each
/// order while technician A completed it offline): `n` failed syncs, as after a price
/// or checklist change.
async fn refused_completions(d: &mut Desk, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n).map(|i| open_order(&d.tech_a, i)).collect();
    d.proxy.set(Fault::Refuse);
    for id in &ids {
        let steps: Vec<String> = d
            .tech_a
            .app
            .order(id)
            .unwrap()
            .order
            .checklist
            .iter()
            .map(|c| c.id.clone())
            .collect();
        d.tech_a
            .app
            .edit_order(
                id,
                OrderEdit {
                    check: steps,
                    ..OrderEdit::default()
                },
            )
            .unwrap();
        d.tech_a
            .app
            .complete_order(
                id,
                Completion {
                    signature_png: Evidence {
                        bytes: png(&format!("signature {id}")),
                        name: "sig.png".into(),
                    },
                    signer: "Site manager".into(),
                    photos: Vec::new(),
                },
            )
            .unwrap();
    }
    d.proxy.set(Fault::None);
    for id in &ids {
        d.dispatcher
            .app
            .edit_order(
                id,
                OrderEdit {
                    add_checklist: vec![outpost_protocol::ChecklistItem {
                        id: "price-check".into(),
                        label: "Confirm the new price list".into(),
                        required: true,
                        done: false,
                    }],
                    ..OrderEdit::default()
                },
            )
            .unwrap();
    }
    d.dispatcher.sync().await.unwrap();
    d.tech_a.sync().await.unwrap();
    d.dispatcher.sync().await.unwrap();
    d.other_dispatcher.sync().await.unwrap();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_decision_over_twenty_failed_syncs_is_previewed_held_for_an_undo_and_then_sent_as_one_unit(
) {
    let mut d = desk().await;
    let ids = refused_completions(&mut d, 20).await;
    let open = |dev: &Device| {
        dev.app
            .desk(&DeskFilter {
                reason: Some("validation_failed".into()),
                limit: Some(500),
                ..DeskFilter::default()
            })
            .unwrap()
    };
    assert_eq!(open(&d.dispatcher).total, 20, "twenty items");
    let reason = "price list changed: redo with the new prices";
    let bulk = DecisionInput {
        order_ids: ids.clone(),
        ..DecisionInput::of(&ids[0], "discard", reason)
    };
    let previews = d.dispatcher.app.preview_decision(&bulk).unwrap();
    assert_eq!(previews.len(), 20);
    assert!(
        previews.iter().all(|p| p.status != "Completed"),
        "setting aside leaves each order as it is: {:?}",
        previews[0]
    );
    // A decision without a reason is refused: the technician must hear why.
    assert!(d
        .dispatcher
        .app
        .decide(DecisionInput {
            reason: " ".into(),
            ..bulk.clone()
        })
        .is_err());
    let receipt = d.dispatcher.app.decide(bulk.clone()).unwrap();
    assert_eq!((receipt.orders, receipt.resolutions), (20, 20));
    let page = open(&d.dispatcher);
    assert_eq!(page.total, 0, "decided items leave the desk");
    assert_eq!(page.held.len(), 20, "and wait in the undo window");
    // Undo within the window: all twenty come back.
    assert_eq!(
        d.dispatcher
            .app
            .undo_decision(&receipt.mutation_ids)
            .unwrap(),
        20
    );
    assert_eq!(open(&d.dispatcher).total, 20);
    // Decide again; a pass inside the window (even a manual one) sends nothing.
    let receipt = d.dispatcher.app.decide(bulk).unwrap();
    d.dispatcher.sync().await.unwrap();
    d.other_dispatcher.sync().await.unwrap();
    assert_eq!(
        open(&d.other_dispatcher).total,
        20,
        "nothing sent during the window"
    );
    // The window ends: the engine sends them.
    assert_eq!(d.dispatcher.app.send_held_decisions_now().unwrap(), 20);
    d.dispatcher.sync().await.unwrap();
    d.other_dispatcher.sync().await.unwrap();
    assert_eq!(
        open(&d.other_dispatcher).total,
        0,
        "all twenty decided on the server"
    );
    // After sending, an undo takes nothing back (a new decision reverses it).
    assert_eq!(
        d.dispatcher
            .app
            .undo_decision(&receipt.mutation_ids)
            .unwrap(),
        0
    );

    // The technician hears the outcome, with the reason, on each order.
    d.tech_a.sync().await.unwrap();
    let notices = d.tech_a.app.decision_notices().unwrap();
    assert_eq!(notices.len(), 20, "{notices:#?}");
    let n = &d.tech_a.app.order_decisions(&ids[0]).unwrap()[0];
    assert!(
        n.text.starts_with("Your completion of #")
            && n.text.ends_with(&format!("was set aside: {reason}")),
        "{}",
        n.text
    );
    assert!(!n.read);
    d.tech_a
        .app
        .mark_notices_read(std::slice::from_ref(&n.id))
        .unwrap();
    assert!(d.tech_a.app.order_decisions(&ids[0]).unwrap()[0].read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_completion_after_a_cancellation_completes_the_order_and_tells_the_technician_why(
) {
    let mut d = desk().await;
    let id = completion_after_cancellation(&mut d).await;
    let accept = DecisionInput::accept(&id, "customer confirmed the visit by phone");
    let preview = d.dispatcher.app.preview_decision(&accept).unwrap();
    assert_eq!(preview[0].status, "Completed");
    assert!(
        preview[0].summary.contains("van-tech1"),
        "{}",
        preview[0].summary
    );
    d.dispatcher.app.decide(accept).unwrap();
    d.dispatcher.app.send_held_decisions_now().unwrap();
    d.dispatcher.sync().await.unwrap();
    assert_eq!(
        d.dispatcher.app.order(&id).unwrap().order.status,
        Status::Completed
    );
    d.tech_a.sync().await.unwrap();
    assert_eq!(
        d.tech_a.app.order(&id).unwrap().order.status,
        Status::Completed
    );
    let notices = d.tech_a.app.order_decisions(&id).unwrap();
    assert!(
        notices.iter().any(|n| n
            .text
            .ends_with("was accepted: customer confirmed the visit by phone")),
        "{notices:#?}"
    );
}

/// The office and the technician both change the description of the `skip`-th open
/// order; the technician's push is a field conflict on the dispatcher's desk.
async fn description_conflict(d: &mut Desk, skip: usize) -> String {
    let id = open_order(&d.tech_a, skip);
    let edit = |text: &str| OrderEdit {
        description: Some(text.into()),
        ..OrderEdit::default()
    };
    d.other_dispatcher
        .app
        .edit_order(&id, edit("Office: bring the long ladder"))
        .unwrap();
    d.other_dispatcher.sync().await.unwrap();
    d.tech_a
        .app
        .edit_order(&id, edit("Field: ladder not needed"))
        .unwrap();
    d.tech_a.sync().await.unwrap();
    d.dispatcher.sync().await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_field_conflict_shows_who_set_the_current_value_with_the_device_and_receive_times() {
    let mut d = desk().await;
    let id = description_conflict(&mut d, 3).await;
    let page = d.dispatcher.app.desk(&DeskFilter::default()).unwrap();
    let item = page
        .items
        .iter()
        .find(|i| i.order_id == id)
        .expect("the item");
    let f = item
        .fields
        .iter()
        .find(|f| f.field == "description")
        .expect("the description");
    assert_eq!(f.technician.as_deref(), Some("Field: ladder not needed"));
    assert_eq!(f.current.as_deref(), Some("Office: bring the long ladder"));
    assert_eq!(f.current_by.as_deref(), Some("dispatcher"), "{f:#?}");
    assert!(f.current_at.is_some(), "the office device's time");
    assert!(f.current_received_at.is_some(), "the server's receive time");
    assert!(f.base.is_some(), "the value when the technician started");
}

/// A per-field decision with a value the dispatcher typed: the order takes the typed
/// text, and the technician hears the outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_field_decision_with_an_edited_value_sets_that_value_on_the_order() {
    let mut d = desk().await;
    let id = description_conflict(&mut d, 4).await;
    let mut decision = DecisionInput::of(&id, "per_field", "both were partly right");
    decision.edits = vec![outpost_core::desk::FieldEdit {
        field: "description".into(),
        value: "Ladder only for the roof unit".into(),
    }];
    d.dispatcher.app.decide(decision).unwrap();
    d.dispatcher.app.send_held_decisions_now().unwrap();
    d.dispatcher.sync().await.unwrap();
    d.tech_a.sync().await.unwrap();
    for dev in [&d.dispatcher, &d.tech_a] {
        assert_eq!(
            dev.app.order(&id).unwrap().order.description,
            "Ladder only for the roof unit"
        );
    }
    let page = d.dispatcher.app.desk(&DeskFilter::default()).unwrap();
    assert!(
        !page.items.iter().any(|i| i.order_id == id),
        "decided: no longer on the desk"
    );
}

/// Reopen and reassign: a completion made after a cancellation, decided by reopening
/// the order for another technician.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_an_order_for_another_technician_schedules_it_for_them() {
    let mut d = desk().await;
    let id = completion_after_cancellation(&mut d).await;
    let mut decision = DecisionInput::of(&id, "reopen", "customer rebooked; tech2 is nearer");
    decision.assignee = Some("tech2".into());
    d.dispatcher.app.decide(decision).unwrap();
    d.dispatcher.app.send_held_decisions_now().unwrap();
    d.dispatcher.sync().await.unwrap();
    let order = d.dispatcher.app.order(&id).unwrap().order;
    assert_eq!(order.status, Status::Scheduled);
    assert_eq!(order.assignee.as_deref(), Some("tech2"));
    d.tech_a.sync().await.unwrap();
    let notices = d.tech_a.app.order_decisions(&id).unwrap_or_default();
    assert!(
        notices
            .iter()
            .any(|n| n.text.contains("customer rebooked; tech2 is nearer")),
        "the technician hears why: {notices:#?}"
    );
}
