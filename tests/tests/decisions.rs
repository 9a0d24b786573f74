//! Failed syncs, conflicts and evidence end to end: two technicians and a dispatcher
//! edit the same orders offline against a real server; every merge rule is exercised;
//! decisions travel both ways; and at the end nothing a person did is missing — every
//! note entry, part line and field value is on the server, in an open conflict, or in
//! a failed sync.

#![allow(clippy::unwrap_used)]

use outpost_core::{Completion, Evidence, FieldChoice, OrderEdit, SyncState};
use outpost_protocol::wire::ConflictKind;
use outpost_protocol::{ChecklistItem, Priority, Quantity, Status};
use outpost_tests::{png, seeded_db, Device, Fault, Proxy, Server};

struct Fleet {
    _tmp: tempfile::TempDir,
    _server: Server,
    proxy: Proxy,
    tech1: Device,
    tech2: Device,
    dispatcher: Device,
}

async fn fleet() -> Fleet {
    fleet_with(&[]).await
}

/// The fleet against a server started with `args`.
async fn fleet_with(args: &[&str]) -> Fleet {
    let tmp = tempfile::tempdir().unwrap();
    let db = seeded_db(tmp.path());
    let server = Server::start(&db, args);
    let proxy = Proxy::start(server.addr).await;
    let tech1 = Device::primed(&proxy.url(), "tech1").await;
    let tech2 = Device::primed(&proxy.url(), "tech2").await;
    let dispatcher = Device::primed(&proxy.url(), "dispatcher").await;
    Fleet {
        _tmp: tmp,
        _server: server,
        proxy,
        tech1,
        tech2,
        dispatcher,
    }
}

fn open_orders(dev: &Device, n: usize) -> Vec<String> {
    dev.app
        .orders()
        .unwrap()
        .into_iter()
        .filter(|r| {
            matches!(
                r.order.status,
                Status::Scheduled | Status::EnRoute | Status::InProgress
            )
        })
        .take(n)
        .map(|r| r.order.id.to_string())
        .collect()
}

fn note(text: &str) -> OrderEdit {
    OrderEdit {
        notes: vec![text.into()],
        ..OrderEdit::default()
    }
}

fn tick_all(dev: &mut Device, id: &str) {
    let required: Vec<String> = dev
        .app
        .order(id)
        .unwrap()
        .order
        .checklist
        .iter()
        .map(|c| c.id.clone())
        .collect();
    dev.app
        .edit_order(
            id,
            OrderEdit {
                check: required,
                ..OrderEdit::default()
            },
        )
        .unwrap();
}

fn complete_only(dev: &mut Device, id: &str, photo: Vec<u8>) -> outpost_core::OrderRow {
    dev.app
        .complete_order(
            id,
            Completion {
                signature_png: Evidence {
                    bytes: png(&format!("signature {id}")),
                    name: "sig.png".into(),
                },
                signer: "Site manager".into(),
                photos: vec![Evidence {
                    bytes: photo,
                    name: "after.jpg".into(),
                }],
            },
        )
        .unwrap()
}

