//! The server's sync rules where a close reading found holes (issue 14): a batch that
//! goes on after a refusal, resolutions that overwrite newer data or skip the evidence
//! check, bases from another timeline, an edit behind an unacknowledged create, a
//! reused mutation id nobody sees, and the receive time beside the device's time; and
//! what a device reports it has not sent (issue 15 item 5). Over real HTTP, on both
//! backends.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use outpost_protocol::mutation::ListItem;
use outpost_protocol::wire::*;
use outpost_protocol::*;
use uuid::Uuid;

both!(
    a_sync_client_of_the_current_and_the_previous_protocol_is_served,
    later_changes_of_an_order_wait_behind_a_refused_one_in_the_same_push,
    later_changes_of_an_order_wait_behind_a_whole_hold_in_the_same_push,
    a_resolution_never_overwrites_a_value_set_after_the_person_looked,
    a_resolution_that_completes_an_order_needs_its_evidence_on_the_server,
    a_base_newer_than_the_server_has_is_unknown_and_conflicts_instead_of_overwriting,
    an_edit_behind_an_unacknowledged_own_create_is_held_when_the_order_was_reassigned,
    a_reused_mutation_id_is_kept_as_a_failed_sync_for_dispatchers,
    applied_changes_and_records_keep_the_receive_time_beside_the_device_time,
    the_latest_report_of_unsent_work_is_kept_per_device_and_never_needed,
    the_fleet_table_has_each_devices_push_pull_and_failed_syncs_and_the_unseen_one_first,
);

fn title(t: &str) -> Vec<Op> {
    vec![Op::Set(SetOp::Title(t.into()))]
}

fn part(sku: &str) -> Op {
    Op::Add(ListItem::PartsUsed(PartUsed {
        id: Uuid::now_v7(),
        sku: sku.into(),
        quantity: Quantity(1000),
    }))
}

async fn order_now(d: &Session, id: Uuid) -> WorkOrder {
    d.get(&format!("{}/{id}", paths::ORDERS))
        .send()
        .await
        .expect("get order")
        .json()
        .await
        .expect("order")
}

async fn conflicts(d: &Session) -> Vec<ConflictRecord> {
    let list: ConflictList = d
        .get(&format!("{}?status=all", paths::CONFLICTS))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list.items
}

async fn failed_syncs_json(d: &Session) -> Vec<serde_json::Value> {
    let list: serde_json::Value = d
        .get(&format!("{}?status=all", paths::FAILED_SYNCS))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list["items"].as_array().expect("items").clone()
}

async fn a_sync_client_of_the_current_and_the_previous_protocol_is_served(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    for version in ["1", "2"] {
        let resp = d
            .http
            .post(d.url(paths::PULL))
            .bearer_auth(&d.tokens.access_token)
            .header(PROTOCOL_HEADER, version)
            .json(&PullRequest::default())
            .send()
            .await
            .expect("pull");
        assert_eq!(resp.status(), 200, "protocol {version} is served");
    }
}

/// Item 1: a refused change and the order's later changes in the same push.
async fn later_changes_of_an_order_wait_behind_a_refused_one_in_the_same_push(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let refused = t1.mutation(order.id, MutationKind::Update, 1, vec![part("NO-SUCH-SKU")]);
    let later = t1.mutation(order.id, MutationKind::Update, 1, title("After the parts"));
    let outcomes = t1.push(vec![refused, later]).await;
    assert!(
        matches!(&outcomes[0], PushOutcome::Rejected(r) if r.code == ErrorCode::UnknownSku),
        "{:?}",
        outcomes[0]
    );
    assert!(
        !outcomes[1].is_acknowledged(),
        "the later change stays queued behind the refused one: {:?}",
        outcomes[1]
    );
    assert_eq!(
        order_now(&d, order.id).await.title,
        "Replace pump seal",
        "nothing of the later change applied"
    );
}

/// Item 1: a whole hold (an edit behind another device's cancellation) and a later
/// note of the same order in the same push.
async fn later_changes_of_an_order_wait_behind_a_whole_hold_in_the_same_push(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let d2 = s.login("admin").await;
    let order = d.create_order(Some("tech1")).await;
    let PushOutcome::Applied(_) = d2
        .push1(d2.mutation(
            order.id,
            MutationKind::Cancel,
            1,
            vec![Op::Set(SetOp::Status(Status::Cancelled))],
        ))
        .await
    else {
        panic!("cancelled")
    };
    let edit = d.mutation(order.id, MutationKind::Update, 1, title("Edited offline"));
    let note = d.mutation(
        order.id,
        MutationKind::Update,
        1,
        vec![Op::AppendNote {
            note: NoteEntry {
                id: Uuid::now_v7(),
                author: "dispatcher".into(),
                text: "after the edit".into(),
                at: chrono::Utc::now(),
            },
        }],
    );
    let outcomes = d.push(vec![edit, note]).await;
    assert!(
        matches!(&outcomes[0], PushOutcome::AppliedWithConflicts(c) if c.conflict_kind == ConflictKind::UpdateAfterCancel),
        "{:?}",
        outcomes[0]
    );
    assert!(
        !outcomes[1].is_acknowledged(),
        "the note waits behind the held edit: {:?}",
        outcomes[1]
    );
    assert!(order_now(&d, order.id).await.notes.is_empty());
}