fn complete_with_evidence(dev: &mut Device, id: &str, photo: Vec<u8>) -> outpost_core::OrderRow {
    tick_all(dev, id);
    complete_only(dev, id, photo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_merge_rule_with_two_technicians_and_a_dispatcher_offline() {
    let mut f = fleet().await;
    let ids = open_orders(&f.tech1, 4);
    let (disjoint, same_field, to_cancel, notes_and_parts) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    // The checklist of the order to be cancelled was ticked and synced earlier.
    tick_all(&mut f.tech1, to_cancel);
    f.tech1.sync().await.unwrap();
    f.dispatcher.sync().await.unwrap();

    // All offline at once.
    f.proxy.set(Fault::Refuse);
    // Disjoint fields: both stand.
    f.tech1
        .app
        .edit_order(
            disjoint,
            OrderEdit {
                priority: Some(Priority::Urgent),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    f.dispatcher
        .app
        .edit_order(
            disjoint,
            OrderEdit {
                title: Some("Retitled by the office".into()),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    // The same scalar field: a conflict for a person.
    f.dispatcher
        .app
        .edit_order(
            same_field,
            OrderEdit {
                description: Some("office version".into()),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    f.tech1
        .app
        .edit_order(
            same_field,
            OrderEdit {
                description: Some("field version".into()),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    // List ops and notes: never conflict.
    f.tech1
        .app
        .edit_order(
            notes_and_parts,
            OrderEdit {
                notes: vec!["tech1's note".into()],
                parts: vec![("SKU-00001".into(), Quantity::from_units(1))],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    f.dispatcher
        .app
        .edit_order(
            notes_and_parts,
            OrderEdit {
                notes: vec!["dispatcher's note".into()],
                parts: vec![("SKU-00002".into(), Quantity::from_units(2))],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    // Completion against a cancellation: the completion and its evidence are held.
    f.dispatcher
        .app
        .cancel_order(to_cancel, "customer called off")
        .unwrap();
    let held = complete_only(
        &mut f.tech1,
        to_cancel,
        outpost_core::photos::synthetic_photo(320, 240, 2),
    );
    assert_eq!(
        held.order.status,
        Status::Completed,
        "optimistic on the device"
    );

    // Back online: the dispatcher syncs first.
    f.proxy.set(Fault::None);
    f.dispatcher.sync().await.unwrap();
    let report = f.tech1.sync().await.unwrap();
    let failed = f.tech1.app.failed_syncs().unwrap();
    let reasons: Vec<String> = failed
        .iter()
        .map(|x| format!("{} {}: {}", x.kind, x.code, x.message))
        .collect();
    assert!(
        report.conflicts >= 2,
        "same field and completion-after-cancel: {report:?} {reasons:?}"
    );
    f.dispatcher.sync().await.unwrap();

    let d = f.dispatcher.app.order(disjoint).unwrap().order;
    assert_eq!(d.title, "Retitled by the office");
    assert_eq!(d.priority, Priority::Urgent);

    let lists = f.dispatcher.app.order(notes_and_parts).unwrap().order;
    let texts: Vec<&str> = lists.notes.iter().map(|n| n.text.as_str()).collect();
    assert!(
        texts.contains(&"tech1's note") && texts.contains(&"dispatcher's note"),
        "{texts:?}"
    );
    let skus: Vec<&str> = lists.parts_used.iter().map(|p| p.sku.as_str()).collect();
    assert!(
        skus.contains(&"SKU-00001") && skus.contains(&"SKU-00002"),
        "{skus:?}"
    );

    let conflicts = f.tech1.app.conflicts().unwrap();
    let field = conflicts
        .iter()
        .find(|c| c.order_id.as_deref() == Some(same_field.as_str()))
        .expect("the same-field conflict is on the technician's device");
    let record = field.record.as_ref().expect("the record was pulled");
    assert_eq!(record.kind, ConflictKind::Fields);
    assert_eq!(record.fields[0].field, "description");
    assert_eq!(
        f.tech1.app.order(same_field).unwrap().sync_state,
        SyncState::Conflict
    );
    let cancel = conflicts
        .iter()
        .find(|c| c.order_id.as_deref() == Some(to_cancel.as_str()))
        .expect("the held completion is a conflict");
    assert_eq!(
        cancel.record.as_ref().unwrap().kind,
        ConflictKind::CompletionAfterCancel
    );
    assert!(
        !cancel.record.as_ref().unwrap().mutation.ops.is_empty(),
        "the evidence is kept"
    );
    assert_eq!(
        f.dispatcher.app.order(to_cancel).unwrap().order.status,
        Status::Cancelled
    );

    // The dispatcher decides the field conflict for the technician's value …
    let on_dispatcher = f.dispatcher.app.conflicts().unwrap();
    assert!(
        on_dispatcher.iter().any(|c| c.id == field.id),
        "dispatchers see the fleet's conflicts"
    );
    f.dispatcher
        .app
        .resolve_conflict(
            &field.id,
            &[("description".into(), FieldChoice::Mine)],
            false,
        )
        .unwrap();
    f.dispatcher.sync().await.unwrap();
    // … and the technician's window shows the outcome.
    f.tech1.sync().await.unwrap();
    assert_eq!(
        f.tech1.app.order(same_field).unwrap().order.description,
        "field version"
    );
    let after = f.tech1.app.conflict(&field.id).unwrap();
    assert_eq!(after.status, "resolved");
    assert_eq!(
        after.record.unwrap().resolution.unwrap().decided_by,
        "dispatcher"
    );

    // The same conflict resolved on both sides: the second learns the first's decision.
    f.dispatcher
        .app
        .resolve_conflict(&cancel.id, &[], true)
        .unwrap();
    f.tech1.app.resolve_conflict(&cancel.id, &[], true).unwrap();
    f.dispatcher.sync().await.unwrap();
    let report = f.tech1.sync().await.unwrap();
    assert_eq!(report.remaining.pending, 0);
    let settled = f.tech1.app.conflict(&cancel.id).unwrap();
    assert_eq!(
        settled.status, "resolved",
        "already_resolved shows the decision"
    );
    assert!(settled.record.unwrap().resolution.is_some());
    f.dispatcher.sync().await.unwrap();
    assert_eq!(
        f.dispatcher.app.order(to_cancel).unwrap().order.status,
        Status::Completed
    );

    // Nothing anyone did is missing: every value is on the server or in a conflict.
    let server = f.dispatcher.app.order(notes_and_parts).unwrap().order;
    for text in ["tech1's note", "dispatcher's note", "customer called off"] {
        let on_server = server.notes.iter().any(|n| n.text.contains(text))
            || f.dispatcher
                .app
                .order(to_cancel)
                .unwrap()
                .order
                .notes
                .iter()
                .any(|n| n.text.contains(text));
        assert!(on_server, "{text} is on the server");
    }
    let decided = f
        .dispatcher
        .app
        .conflict(&field.id)
        .unwrap()
        .record
        .unwrap();
    let kept = serde_json::to_string(&decided.fields[0]).unwrap();
    assert!(
        kept.contains("office version") && kept.contains("field version"),
        "both sides kept: {kept}"
    );
    let evidence = f.dispatcher.app.order(to_cancel).unwrap().order;
    assert!(
        evidence.signature.is_some() && !evidence.photos.is_empty(),
        "the held evidence arrived"
    );

    // tech2 was not involved and never saw tech1's orders.
    assert!(f.tech2.app.order(same_field).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_completion_is_a_failed_sync_on_both_sides_then_fixed_and_resubmitted() {
    let mut f = fleet().await;
    let id = open_orders(&f.tech1, 1).remove(0);
    // While the technician is offline, the office adds a required step.
    f.proxy.set(Fault::Refuse);
    complete_with_evidence(
        &mut f.tech1,
        &id,
        outpost_core::photos::synthetic_photo(320, 240, 3),
    );
    f.proxy.set(Fault::None);
    f.dispatcher
        .app
        .edit_order(
            &id,
            OrderEdit {
                add_checklist: vec![ChecklistItem {
                    id: "meter".into(),
                    label: "Photograph the meter".into(),
                    required: true,
                    done: false,
                }],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    f.dispatcher.sync().await.unwrap();

    let report = f.tech1.sync().await.unwrap();
    assert_eq!(report.rejected, 1, "{report:?}");
    let failed = f.tech1.app.failed_syncs().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].order_id, id);
    assert!(
        failed[0]
            .field_errors
            .iter()
            .any(|e| e.field == "checklist.meter"),
        "{:?}",
        failed[0]
    );
    assert_eq!(
        f.tech1.app.order(&id).unwrap().sync_state,
        SyncState::Failed
    );
    // Later changes of that order wait behind it; other orders go on.
    f.tech1
        .app
        .edit_order(&id, note("meter photographed"))
        .unwrap();
    let other = open_orders(&f.tech1, 2)
        .into_iter()
        .find(|o| o != &id)
        .unwrap();
    f.tech1.app.edit_order(&other, note("unrelated")).unwrap();
    let report = f.tech1.sync().await.unwrap();
    assert_eq!(
        report.pushed, 1,
        "only the other order's change went: {report:?}"
    );

    // The dispatcher sees it on the server's side, with the payload.
    f.dispatcher.sync().await.unwrap();
    let fleet_failed = f.dispatcher.app.server_failed_syncs().unwrap();
    let record = fleet_failed
        .iter()
        .find(|r| r.order_id.to_string() == id)
        .expect("on the server");
    assert_eq!(record.username, "tech1");
    assert!(!record.mutation.ops.is_empty());

    // Edited (the new step ticked) and resubmitted: one new mutation supersedes it.
    let fix = vec![outpost_protocol::Op::Set(
        outpost_protocol::SetOp::ChecklistDone {
            item_id: "meter".into(),
            done: true,
        },
    )];
    f.tech1.app.retry_failed(&failed[0].id, fix).unwrap();
    let report = f.tech1.sync().await.unwrap();
    assert_eq!(
        report.remaining.pending + report.remaining.failed,
        0,
        "{report:?}"
    );
    f.dispatcher.sync().await.unwrap();
    assert_eq!(
        f.dispatcher.app.order(&id).unwrap().order.status,
        Status::Completed
    );
    assert_eq!(
        f.tech1.app.order(&id).unwrap().sync_state,
        SyncState::Synced
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_failed_change_rolls_back_visibly() {
    let mut f = fleet().await;
    let id = open_orders(&f.tech1, 1).remove(0);
    f.proxy.set(Fault::Refuse);
    complete_with_evidence(
        &mut f.tech1,
        &id,
        outpost_core::photos::synthetic_photo(320, 240, 4),
    );
    f.proxy.set(Fault::None);
    f.dispatcher
        .app
        .edit_order(
            &id,
            OrderEdit {
                add_checklist: vec![ChecklistItem {
                    id: "extra".into(),
                    label: "Extra step".into(),
                    required: true,
                    done: false,
                }],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    f.dispatcher.sync().await.unwrap();
    f.tech1.sync().await.unwrap();
    let failed = f.tech1.app.failed_syncs().unwrap();
    assert_eq!(
        f.tech1.app.order(&id).unwrap().order.status,
        Status::Completed,
        "optimistic until decided"
    );
    f.tech1.app.discard_failed(&failed[0].id).unwrap();
    let row = f.tech1.app.order(&id).unwrap();
    assert_ne!(
        row.order.status,
        Status::Completed,
        "the completion is rolled back"
    );
    assert!(f.tech1.app.failed_syncs().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_photo_upload_is_cut_mid_file_completes_with_the_exact_bytes() {
    let mut f = fleet().await;
    let id = open_orders(&f.tech1, 1).remove(0);
    // A camera photo: downscaled on import, and still too large for a batched upload,
    // so it goes resumably in chunks.
    let taken = outpost_core::photos::synthetic_photo(3000, 2250, 9);
    let row = complete_with_evidence(&mut f.tech1, &id, taken.clone());
    let hash = row.order.photos[0].hash.clone();
    let photo = f.tech1.app.attachment(&hash).unwrap();
    assert!(photo.len() < taken.len(), "downscaled on import");
    assert!(photo.len() > 48_000, "several chunks: {}", photo.len());
    let chunks = outpost_core::PassOptions {
        small_file_bytes: 8 * 1024,
        chunk_bytes: 16 * 1024,
        ..outpost_core::PassOptions::default()
    };

    f.proxy.set(Fault::ResetAfterRequestBytes(40_000));
    assert!(
        f.tech1.sync_with(chunks.clone()).await.is_err(),
        "the upload is cut mid-file"
    );
    f.proxy.set(Fault::None);
    let report = f.tech1.sync_with(chunks).await.unwrap();
    assert_eq!(report.remaining.pending, 0, "{report:?}");
    assert!(
        report.bytes_sent < photo.len(),
        "the upload resumed from the last stored byte rather than starting over: {report:?}"
    );

    f.dispatcher.sync().await.unwrap();
    let done = f.dispatcher.app.order(&id).unwrap().order;
    assert_eq!(done.status, Status::Completed);
    assert_eq!(done.photos[0].hash, hash);
    let bytes = f
        .dispatcher
        .app
        .download_attachment(&hash, &outpost_tests::fast_client())
        .await
        .unwrap();
    assert_eq!(bytes, photo, "the server holds the exact bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_metered_link_only_completion_evidence_travels_and_other_photos_wait() {
    let mut f = fleet().await;
    let ids = open_orders(&f.tech1, 2);
    f.tech1.app.set_defer_photos(true).unwrap();
    let extra = outpost_core::photos::synthetic_photo(800, 600, 21);
    let row = f
        .tech1
        .app
        .add_photos(
            &ids[0],
            vec![Evidence {
                bytes: extra,
                name: "meter.jpg".into(),
            }],
        )
        .unwrap();
    let extra_hash = row.order.photos.last().unwrap().hash.clone();
    let done = complete_with_evidence(
        &mut f.tech1,
        &ids[1],
        outpost_core::photos::synthetic_photo(800, 600, 22),
    );
    let evidence_hash = done.order.photos[0].hash.clone();
    let report = f.tech1.sync().await.unwrap();
    assert_eq!(report.remaining.pending, 0);

    f.dispatcher.sync().await.unwrap();
    assert_eq!(
        f.dispatcher.app.order(&ids[1]).unwrap().order.status,
        Status::Completed
    );
    let client = outpost_tests::fast_client();
    assert!(f
        .dispatcher
        .app
        .download_attachment(&evidence_hash, &client)
        .await
        .is_ok());
    assert!(
        f.dispatcher
            .app
            .download_attachment(&extra_hash, &client)
            .await
            .is_err(),
        "the other photo waits on the device"
    );
    assert!(
        f.tech1.app.attachment(&extra_hash).is_ok(),
        "and is kept there"
    );

    f.tech1.app.set_defer_photos(false).unwrap();
    f.tech1.sync().await.unwrap();
    assert!(f
        .dispatcher
        .app
        .download_attachment(&extra_hash, &client)
        .await
        .is_ok());
}

/// A completion refused by the server (the office added a required step meanwhile).
async fn refused_completion(f: &mut Fleet) -> (String, String) {
    let id = open_orders(&f.tech1, 1).remove(0);
    f.proxy.set(Fault::Refuse);
    complete_with_evidence(
        &mut f.tech1,
        &id,
        outpost_core::photos::synthetic_photo(320, 240, 31),
    );
    f.proxy.set(Fault::None);
    f.dispatcher
        .app
        .edit_order(
            &id,
            OrderEdit {
                add_checklist: vec![ChecklistItem {
                    id: "sign-off".into(),
                    label: "Office sign-off".into(),
                    required: true,
                    done: false,
                }],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    f.dispatcher.sync().await.unwrap();
    f.tech1.sync().await.unwrap();
    let failed = f.tech1.app.failed_syncs().unwrap();
    assert_eq!(failed.len(), 1);
    (id, failed[0].id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatchers_decision_on_a_failed_sync_reaches_the_technician_and_clears_it() {
    let mut f = fleet().await;
    let (id, _) = refused_completion(&mut f).await;
    f.dispatcher.sync().await.unwrap();
    let record = f
        .dispatcher
        .app
        .server_failed_syncs()
        .unwrap()
        .into_iter()
        .find(|r| r.order_id.to_string() == id)
        .expect("the fleet's failed sync");
    // The office dismisses it (the refused change is not applied).
    f.dispatcher
        .app
        .resolve_failed_sync(&record, Vec::new())
        .unwrap();
    f.dispatcher.sync().await.unwrap();
    f.tech1.sync().await.unwrap();
    assert!(
        f.tech1.app.failed_syncs().unwrap().is_empty(),
        "cleared by the dispatcher's decision"
    );
    assert_ne!(
        f.tech1.app.order(&id).unwrap().sync_state,
        SyncState::Failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_reassigned_away_while_it_holds_unsynced_work_stays_marked() {
    let mut f = fleet().await;
    let (id, _) = refused_completion(&mut f).await;
    f.dispatcher.app.assign_order(&id, "tech2").unwrap();
    f.dispatcher.sync().await.unwrap();
    f.tech1.sync().await.unwrap();
    let row = f
        .tech1
        .app
        .order(&id)
        .expect("kept: it carries a failed change");
    assert_eq!(row.reassigned_to.as_deref(), Some("tech2"));
    assert_eq!(row.sync_state, SyncState::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_shows_and_discards_failed_syncs() {
    let mut f = fleet().await;
    let (id, failed_id) = refused_completion(&mut f).await;
    let cli = |args: &[&str]| {
        std::process::Command::new(outpost_tests::bin("outpost"))
            .arg("--data-dir")
            .arg(f.tech1.dir.path())
            .args(args)
            .env("OUTPOST_DB_KEY", &f.tech1.key)
            .output()
            .unwrap()
    };
    let out = cli(&["--json", "failed", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["order_id"], id.as_str());
    let out = cli(&["failed", "show", &failed_id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("reason:") && text.contains("payload:"),
        "{text}"
    );
    let out = cli(&["failed", "discard", &failed_id]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "no confirmation from a script: refused"
    );
    let out = cli(&["--json", "orders", "show", &id]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["sync_state"], "failed");
    let out = cli(&["failed", "discard", &failed_id, "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(f.tech1.app.failed_syncs().unwrap().is_empty());
    let out = cli(&["--json", "conflicts", "list"]);
    assert!(out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_refused_by_the_storage_quota_is_a_failed_sync_with_that_reason_never_a_retry_loop(
) {
    let tmp = tempfile::tempdir().unwrap();
    let db = seeded_db(tmp.path());
    // Each user may store 20,000 bytes of files: the signature fits, the photo does not.
    let server = Server::start(&db, &["--attachment-quota-bytes", "20000"]);
    let proxy = Proxy::start(server.addr).await;
    let mut tech1 = Device::primed(&proxy.url(), "tech1").await;
    let id = open_orders(&tech1, 1).remove(0);
    let photo = outpost_core::photos::synthetic_photo(3000, 2250, 31);
    let row = complete_with_evidence(&mut tech1, &id, photo);
    let hash = row.order.photos[0].hash.clone();
    assert!(tech1.app.attachment(&hash).unwrap().len() > 20_000);

    let report = tech1.sync().await.unwrap();
    let failed = tech1.app.failed_syncs().unwrap();
    assert_eq!(failed.len(), 1, "{report:?}");
    assert_eq!(failed[0].order_id, id);
    assert_eq!(failed[0].code, "quota_exceeded", "{:?}", failed[0]);
    assert!(
        failed[0].message.contains("storage quota"),
        "the reason reaches the technician: {}",
        failed[0].message
    );
    assert_eq!(tech1.app.order(&id).unwrap().sync_state, SyncState::Failed);

    // Never a retry loop: further passes (backoff ignored) send no file and no
    // completion, and the failed sync stays one, waiting for a person.
    proxy.record_requests();
    for _ in 0..3 {
        tech1.sync().await.unwrap();
    }
    let sent: Vec<String> = proxy
        .request_heads()
        .into_iter()
        .filter(|h| h.contains("/attachments") || h.starts_with("POST /v1/sync/push"))
        .collect();
    assert!(sent.is_empty(), "nothing is sent again: {sent:?}");
    assert_eq!(tech1.app.failed_syncs().unwrap().len(), 1);
    drop(server);
}

/// Issue 19 item 7 (rest): past the server's budget of refused changes kept for one
/// person, a refusal is not stored there; the device still sets the change aside in
/// front of the technician, with the reason and where the change is, never re-sends it
/// by itself, and the technician can send it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_past_the_servers_budget_for_refused_changes_stays_in_front_of_the_technician() {
    // No refused change fits a 1-byte budget.
    let mut f = fleet_with(&["--failed-sync-budget-bytes", "1"]).await;
    let (id, _) = refused_completion(&mut f).await;
    let failed = f.tech1.app.failed_syncs().unwrap();
    assert!(
        failed[0].message.contains("stays on this device"),
        "the technician reads where the change is: {}",
        failed[0].message
    );
    assert_eq!(
        f.tech1.app.order(&id).unwrap().sync_state,
        SyncState::Failed
    );
    // The server kept no record of it.
    f.dispatcher.sync().await.unwrap();
    assert!(
        !f.dispatcher
            .app
            .server_failed_syncs()
            .unwrap()
            .iter()
            .any(|r| r.order_id.to_string() == id),
        "nothing stored on the server"
    );
    f.proxy.record_requests();
    for _ in 0..3 {
        f.tech1.sync().await.unwrap();
    }
    let sent: Vec<String> = f
        .proxy
        .request_heads()
        .into_iter()
        .filter(|h| h.starts_with("POST /v1/sync/push"))
        .collect();
    assert!(sent.is_empty(), "nothing is sent again by itself: {sent:?}");
    assert_eq!(f.tech1.app.failed_syncs().unwrap().len(), 1);
}