/// Item 2: a resolution is checked against what the person saw, not only the record's
/// version.
async fn a_resolution_never_overwrites_a_value_set_after_the_person_looked(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let admin = s.login("admin").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(order.id, MutationKind::Update, 1, title("Dispatcher's")))
        .await
    else {
        panic!("applies")
    };
    let PushOutcome::AppliedWithConflicts(c) = t1
        .push1(t1.mutation(order.id, MutationKind::Update, 1, title("Technician's")))
        .await
    else {
        panic!("a field conflict")
    };
    let record = conflicts(&d)
        .await
        .into_iter()
        .find(|r| r.id == c.conflict_id)
        .expect("listed");
    // After the person opened the conflict, someone else retitles the order.
    let PushOutcome::Applied(_) = admin
        .push1(admin.mutation(order.id, MutationKind::Update, 2, title("Newest")))
        .await
    else {
        panic!("applies")
    };
    let resolve = record.resolve_mutation(
        &ResolutionChoice::AcceptDevice,
        Uuid::now_v7(),
        d.device,
        chrono::Utc::now(),
    );
    let outcome = d.push1(resolve).await;
    assert!(outcome.is_acknowledged(), "{outcome:?}");
    assert_eq!(
        order_now(&d, order.id).await.title,
        "Newest",
        "the value set after the person looked is not overwritten"
    );
    let open: Vec<_> = conflicts(&d)
        .await
        .into_iter()
        .filter(|r| r.order_id == order.id && r.status == RecordStatus::Open)
        .collect();
    assert_eq!(open.len(), 1, "the changed field is a new conflict");
    assert_eq!(open[0].fields[0].field, "title");
    assert_eq!(
        open[0].fields[0].server,
        Some(SetOp::Title("Newest".into()))
    );
    assert_eq!(
        open[0].fields[0].device,
        SetOp::Title("Technician's".into())
    );
}

/// Item 3: a resolution that completes an order answers `missing_attachments` as a push
/// does.
async fn a_resolution_that_completes_an_order_needs_its_evidence_on_the_server(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let PushOutcome::Rejected(r) = t1
        .push1(t1.mutation(order.id, MutationKind::Update, 1, vec![part("NO-SUCH-SKU")]))
        .await
    else {
        panic!("refused")
    };
    let failed_id = r.failed_sync_id.expect("a failed sync");
    let record: FailedSyncRecord = failed_syncs_json(&d)
        .await
        .into_iter()
        .map(json_of::<FailedSyncRecord>)
        .find(|f| f.id == failed_id)
        .expect("listed");
    let sig = "ab".repeat(32);
    let ops = vec![
        Op::Set(SetOp::ChecklistDone {
            item_id: "c1".into(),
            done: true,
        }),
        Op::Set(SetOp::Signature(Some(Signature {
            hash: sig.clone(),
            signer: "A. Customer".into(),
        }))),
        Op::Set(SetOp::Status(Status::Completed)),
        Op::Set(SetOp::CompletedAt(Some(chrono::Utc::now()))),
    ];
    let outcome = d
        .push1(record.resolve_mutation(ops, Uuid::now_v7(), d.device, chrono::Utc::now()))
        .await;
    assert_eq!(
        outcome,
        PushOutcome::MissingAttachments { hashes: vec![sig] },
        "the signature is not on the server"
    );
    assert_eq!(order_now(&d, order.id).await.status, Status::Scheduled);
}

/// Item 4: a base the server never had at this number (a timeline lost in a restore)
/// is unknown: a `set` of a field another device changed conflicts.
async fn a_base_newer_than_the_server_has_is_unknown_and_conflicts_instead_of_overwriting(
    kind: Kind,
) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(
            order.id,
            MutationKind::Update,
            1,
            title("Set after the restore"),
        ))
        .await
    else {
        panic!("applies")
    };
    // The technician's edit was made on version 5 of the lost timeline.
    let outcome = t1
        .push1(t1.mutation(
            order.id,
            MutationKind::Update,
            5,
            title("From the lost timeline"),
        ))
        .await;
    assert!(
        matches!(&outcome, PushOutcome::AppliedWithConflicts(c) if c.fields == ["title"]),
        "{outcome:?}"
    );
    assert_eq!(order_now(&d, order.id).await.title, "Set after the restore");
}

/// Item 5: an edit made on the device's own create before the create was acknowledged
/// carries base 0.
async fn an_edit_behind_an_unacknowledged_own_create_is_held_when_the_order_was_reassigned(
    kind: Kind,
) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let id = Uuid::now_v7();
    let PushOutcome::Applied(created) = t1
        .push1(t1.mutation(id, MutationKind::Create, 0, title("Found in the field")))
        .await
    else {
        panic!("created")
    };
    assert_eq!(created.version, 1);
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(
            id,
            MutationKind::Assign,
            1,
            vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
        ))
        .await
    else {
        panic!("reassigned")
    };
    let outcome = t1
        .push1(t1.mutation(id, MutationKind::Update, 0, title("Edited before the ack")))
        .await;
    assert!(
        matches!(&outcome, PushOutcome::AppliedWithConflicts(c) if c.conflict_kind == ConflictKind::Reassigned),
        "held as reassigned, not refused: {outcome:?}"
    );
}

/// Item 6: `mutation_id_reused` is recorded as a failed sync with its payload.
async fn a_reused_mutation_id_is_kept_as_a_failed_sync_for_dispatchers(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let m = t1.mutation(order.id, MutationKind::Update, 1, title("First body"));
    let PushOutcome::Applied(_) = t1.push1(m.clone()).await else {
        panic!("applies")
    };
    let mut reused = m.clone();
    reused.ops = title("Another body");
    let PushOutcome::Rejected(r) = t1.push1(reused).await else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::MutationIdReused);
    let id = r.failed_sync_id.expect("recorded as a failed sync");
    let record = failed_syncs_json(&d)
        .await
        .into_iter()
        .find(|f| f["id"] == id.to_string())
        .expect("dispatchers see it");
    assert_eq!(record["code"], "mutation_id_reused");
    assert_eq!(
        record["mutation"]["ops"][0]["value"], "Another body",
        "with the payload that was refused"
    );
}

/// Item 7: the server's receive time beside the device's time.
async fn applied_changes_and_records_keep_the_receive_time_beside_the_device_time(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let device_time = chrono::DateTime::parse_from_rfc3339("2020-01-02T03:04:05Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let mut m = t1.mutation(order.id, MutationKind::Update, 1, title("Offline for long"));
    m.device_time = device_time;
    let PushOutcome::Applied(_) = t1.push1(m.clone()).await else {
        panic!("applies")
    };
    let id = order.id.to_string();
    let rows =
        s.db.read(move |sql| {
            sql.query(
                "SELECT created_us, device_us FROM changes WHERE entity_id = ?1 ORDER BY seq DESC",
                &[id.into()],
            )
        })
        .await
        .expect("the change log keeps the device's time");
    let (received_us, device_us) = (
        rows[0].i64(0).expect("receive time"),
        rows[0].opt_i64(1).expect("device time"),
    );
    assert_eq!(device_us, Some(device_time.timestamp_micros()));
    assert!(received_us > device_time.timestamp_micros());

    // A conflict and a failed sync carry both.
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(order.id, MutationKind::Update, 2, title("Dispatcher's")))
        .await
    else {
        panic!("applies")
    };
    let mut m = t1.mutation(order.id, MutationKind::Update, 2, title("Technician's"));
    m.device_time = device_time;
    let PushOutcome::AppliedWithConflicts(c) = t1.push1(m).await else {
        panic!("conflict")
    };
    let list: serde_json::Value = d
        .get(paths::CONFLICTS)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let record = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|r| r["id"] == c.conflict_id.to_string())
        .expect("listed")
        .clone();
    assert_eq!(record["device_time"], "2020-01-02T03:04:05Z");
    assert!(record["created_at"].is_string(), "the receive time");
    let mut m = t1.mutation(order.id, MutationKind::Update, 3, vec![part("NO-SUCH-SKU")]);
    m.device_time = device_time;
    let PushOutcome::Rejected(r) = t1.push1(m).await else {
        panic!("refused")
    };
    let failed = failed_syncs_json(&d)
        .await
        .into_iter()
        .find(|f| f["id"] == r.failed_sync_id.expect("recorded").to_string())
        .expect("listed");
    assert_eq!(failed["device_time"], "2020-01-02T03:04:05Z");
    assert!(failed["received_at"].is_string(), "the receive time");
}

/// Issue 15 item 5: the `x-outpost-unsent` header is kept per device (the latest
/// figures), is optional, and an unreadable value never fails a request.
async fn the_latest_report_of_unsent_work_is_kept_per_device_and_never_needed(kind: Kind) {
    let s = TestServer::start(kind).await;
    let t1 = s.login("tech1").await;
    let device = t1.device;
    let kept = || {
        let db = s.db.clone();
        async move {
            db.read(move |sql| outpost_server::repo::device_unsent(sql, device, "tech1"))
                .await
                .expect("read the figures")
        }
    };
    let pull_with = |value: Option<&'static str>| {
        let mut rb = t1.post(paths::PULL).json(&PullRequest {
            cursor: None,
            limit: Some(10),
            max_bytes: None,
            confirmed: Vec::new(),
        });
        if let Some(v) = value {
            rb = rb.header(UNSENT_HEADER, v);
        }
        async move { rb.send().await.expect("pull").status() }
    };

    assert_eq!(pull_with(None).await, 200, "a request without it is served");
    assert_eq!(kept().await, None, "nothing reported yet");

    let before = chrono::Utc::now().timestamp_micros();
    assert_eq!(
        pull_with(Some("count=3, set_aside=1, oldest_secs=600")).await,
        200
    );
    let f = kept().await.expect("kept");
    assert_eq!((f.count, f.set_aside), (3, 1));
    let oldest = f.oldest_unsent_us.expect("the oldest change's time");
    assert!(
        (before - 601_000_000..=before - 599_000_000 + 5_000_000).contains(&oldest),
        "ten minutes before the request, in the server's time: {oldest} vs {before}"
    );

    assert_eq!(pull_with(Some("count=lots")).await, 200, "never refused");
    assert_eq!(kept().await, Some(f), "an unreadable value changes nothing");

    assert_eq!(pull_with(Some("count=0")).await, 200);
    let f = kept().await.expect("kept");
    assert_eq!(
        (f.count, f.set_aside, f.oldest_unsent_us),
        (0, 0, None),
        "all sent"
    );
}

/// Issue 21 item 1: the server records each device's last push and pull and its app
/// version; `GET /v1/fleet` puts a device unseen past the limit first, counts a
/// device's open failed syncs, and answers technicians 403.
async fn the_fleet_table_has_each_devices_push_pull_and_failed_syncs_and_the_unseen_one_first(
    kind: Kind,
) {
    let clock = MovableClock::new();
    let cfg = outpost_server::ServerConfig {
        clock: clock.clone(),
        ..test_config()
    };
    let s = TestServer::start_with(kind, cfg).await;
    let d = s.login("dispatcher").await;
    let order = d.create_order(Some("tech1")).await;
    let t2 = s.login("tech2").await;
    let pulled = t2
        .post(paths::PULL)
        .header("user-agent", "outpost/9.8.7")
        .json(&PullRequest::default())
        .send()
        .await
        .expect("pull");
    assert_eq!(pulled.status(), 200);
    clock.advance(std::time::Duration::from_secs(2 * 24 * 3600));
    // Two days on, the dispatcher signs in again on the same device.
    let d = s.login_device("dispatcher", d.device).await;

    let t1 = s.login("tech1").await;
    t1.pull(None, None).await;
    // A technician may not cancel: refused, a failed sync of tech1's device.
    let refused = t1
        .push1(t1.mutation(
            order.id,
            MutationKind::Cancel,
            order.version,
            vec![Op::Set(SetOp::Status(Status::Cancelled))],
        ))
        .await;
    assert!(matches!(refused, PushOutcome::Rejected(_)), "{refused:?}");

    let table: outpost_protocol::fleet::FleetHealth = d
        .get(paths::FLEET)
        .send()
        .await
        .expect("fleet")
        .json()
        .await
        .expect("a fleet table");
    let rows = &table.items;
    assert_eq!(rows[0].username, "tech2", "{rows:#?}");
    assert!(rows[0].stale);
    assert!(rows[0].last_pull.is_some() && rows[0].last_push.is_none());
    assert_eq!(rows[0].app_version.as_deref(), Some("9.8.7"));
    assert_eq!(rows[1].username, "tech1", "{rows:#?}");
    assert_eq!(
        (rows[1].device_id, rows[1].open_failed_syncs),
        (t1.device, 1)
    );
    assert!(!rows[1].stale && rows[1].last_push.is_some() && rows[1].last_pull.is_some());

    // A week's limit: nobody is late.
    let week: outpost_protocol::fleet::FleetHealth = d
        .get(&format!("{}?stale_after_secs=604800", paths::FLEET))
        .send()
        .await
        .expect("fleet")
        .json()
        .await
        .expect("a fleet table");
    assert!(week.items.iter().all(|r| !r.stale));

    let (status, body) = error_of(t1.get(paths::FLEET).send().await.expect("fleet")).await;
    assert_eq!((status, body.code), (403, ErrorCode::Forbidden));
}
