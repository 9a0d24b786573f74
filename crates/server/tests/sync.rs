//! Push and pull over real HTTP: idempotency, conflicts, completions with evidence,
//! reassignment, scope, stock, priming, deltas and resync — on both backends.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use outpost_protocol::mutation::{EntityKind, ListItem};
use outpost_protocol::wire::*;
use outpost_protocol::*;
use uuid::Uuid;

fn title(t: &str) -> Vec<Op> {
    vec![Op::Set(SetOp::Title(t.into()))]
}

fn note(text: &str) -> Op {
    Op::AppendNote {
        note: NoteEntry {
            id: Uuid::now_v7(),
            author: "tech1".into(),
            text: text.into(),
            at: chrono::Utc::now(),
        },
    }
}

both!(
    a_repeated_push_is_a_duplicate_and_a_reused_id_is_refused,
    a_conflicting_set_waits_for_a_person_and_is_resolved_once,
    a_completion_waits_for_its_attachments_then_applies,
    a_completion_after_a_cancellation_is_kept_as_a_conflict,
    a_tick_and_a_completion_behind_a_cancellation_are_both_held,
    a_reassignment_reaches_both_technicians_and_a_late_push_is_a_conflict,
    a_technician_never_sees_or_changes_another_technicians_order,
    a_rejection_is_recorded_as_a_failed_sync_and_can_be_dismissed,
    parts_used_decrement_stock_exactly_once,
    a_push_moving_one_items_stock_many_times_writes_the_item_once,
    the_stock_effect_a_dispatcher_previews_is_what_the_server_applies,
    priming_pages_are_bounded_ordered_and_followed_by_deltas,
    a_foreign_or_pruned_cursor_needs_a_resync,
    a_technicians_new_order_is_assigned_to_them,
    every_earlier_version_of_an_order_is_rebuilt_from_its_history,
    a_write_through_another_instance_is_never_missed,
    a_batch_takes_one_gap_free_range_of_the_change_log,
    a_pull_leaves_out_only_the_order_rows_of_a_push_the_device_confirms,
);

/// Sequences in the change log after `after`, in order.
async fn seqs_after(s: &TestServer, after: u64) -> Vec<u64> {
    s.db.read(move |sql| {
        sql.query(
            "SELECT seq FROM changes WHERE seq > ?1 ORDER BY seq",
            &[after.into()],
        )?
        .iter()
        .map(|r| r.u64(0))
        .collect()
    })
    .await
    .expect("read the log")
}

/// One push whose mutations write every kind of change-log row (an order, a stock
/// item, a `left_scope` notice, a conflict, a failed sync) takes the sequences right
/// after the last one, without a gap, and `last_seq` is the last of them; a duplicate
/// in the next push writes nothing and the next row follows on.
async fn a_batch_takes_one_gap_free_range_of_the_change_log(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let d2 = s.login("dispatcher").await;
    let order = d.create_order(Some("tech1")).await;
    let other = d.create_order(Some("tech1")).await;
    // Another device changes the title after version 1.
    let PushOutcome::Applied(_) = d2
        .push1(d2.mutation(order.id, MutationKind::Update, 1, title("From d2")))
        .await
    else {
        panic!("applies")
    };
    let before = s.last_seq().await;
    assert_eq!(seqs_after(&s, 0).await.last(), Some(&before));
    let new_id = uuid::Uuid::now_v7();
    let create = d.mutation(new_id, MutationKind::Create, 0, title("New order"));
    let parts = d.mutation(
        order.id,
        MutationKind::Update,
        2,
        vec![
            Op::Add(ListItem::PartsUsed(PartUsed {
                id: Uuid::now_v7(),
                sku: outpost_server::seed::demo_sku(3),
                quantity: Quantity(2000),
            })),
            note("parts"),
        ],
    );
    let reassign = d.mutation(
        other.id,
        MutationKind::Assign,
        1,
        vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
    );
    let conflicting = d.mutation(order.id, MutationKind::Update, 1, title("From d"));
    let refused = d.mutation(order.id, MutationKind::Update, 3, title(" "));
    let outcomes = d
        .push(vec![create.clone(), parts, reassign, conflicting, refused])
        .await;
    assert!(
        matches!(outcomes[0], PushOutcome::Applied(_)),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[1], PushOutcome::Applied(_)),
        "{:?}",
        outcomes[1]
    );
    assert!(
        matches!(outcomes[2], PushOutcome::Applied(_)),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], PushOutcome::AppliedWithConflicts(_)),
        "{:?}",
        outcomes[3]
    );
    assert!(
        matches!(outcomes[4], PushOutcome::Rejected(_)),
        "{:?}",
        outcomes[4]
    );
    let after = s.last_seq().await;
    // create 1, parts 2 (order, item), reassign 2 (left_scope, order), conflict 1,
    // failed sync 1.
    assert_eq!(after - before, 7);
    assert_eq!(
        seqs_after(&s, before).await,
        (before + 1..=after).collect::<Vec<_>>(),
        "gap-free, in order, ending at last_seq"
    );
    let again = d
        .push(vec![
            create,
            d.mutation(new_id, MutationKind::Update, 1, title("Newer")),
        ])
        .await;
    assert!(
        matches!(again[0], PushOutcome::Duplicate { .. }),
        "{:?}",
        again[0]
    );
    assert_eq!(s.last_seq().await, after + 1);
    assert_eq!(
        seqs_after(&s, before).await,
        (before + 1..=after + 1).collect::<Vec<_>>()
    );
}

async fn a_repeated_push_is_a_duplicate_and_a_reused_id_is_refused(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let order = d.create_order(Some("tech1")).await;
    assert_eq!(order.number, Some(1), "the server numbers orders");
    let m = d.mutation(
        order.id,
        MutationKind::Update,
        order.version,
        title("New title"),
    );
    let first = d.push1(m.clone()).await;
    let PushOutcome::Applied(a) = &first else {
        panic!("applies: {first:?}")
    };
    assert_eq!(a.version, 2);
    let seq = s.last_seq().await;
    let again = d.push1(m.clone()).await;
    let mut recorded = first.clone();
    if let PushOutcome::Applied(a) = &mut recorded {
        a.order = None;
    }
    assert_eq!(
        again,
        PushOutcome::Duplicate {
            first: Box::new(recorded)
        },
        "the recorded first result (without the row) comes back"
    );
    assert_eq!(s.last_seq().await, seq, "a duplicate writes nothing");
    let mut other = m.clone();
    other.ops = title("Another body");
    let PushOutcome::Rejected(r) = d.push1(other).await else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::MutationIdReused);
    // A set to the value already there changes nothing and bumps no version.
    let same = d
        .push1(d.mutation(order.id, MutationKind::Update, 2, title("New title")))
        .await;
    let PushOutcome::Applied(a) = same else {
        panic!("applies")
    };
    assert!(!a.changed);
    assert_eq!(a.version, 2);
}

async fn a_conflicting_set_waits_for_a_person_and_is_resolved_once(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    // The dispatcher retitles; the technician, offline at v1, also retitles and notes.
    d.push1(d.mutation(
        order.id,
        MutationKind::Update,
        1,
        title("Dispatcher's title"),
    ))
    .await;
    let mut ops = title("Technician's title");
    ops.push(note("Found a leak"));
    let PushOutcome::AppliedWithConflicts(c) = t1
        .push1(t1.mutation(order.id, MutationKind::Update, 1, ops))
        .await
    else {
        panic!("applies with conflicts")
    };
    assert_eq!(c.fields, vec!["title".to_string()]);
    assert_eq!(c.conflict_kind, ConflictKind::Fields);
    let after = c.order.expect("order");
    assert_eq!(
        after.title, "Dispatcher's title",
        "the held field keeps the server's value"
    );
    assert_eq!(after.notes.len(), 1, "the note applied");
    // The technician's own follow-up edit never conflicts with their earlier one.
    let PushOutcome::Applied(_) = t1
        .push1(t1.mutation(order.id, MutationKind::Update, 1, vec![note("second")]))
        .await
    else {
        panic!("own edits never conflict")
    };
    // Dispatchers list it, with both values.
    let list: ConflictList = d
        .get(paths::CONFLICTS)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let record = list
        .items
        .iter()
        .find(|r| r.id == c.conflict_id)
        .expect("listed")
        .clone();
    assert_eq!(
        record.fields[0].server,
        Some(SetOp::Title("Dispatcher's title".into()))
    );
    assert_eq!(
        record.fields[0].base,
        Some(SetOp::Title("Replace pump seal".into()))
    );
    // It travels through pull to the technician.
    let (changes, _, _) = t1.pull_all(None, 100).await;
    assert!(changes
        .iter()
        .any(|ch| matches!(&ch.change, ChangeBody::Conflict(r) if r.id == c.conflict_id)));
    // The dispatcher accepts the technician's version.
    let r = record.resolve_mutation(
        &ResolutionChoice::AcceptDevice,
        Uuid::now_v7(),
        d.device,
        chrono::Utc::now(),
    );
    let PushOutcome::Applied(done) = d.push1(r).await else {
        panic!("resolves")
    };
    assert_eq!(done.order.expect("order").title, "Technician's title");
    // A second resolution gets already_resolved with the outcome.
    let r2 = record.resolve_mutation(
        &ResolutionChoice::KeepServer,
        Uuid::now_v7(),
        d.device,
        chrono::Utc::now(),
    );
    let PushOutcome::Rejected(rej) = d.push1(r2).await else {
        panic!("already resolved")
    };
    assert_eq!(rej.code, ErrorCode::AlreadyResolved);
    let res = rej.resolution.expect("outcome");
    assert_eq!(res.outcome, ResolutionOutcome::AcceptedDevice);
    assert_eq!(res.decided_by, "dispatcher");
    let open: ConflictList = d
        .get(paths::CONFLICTS)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(
        open.items.iter().all(|r| r.id != c.conflict_id),
        "no longer open"
    );
}

async fn upload_chunked(sess: &Session, data: &[u8], chunk: usize) -> AttachmentStatus {
    let hash = sha256_hex(data);
    let mut offset = 0;
    let mut last = None;
    while offset < data.len() {
        let end = (offset + chunk).min(data.len());
        let resp = sess
            .http
            .put(sess.url(&format!(
                "/v1/attachments/{hash}?offset={offset}&total={}",
                data.len()
            )))
            .bearer_auth(&sess.tokens.access_token)
            .body(data[offset..end].to_vec())
            .send()
            .await
            .expect("chunk");
        assert_eq!(resp.status(), 200);
        let st: AttachmentStatus = resp.json().await.expect("status");
        offset = st.received as usize;
        last = Some(st);
    }
    last.expect("uploaded")
}

fn completion_ops(sig: &str, photo: &str) -> Vec<Op> {
    vec![
        Op::Set(SetOp::ChecklistDone {
            item_id: "c1".into(),
            done: true,
        }),
        Op::Add(ListItem::Photos(PhotoRef {
            hash: photo.into(),
            caption: "after".into(),
            media_type: "image/jpeg".into(),
        })),
        Op::Set(SetOp::Signature(Some(Signature {
            hash: sig.into(),
            signer: "Grace Hopper".into(),
        }))),
    ]
}

async fn a_completion_waits_for_its_attachments_then_applies(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let order = d.create_order(Some("tech1")).await;
    let photo: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let sig = b"signature-image-bytes".to_vec();
    let (ph, sh) = (sha256_hex(&photo), sha256_hex(&sig));
    let complete = t1.mutation(
        order.id,
        MutationKind::Complete,
        1,
        completion_ops(&sh, &ph),
    );
    let seq = s.last_seq().await;
    let PushOutcome::MissingAttachments { mut hashes } = t1.push1(complete.clone()).await else {
        panic!("missing")
    };
    hashes.sort();
    let mut want = vec![ph.clone(), sh.clone()];
    want.sort();
    assert_eq!(hashes, want);
    assert_eq!(s.last_seq().await, seq, "nothing written");
    // Upload the photo in chunks; a dropped connection resumes from the stored byte.
    let first = t1
        .http
        .put(t1.url(&format!(
            "/v1/attachments/{ph}?offset=0&total={}",
            photo.len()
        )))
        .bearer_auth(&t1.tokens.access_token)
        .body(photo[..100_000].to_vec())
        .send()
        .await
        .expect("chunk");
    assert_eq!(first.status(), 200);
    let wrong = t1
        .http
        .put(t1.url(&format!(
            "/v1/attachments/{ph}?offset=0&total={}",
            photo.len()
        )))
        .bearer_auth(&t1.tokens.access_token)
        .body(photo[..10].to_vec())
        .send()
        .await
        .expect("chunk");
    let (status, body) = error_of(wrong).await;
    assert_eq!((status, body.code), (409, ErrorCode::OffsetMismatch));
    let st: AttachmentStatus = t1
        .get(&format!("/v1/attachments/{ph}/status"))
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("j");
    assert_eq!(st.received, 100_000);
    let mut offset = st.received as usize;
    while offset < photo.len() {
        let end = (offset + 64 * 1024).min(photo.len());
        let st: AttachmentStatus = t1
            .http
            .put(t1.url(&format!(
                "/v1/attachments/{ph}?offset={offset}&total={}",
                photo.len()
            )))
            .bearer_auth(&t1.tokens.access_token)
            .body(photo[offset..end].to_vec())
            .send()
            .await
            .expect("chunk")
            .json()
            .await
            .expect("status");
        offset = st.received as usize;
        if offset == photo.len() {
            assert!(st.complete, "verified on the last byte");
        }
    }
    // The signature travels in a batch of small files; a wrong hash is refused.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let batch = BatchUploadRequest {
        files: vec![
            BatchFile {
                hash: sh.clone(),
                data_base64: b64.encode(&sig),
            },
            BatchFile {
                hash: "0".repeat(64),
                data_base64: b64.encode(b"x"),
            },
        ],
    };
    let r: BatchUploadResponse = t1
        .post(paths::ATTACHMENTS_BATCH)
        .json(&batch)
        .send()
        .await
        .expect("b")
        .json()
        .await
        .expect("j");
    assert!(r.results[0].complete);
    assert_eq!(
        r.results[1].error.as_ref().map(|e| e.code),
        Some(ErrorCode::HashMismatch)
    );
    // Now the same body applies.
    let PushOutcome::Applied(a) = t1.push1(complete).await else {
        panic!("completes")
    };
    let done = a.order.expect("order");
    assert_eq!(done.status, Status::Completed);
    assert_eq!(
        done.signature.as_ref().map(|s| s.hash.clone()),
        Some(sh.clone())
    );
    // The assignee and dispatchers may download; another technician may not.
    let got = t1
        .get(&format!("/v1/attachments/{ph}"))
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").to_vec(), photo);
    assert_eq!(
        d.get(&format!("/v1/attachments/{sh}"))
            .send()
            .await
            .expect("get")
            .status(),
        200
    );
    assert_eq!(
        t2.get(&format!("/v1/attachments/{ph}"))
            .send()
            .await
            .expect("get")
            .status(),
        404
    );
    let _ = upload_chunked;
}

async fn a_completion_after_a_cancellation_is_kept_as_a_conflict(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let sig = b"sig".to_vec();
    let photo = b"photo".to_vec();
    upload_chunked(&t1, &sig, 1024).await;
    upload_chunked(&t1, &photo, 1024).await;
    d.push1(d.mutation(
        order.id,
        MutationKind::Cancel,
        1,
        vec![note("customer cancelled")],
    ))
    .await;
    let complete = t1.mutation(
        order.id,
        MutationKind::Complete,
        1,
        completion_ops(&sha256_hex(&sig), &sha256_hex(&photo)),
    );
    let PushOutcome::AppliedWithConflicts(c) = t1.push1(complete).await else {
        panic!("held")
    };
    assert_eq!(c.conflict_kind, ConflictKind::CompletionAfterCancel);
    assert_eq!(
        c.order.as_ref().map(|o| o.status),
        Some(Status::Cancelled),
        "nothing applied"
    );
    // The dispatcher accepts the completion: the evidence was kept.
    let list: ConflictList = d
        .get(paths::CONFLICTS)
        .send()
        .await
        .expect("l")
        .json()
        .await
        .expect("j");
    let record = list
        .items
        .into_iter()
        .find(|r| r.id == c.conflict_id)
        .expect("listed");
    assert_eq!(
        record.mutation.kind,
        MutationKind::Complete,
        "the full payload is kept"
    );
    let r = record.resolve_mutation(
        &ResolutionChoice::AcceptDevice,
        Uuid::now_v7(),
        d.device,
        chrono::Utc::now(),
    );
    let PushOutcome::Applied(a) = d.push1(r).await else {
        panic!("resolved")
    };
    let o = a.order.expect("order");
    assert_eq!(o.status, Status::Completed);
    assert!(o.signature.is_some());
}

/// The order the end-to-end tests found: the technician ticks the checklist and then
/// completes (signature and photo only), both offline on v1, while the dispatcher
/// cancels. Neither is refused; both wait for a person, with the evidence; a note still
/// applies; they wait in one conflict (one per device and order), and accepting it
/// completes the order with the tick and the evidence.
async fn a_tick_and_a_completion_behind_a_cancellation_are_both_held(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let sig = b"sig-2".to_vec();
    let photo = b"photo-2".to_vec();
    upload_chunked(&t1, &sig, 1024).await;
    upload_chunked(&t1, &photo, 1024).await;
    d.push1(d.mutation(order.id, MutationKind::Cancel, 1, vec![note("called off")]))
        .await;
    let mut evidence = completion_ops(&sha256_hex(&sig), &sha256_hex(&photo));
    let tick = evidence.remove(0);
    let out = t1
        .push(vec![
            t1.mutation(order.id, MutationKind::Update, 1, vec![tick]),
            t1.mutation(order.id, MutationKind::Complete, 1, evidence.clone()),
            t1.mutation(order.id, MutationKind::Update, 1, vec![note("left site")]),
        ])
        .await;
    let conflict = |o: &PushOutcome| match o {
        PushOutcome::AppliedWithConflicts(c) => (c.conflict_kind, c.conflict_id),
        other => panic!("held, not {other:?}"),
    };
    let mut held = vec![conflict(&out[0])];
    assert_eq!(held[0].0, ConflictKind::UpdateAfterCancel);
    // The order's later changes in that push wait behind the held tick; the device
    // sends them again: the completion is held in its turn, and the note behind it.
    let (complete, left_site) = (
        t1.mutation(order.id, MutationKind::Complete, 1, evidence),
        t1.mutation(order.id, MutationKind::Update, 1, vec![note("left site")]),
    );
    assert!(
        matches!(
            out[1..],
            [
                PushOutcome::HeldBehind { .. },
                PushOutcome::HeldBehind { .. }
            ]
        ),
        "{out:?}"
    );
    let out = t1.push(vec![complete, left_site.clone()]).await;
    held.push(conflict(&out[0]));
    assert_eq!(held[1].0, ConflictKind::CompletionAfterCancel);
    // One conflict per device and order (issue 19 item 2): the completion joins the
    // held tick's record, which becomes a held completion.
    assert_eq!(held[1].1, held[0].1, "the same record");
    assert!(matches!(out[1], PushOutcome::HeldBehind { .. }), "{out:?}");
    let out = t1.push(vec![left_site]).await;
    let PushOutcome::Applied(a) = &out[0] else {
        panic!("a note applies: {:?}", out[0])
    };
    let o = a.order.as_ref().expect("order");
    assert_eq!(o.status, Status::Cancelled);
    assert_eq!(o.notes.len(), 2);
    let failed: FailedSyncList = d
        .get(paths::FAILED_SYNCS)
        .send()
        .await
        .expect("l")
        .json()
        .await
        .expect("j");
    assert!(failed.items.is_empty(), "nothing was refused");

    let list: ConflictList = d
        .get(paths::CONFLICTS)
        .send()
        .await
        .expect("l")
        .json()
        .await
        .expect("j");
    assert_eq!(list.items.len(), 1, "{:?}", list.items);
    {
        let record = &list.items[0];
        assert_eq!(record.kind, ConflictKind::CompletionAfterCancel);
        let r = record.resolve_mutation(
            &ResolutionChoice::AcceptDevice,
            Uuid::now_v7(),
            d.device,
            chrono::Utc::now(),
        );
        let out = d.push1(r).await;
        assert!(matches!(out, PushOutcome::Applied(_)), "{out:?}");
    }
    let o: WorkOrder = d
        .get(&format!("/v1/orders/{}", order.id))
        .send()
        .await
        .expect("g")
        .json()
        .await
        .expect("j");
    assert_eq!(o.status, Status::Completed);
    assert!(o.checklist[0].done && o.signature.is_some() && o.photos.len() == 1);
}

async fn a_reassignment_reaches_both_technicians_and_a_late_push_is_a_conflict(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let order = d.create_order(Some("tech1")).await;
    let (_, c1, _) = t1.pull_all(None, 100).await;
    let (_, c2, _) = t2.pull_all(None, 100).await;
    d.push1(d.mutation(
        order.id,
        MutationKind::Assign,
        1,
        vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
    ))
    .await;
    let (ch1, _, _) = t1.pull_all(Some(c1), 100).await;
    let left = ch1
        .iter()
        .find(|c| c.id == order.id.to_string())
        .expect("tech1 hears of it");
    assert_eq!(
        left.change,
        ChangeBody::LeftScope(LeftScope {
            now_assigned_to: Some("tech2".into())
        }),
        "the old assignee gets left_scope with who has it now"
    );
    let (ch2, _, _) = t2.pull_all(Some(c2), 100).await;
    assert!(ch2.iter().any(|c| matches!(&c.change, ChangeBody::WorkOrder(o) if o.id == order.id && o.assignee.as_deref() == Some("tech2"))));
    // tech1, still at v1, pushes an edit: a conflict, not a rejection.
    let PushOutcome::AppliedWithConflicts(c) = t1
        .push1(t1.mutation(order.id, MutationKind::Update, 1, title("mine")))
        .await
    else {
        panic!("a conflict")
    };
    assert_eq!(c.conflict_kind, ConflictKind::Reassigned);
    let o: WorkOrder = d
        .get(&format!("/v1/orders/{}", order.id))
        .send()
        .await
        .expect("g")
        .json()
        .await
        .expect("j");
    assert_eq!(o.title, "Replace pump seal", "nothing applied");
}

async fn a_technician_never_sees_or_changes_another_technicians_order(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let order = d.create_order(Some("tech1")).await;
    let secret_title = "Replace pump seal";
    assert_eq!(
        t2.get(&format!("/v1/orders/{}", order.id))
            .send()
            .await
            .expect("g")
            .status(),
        404
    );
    assert_eq!(
        t1.get(&format!("/v1/orders/{}", order.id))
            .send()
            .await
            .expect("g")
            .status(),
        200
    );
    let (changes, _, _) = t2.pull_all(None, 100).await;
    assert!(
        changes.iter().all(|c| c.id != order.id.to_string()),
        "not in tech2's pull"
    );
    let PushOutcome::Rejected(r) = t2
        .push1(t2.mutation(order.id, MutationKind::Update, 1, title("hijack")))
        .await
    else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::Forbidden);
    let body = t2
        .get(paths::FAILED_SYNCS)
        .send()
        .await
        .expect("l")
        .text()
        .await
        .expect("t");
    assert!(
        !body.contains(secret_title),
        "the failed sync leaks nothing of the order"
    );
    let failed: FailedSyncList = serde_json::from_str(&body).expect("json");
    assert_eq!(failed.items.len(), 1);
    assert_eq!(failed.items[0].assignee, None);
    let (changes, _, _) = t2.pull_all(None, 100).await;
    assert!(changes.iter().all(|c| !serde_json::to_string(&c.change)
        .expect("j")
        .contains(secret_title)));
    let o: WorkOrder = d
        .get(&format!("/v1/orders/{}", order.id))
        .send()
        .await
        .expect("g")
        .json()
        .await
        .expect("j");
    assert_eq!(o.title, secret_title);
}

async fn a_rejection_is_recorded_as_a_failed_sync_and_can_be_dismissed(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let bad = t1.mutation(order.id, MutationKind::Update, 1, title(&"x".repeat(500)));
    let PushOutcome::Rejected(r) = t1.push1(bad.clone()).await else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::ValidationFailed);
    assert_eq!(r.field_errors[0].field, "title");
    let id = r.failed_sync_id.expect("recorded");
    let list: FailedSyncList = d
        .get(paths::FAILED_SYNCS)
        .send()
        .await
        .expect("l")
        .json()
        .await
        .expect("j");
    let rec = list
        .items
        .iter()
        .find(|f| f.id == id)
        .expect("dispatchers see it")
        .clone();
    assert_eq!(rec.mutation, bad, "with the full payload");
    assert_eq!(rec.username, "tech1");
    assert_eq!(rec.device_id, t1.device);
    // Unknown entities are refused the same way.
    let PushOutcome::Rejected(r) = t1
        .push1(t1.mutation(Uuid::now_v7(), MutationKind::Update, 1, title("x")))
        .await
    else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::UnknownEntity);
    // The dispatcher dismisses the first one; it reaches the technician through pull.
    let m = rec.resolve_mutation(vec![], Uuid::now_v7(), d.device, chrono::Utc::now());
    let PushOutcome::Applied(_) = d.push1(m).await else {
        panic!("dismissed")
    };
    let (changes, _, _) = t1.pull_all(None, 100).await;
    let _ = changes;
    let list: FailedSyncList = d
        .get(&format!("{}?status=resolved", paths::FAILED_SYNCS))
        .send()
        .await
        .expect("l")
        .json()
        .await
        .expect("j");
    let done = list.items.iter().find(|f| f.id == id).expect("resolved");
    assert_eq!(
        done.resolution.as_ref().map(|r| r.outcome),
        Some(ResolutionOutcome::Dismissed)
    );
    assert_eq!(
        done.resolution.as_ref().map(|r| r.decided_by.as_str()),
        Some("dispatcher")
    );
}

async fn stock_of(d: &Session, sku: &str) -> i64 {
    let (changes, _, _) = d.pull_all(None, 1000).await;
    changes
        .iter()
        .rev()
        .find_map(|c| match &c.change {
            ChangeBody::InventoryItem(i) if i.sku == sku => Some(i.total_stock().milli()),
            _ => None,
        })
        .expect("item pulled")
}

async fn item_of(d: &Session, sku: &str) -> InventoryItem {
    let (changes, _, _) = d.pull_all(None, 1000).await;
    changes
        .iter()
        .rev()
        .find_map(|c| match &c.change {
            ChangeBody::InventoryItem(i) if i.sku == sku => Some(i.clone()),
            _ => None,
        })
        .expect("item pulled")
}

/// The desk previews what accepting a change does to stock with
/// `outpost_protocol::stock::preview`; the server applies the same rule (the
/// assignee's van when it stocks the item, else the warehouse). Cases: an item the
/// van stocks, one it does not, a technician without that van, parts added, changed
/// and removed (stock returned).
async fn the_stock_effect_a_dispatcher_previews_is_what_the_server_applies(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    // demo item 0 is stocked in van-tech1 and the warehouse; item 3 only in the warehouse.
    let in_van = outpost_server::seed::demo_sku(0);
    let warehouse_only = outpost_server::seed::demo_sku(3);
    let cases: [(&str, &str, i64, Option<i64>); 5] = [
        ("tech1", &in_van, 2500, None),
        ("tech1", &warehouse_only, 1000, None),
        ("tech2", &in_van, 3000, None),
        ("tech1", &in_van, 7000, Some(1000)), // more than the van holds, then less
        ("tech1", &in_van, 1000, Some(0)),    // removed: stock comes back
    ];
    for (who, sku, first, then) in cases {
        let t = s.login(who).await;
        let order = d.create_order(Some(who)).await;
        let line = PartUsed {
            id: Uuid::now_v7(),
            sku: sku.to_string(),
            quantity: Quantity(first),
        };
        let mut steps = vec![Op::Add(ListItem::PartsUsed(line.clone()))];
        if let Some(q) = then {
            steps.push(if q == 0 {
                Op::Remove {
                    list: ListName::PartsUsed,
                    item_id: line.id.to_string(),
                }
            } else {
                Op::Add(ListItem::PartsUsed(PartUsed {
                    quantity: Quantity(q),
                    ..line.clone()
                }))
            });
        }
        let mut current = order.clone();
        for op in steps {
            let item = item_of(&d, sku).await;
            let mut after = current.clone();
            apply_ops(&mut after, std::slice::from_ref(&op)).expect("applies");
            let preview = outpost_protocol::stock::preview(Some(&current), &after, |k| {
                (k == sku).then(|| item.clone())
            });
            assert_eq!(preview.len(), 1, "{who} {sku}: one line moves");
            let PushOutcome::Applied(a) = t
                .push1(t.mutation(order.id, MutationKind::Update, current.version, vec![op]))
                .await
            else {
                panic!("applies")
            };
            current = a.order.expect("order");
            let server = item_of(&d, sku).await;
            assert_eq!(
                Some(&server.stock),
                preview[0].item_after.as_ref().map(|i| &i.stock),
                "{who} {sku} {first} {then:?}: the server applied what the preview showed ({:?})",
                preview[0]
            );
        }
    }
}

/// A push of several orders' parts from one item (a day's completions) moves the stock
/// by each, keeps each move in the ledger, and writes the item once: devices pull one
/// change of it, naming every mutation that moved it.
async fn a_push_moving_one_items_stock_many_times_writes_the_item_once(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let sku = outpost_server::seed::demo_sku(3);
    let before = stock_of(&d, &sku).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(d.create_order(Some("tech1")).await);
    }
    let (_, cursor, _) = t1.pull_all(None, 1000).await;
    let part = |milli: i64| {
        Op::Add(ListItem::PartsUsed(PartUsed {
            id: Uuid::now_v7(),
            sku: sku.clone(),
            quantity: Quantity(milli),
        }))
    };
    let mut mutations: Vec<Mutation> = orders
        .iter()
        .map(|o| t1.mutation(o.id, MutationKind::Update, 1, vec![part(1000)]))
        .collect();
    // A second mutation of the first order, after its first.
    mutations.push(t1.mutation(orders[0].id, MutationKind::Update, 2, vec![part(500)]));
    let outcomes = t1.push(mutations.clone()).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, PushOutcome::Applied(_))),
        "{outcomes:?}"
    );
    assert_eq!(stock_of(&d, &sku).await, before - 3500, "every move counts");
    let (changes, _, _) = t1.pull_all(Some(cursor), 1000).await;
    let items: Vec<&Change> = changes
        .iter()
        .filter(|c| matches!(&c.change, ChangeBody::InventoryItem(i) if i.sku == sku))
        .collect();
    assert_eq!(items.len(), 1, "one change of the item: {items:?}");
    let mut named = items[0].mutation_ids.clone();
    named.sort();
    let mut sent: Vec<Uuid> = mutations.iter().map(|m| m.mutation_id).collect();
    sent.sort();
    assert_eq!(named, sent, "it names every mutation that moved it");
    let moves: i64 =
        s.db.read({
            let sku = sku.clone();
            move |sql| {
                sql.query(
                    "SELECT count(*) FROM stock_moves WHERE sku = ?1 AND kind = 'part'",
                    &[sku.into()],
                )?[0]
                    .i64(0)
            }
        })
        .await
        .expect("read the ledger");
    assert_eq!(moves, 4, "the ledger keeps each move");
}

async fn parts_used_decrement_stock_exactly_once(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let sku = outpost_server::seed::demo_sku(3);
    let before = stock_of(&d, &sku).await;
    let line = PartUsed {
        id: Uuid::now_v7(),
        sku: sku.clone(),
        quantity: Quantity(2500),
    };
    let m = t1.mutation(
        order.id,
        MutationKind::Update,
        1,
        vec![Op::Add(ListItem::PartsUsed(line.clone()))],
    );
    t1.push1(m.clone()).await;
    t1.push1(m).await; // a retry after a lost reply
    assert_eq!(stock_of(&d, &sku).await, before - 2500, "decremented once");
    // Another technician's usage of the same item commutes with it.
    let other = d.create_order(Some("tech2")).await;
    let t2 = s.login("tech2").await;
    let big = PartUsed {
        id: Uuid::now_v7(),
        sku: sku.clone(),
        quantity: Quantity(1_000_000),
    };
    t2.push1(t2.mutation(
        other.id,
        MutationKind::Update,
        1,
        vec![Op::Add(ListItem::PartsUsed(big))],
    ))
    .await;
    assert_eq!(stock_of(&d, &sku).await, before - 2500 - 1_000_000);
    let alerts: StockAlertList = d
        .get(paths::STOCK_ALERTS)
        .send()
        .await
        .expect("a")
        .json()
        .await
        .expect("j");
    assert!(
        alerts
            .items
            .iter()
            .any(|a| a.sku == sku && a.quantity.milli() < 0),
        "below zero is flagged"
    );
    assert_eq!(
        t1.get(paths::STOCK_ALERTS)
            .send()
            .await
            .expect("a")
            .status(),
        403
    );
    // An unknown SKU is refused.
    let bad = PartUsed {
        id: Uuid::now_v7(),
        sku: "NOPE".into(),
        quantity: Quantity(1000),
    };
    let PushOutcome::Rejected(r) = t1
        .push1(t1.mutation(
            order.id,
            MutationKind::Update,
            2,
            vec![Op::Add(ListItem::PartsUsed(bad))],
        ))
        .await
    else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::UnknownSku);
}

async fn priming_pages_are_bounded_ordered_and_followed_by_deltas(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    for _ in 0..3 {
        d.create_order(Some("tech1")).await;
    }
    d.create_order(Some("tech2")).await;
    // Count bound.
    let first = t1.pull(None, Some(2)).await;
    assert_eq!(first.changes.len(), 2);
    assert!(first.has_more);
    let p = first.priming.expect("progress");
    assert_eq!(p.total, 3 + 20, "three orders and twenty items in scope");
    assert_eq!(p.done, 2);
    let (rest, cursor, _) = t1.pull_all(Some(first.cursor), 7).await;
    let all: Vec<&Change> = first.changes.iter().chain(rest.iter()).collect();
    let kinds: Vec<ChangeEntity> = all.iter().map(|c| c.entity).collect();
    let last_order = kinds
        .iter()
        .rposition(|k| *k == ChangeEntity::WorkOrder)
        .expect("orders");
    let first_item = kinds
        .iter()
        .position(|k| *k == ChangeEntity::InventoryItem)
        .expect("items");
    assert!(
        last_order < first_item,
        "assigned orders come before inventory"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == ChangeEntity::WorkOrder)
            .count(),
        3
    );
    // Byte bound: a tiny budget still moves one row at a time.
    let resp = t1
        .pull_raw(&PullRequest {
            cursor: None,
            limit: Some(100),
            max_bytes: Some(10),
            confirmed: Vec::new(),
        })
        .await;
    let page: PullResponse = resp.json().await.expect("page");
    assert_eq!(page.changes.len(), 1);
    // Deltas: a change after priming arrives with its mutation id and sequence.
    let order = d.create_order(Some("tech1")).await;
    let m = t1.mutation(order.id, MutationKind::Update, 1, vec![note("on site")]);
    let mid = m.mutation_id;
    t1.push1(m).await;
    let (delta, cursor2, _) = t1.pull_all(Some(cursor.clone()), 100).await;
    assert!(delta.iter().all(|c| c.seq > 0));
    assert!(
        delta.windows(2).all(|w| w[0].seq < w[1].seq),
        "in sequence order"
    );
    assert!(
        delta.iter().any(|c| c.mutation_ids.contains(&mid)),
        "the row names its mutation"
    );
    let (none, _, _) = t1.pull_all(Some(cursor2), 100).await;
    assert!(none.is_empty());
    // Compressed when accepted: zstd for a client that takes it (this release's), gzip
    // for one that takes only gzip (the releases before), nothing for one that takes
    // neither; the same page either way.
    let raw = reqwest::Client::builder()
        .no_gzip()
        .no_zstd()
        .build()
        .expect("client");
    let mut bodies = Vec::new();
    for (accept, expected) in [
        ("gzip", Some("gzip")),
        ("gzip, zstd", Some("zstd")),
        ("identity", None),
    ] {
        let resp = raw
            .post(t1.url(paths::PULL))
            .bearer_auth(&t1.tokens.access_token)
            .header("accept-encoding", accept)
            .json(&PullRequest::default())
            .send()
            .await
            .expect("p");
        assert_eq!(
            resp.headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap_or("")),
            expected,
            "accept-encoding: {accept}"
        );
        let bytes = resp.bytes().await.expect("body");
        let plain = match expected {
            Some("gzip") => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                    .expect("gzip");
                out
            }
            Some(_) => zstd::decode_all(&bytes[..]).expect("zstd"),
            None => bytes.to_vec(),
        };
        let page: PullResponse = serde_json::from_slice(&plain).expect("a page");
        bodies.push(page.changes.len());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
}

async fn a_foreign_or_pruned_cursor_needs_a_resync(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    d.create_order(Some("tech1")).await;
    let (_, cursor, _) = d.pull_all(None, 1000).await;
    let resp = d
        .pull_raw(&PullRequest {
            cursor: Some("garbage".into()),
            ..Default::default()
        })
        .await;
    let (status, body) = error_of(resp).await;
    assert_eq!((status, body.code), (400, ErrorCode::InvalidBody));
    // Pruning the log past the cursor.
    d.create_order(Some("tech1")).await;
    let far_future = chrono::Utc::now().timestamp_micros() + 1_000_000_000;
    s.db.write(move |sql| outpost_server::repo::prune(sql, far_future))
        .await
        .expect("prune");
    let (status, body) = error_of(
        d.pull_raw(&PullRequest {
            cursor: Some(cursor.clone()),
            ..Default::default()
        })
        .await,
    )
    .await;
    assert_eq!((status, body.code), (409, ErrorCode::ResyncRequired));
    // A new device primes fine after a prune: never "resync required".
    let (rows, fresh, _) = d.pull_all(None, 1000).await;
    assert!(
        rows.iter()
            .filter(|c| c.entity == ChangeEntity::WorkOrder)
            .count()
            == 2
    );
    // A restore (new epoch) makes every cursor foreign.
    s.db.write(outpost_server::repo::reset_epoch)
        .await
        .expect("epoch");
    let (status, body) = error_of(
        d.pull_raw(&PullRequest {
            cursor: Some(fresh),
            ..Default::default()
        })
        .await,
    )
    .await;
    assert_eq!((status, body.code), (409, ErrorCode::ResyncRequired));
}

async fn a_technicians_new_order_is_assigned_to_them(kind: Kind) {
    let s = TestServer::start(kind).await;
    let t1 = s.login("tech1").await;
    let o = t1.create_order(Some("tech2")).await;
    assert_eq!(o.assignee.as_deref(), Some("tech1"));
    let again = t1.mutation(o.id, MutationKind::Create, 0, title("dup"));
    let PushOutcome::Rejected(r) = t1.push1(again).await else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::AlreadyExists);
    let PushOutcome::Rejected(r) = t1
        .push1(t1.mutation(o.id, MutationKind::Cancel, 1, vec![note("x")]))
        .await
    else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::Forbidden, "technicians do not cancel");
    let _ = EntityKind::WorkOrder;
}

/// History keeps diffs, not copies: each earlier version comes back exactly, also
/// across a row written whole (as servers before the diffs did).
async fn every_earlier_version_of_an_order_is_rebuilt_from_its_history(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let created = d.create_order(Some("tech1")).await;
    let id = created.id;
    let mut versions = vec![created];
    let edits: Vec<Vec<Op>> = vec![
        vec![note("one"), Op::Set(SetOp::Description("first".into()))],
        vec![note("two")],
        vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
        vec![Op::Remove {
            list: ListName::Checklist,
            item_id: "c1".into(),
        }],
        title("Renamed"),
        vec![note("three"), note("four")],
    ];
    for ops in edits {
        let base = versions.last().map_or(0, |o| o.version);
        let PushOutcome::Applied(a) = d
            .push1(d.mutation(id, MutationKind::Update, base, ops))
            .await
        else {
            panic!("applies")
        };
        versions.push(a.order.expect("order"));
    }
    let current = versions.last().cloned().expect("current");
    assert_eq!(current.version, 7);
    let check = |versions: Vec<WorkOrder>, current: WorkOrder| {
        s.db.read(move |sql| {
            for want in &versions {
                let got = outpost_server::repo::order_at(sql, &current, want.version)?;
                assert_eq!(got.as_ref(), Some(want), "version {}", want.version);
            }
            assert_eq!(outpost_server::repo::order_at(sql, &current, 8)?, None);
            Ok(())
        })
    };
    check(versions.clone(), current.clone())
        .await
        .expect("read");
    // A whole row in the middle (an older server's) is used as it is.
    let whole = serde_json::to_string(&versions[2]).expect("json");
    s.db.write(move |sql| {
        sql.exec(
            "UPDATE order_history SET body = ?1 WHERE order_id = ?2 AND version = 3",
            &[whole.into(), id.into()],
        )
    })
    .await
    .expect("write");
    check(versions, current).await.expect("read");
}

/// Each instance keeps the parsed rows its pushes wrote; a write through another
/// instance over the same database must still be the base of the next push.
async fn a_write_through_another_instance_is_never_missed(kind: Kind) {
    let s = TestServer::start(kind).await;
    let a = s.login("dispatcher").await;
    let order = a.create_order(Some("tech1")).await;
    let db = outpost_server::Db::open(&s.url).await.expect("open");
    let state = outpost_server::state(db, s.cfg.clone())
        .await
        .expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let other = outpost_server::spawn(listener, state, None).expect("second instance");
    let b = via(&a, &format!("http://{}", other.addr));
    let push = |who, base, ops| update(who, order.id, base, ops);
    let v2 = push(&a, 1, title("From A")).await;
    assert_eq!(v2.version, 2);
    let v3 = push(
        &b,
        2,
        vec![Op::Set(SetOp::Description("From B".into())), note("b")],
    )
    .await;
    assert_eq!(v3.version, 3);
    let v4 = push(&a, 3, vec![note("a")]).await;
    assert_eq!(v4.version, 4, "built on the other instance's version");
    assert_eq!(v4.title, "From A");
    assert_eq!(v4.description, "From B");
    assert_eq!(v4.notes.len(), 2);
    // And the other way round, once more.
    let v5 = push(&b, 4, title("From B")).await;
    assert_eq!((v5.version, v5.notes.len()), (5, 2));
    let v6 = push(&a, 5, vec![note("a2")]).await;
    assert_eq!((v6.version, v6.title.as_str()), (6, "From B"));
    other.stop().await.expect("stop");
}

async fn update(who: &Session, id: Uuid, base: u64, ops: Vec<Op>) -> WorkOrder {
    match who
        .push1(who.mutation(id, MutationKind::Update, base, ops))
        .await
    {
        PushOutcome::Applied(a) => a.order.expect("order"),
        other => panic!("applies: {other:?}"),
    }
}

/// Pull to the end from `cursor`, confirming `confirmed`: the rows and the last cursor.
async fn pull_confirming(
    who: &Session,
    cursor: &str,
    confirmed: &[LogRange],
) -> (Vec<Change>, String) {
    let mut cursor = cursor.to_owned();
    let mut rows = Vec::new();
    for _ in 0..100 {
        let resp = who
            .pull_raw(&PullRequest {
                cursor: Some(cursor.clone()),
                limit: Some(100),
                max_bytes: None,
                confirmed: confirmed.to_vec(),
            })
            .await;
        let status = resp.status();
        let text = resp.text().await.expect("pull body");
        assert_eq!(status, 200, "pull answers 200: {text}");
        let page: PullResponse = serde_json::from_str(&text).expect("pull page");
        rows.extend(page.changes);
        cursor = page.cursor;
        if !page.has_more {
            return (rows, cursor);
        }
    }
    panic!("the pull does not end");
}

/// Issue 24 item 1, on both backends: a push's answer names the log range it wrote; a
/// pull confirming that range leaves out the order rows it wrote (the answer carried
/// them) but not the stock rows, and reaches the same cursor; a pull without it (an
/// older client) gets them, one row per entity per page at its latest version, the
/// order row naming every mutation it stands for; a range of another epoch is
/// ignored; an office change after it is sent; too many ranges are refused.
async fn a_pull_leaves_out_only_the_order_rows_of_a_push_the_device_confirms(kind: Kind) {
    let s = TestServer::start(kind).await;
    let t1 = s.login("tech1").await;
    let d = s.login("dispatcher").await;
    let (_, start, _) = t1.pull_all(None, 1000).await;
    let sku = outpost_server::seed::demo_sku(3);
    let part = |n: i64| {
        Op::Add(ListItem::PartsUsed(PartUsed {
            id: Uuid::now_v7(),
            sku: sku.clone(),
            quantity: Quantity(n * 1000),
        }))
    };
    let id = Uuid::now_v7();
    let create = t1.mutation(id, MutationKind::Create, 0, title("Echo"));
    let first = t1.mutation(id, MutationKind::Update, 1, vec![part(1), note("one")]);
    let second = t1.mutation(id, MutationKind::Update, 2, vec![part(2)]);
    let ids = [create.mutation_id, first.mutation_id, second.mutation_id];
    let answer = t1.push_answer(vec![create, first, second]).await;
    let written = answer
        .written
        .clone()
        .expect("the push names what it wrote");
    assert_eq!(
        written.last - written.first + 1,
        4,
        "3 order rows, 1 stock row (an item moved twice in one push is written once)"
    );
    let answered = answer
        .results
        .iter()
        .filter_map(|r| match &r.outcome {
            PushOutcome::Applied(a) => a.order.as_ref().map(|o| o.version),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(answered, vec![1, 2, 3], "each answer carries its row");

    // An older client: the order once, at version 3, naming all three mutations; the
    // item once, at its latest version.
    let (old, old_end) = pull_confirming(&t1, &start, &[]).await;
    let orders: Vec<&Change> = old.iter().filter(|c| c.id == id.to_string()).collect();
    assert_eq!(orders.len(), 1, "{old:?}");
    assert_eq!(orders[0].version, 3);
    assert_eq!(
        orders[0].mutation_ids,
        ids.to_vec(),
        "every mutation it stands for"
    );
    let items: Vec<&Change> = old.iter().filter(|c| c.id == sku).collect();
    assert_eq!(items.len(), 1, "{old:?}");
    assert!(matches!(items[0].change, ChangeBody::InventoryItem(_)));
    assert_eq!(
        items[0].seq, written.last,
        "the stock row, after the push's orders"
    );

    // This device, confirming the range: no order row, the stock row still; same end.
    let (new, new_end) = pull_confirming(&t1, &start, std::slice::from_ref(&written)).await;
    assert!(new.iter().all(|c| c.id != id.to_string()), "{new:?}");
    assert_eq!(new.iter().filter(|c| c.id == sku).count(), 1, "{new:?}");
    assert_eq!(new_end, old_end, "the cursor moves past what was left out");

    // A range of another epoch names other rows: ignored.
    let foreign = LogRange {
        epoch: "another".into(),
        ..written.clone()
    };
    let (rows, _) = pull_confirming(&t1, &start, &[foreign]).await;
    assert!(rows.iter().any(|c| c.id == id.to_string()));

    // The office changes the order afterwards: that row is not the device's echo.
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(id, MutationKind::Update, 3, title("From the office")))
        .await
    else {
        panic!("applies")
    };
    let (rows, _) = pull_confirming(&t1, &new_end, std::slice::from_ref(&written)).await;
    assert_eq!(
        rows.iter().filter(|c| c.id == id.to_string()).count(),
        1,
        "{rows:?}"
    );

    let too_many = vec![written; limits::CONFIRMED_RANGES_MAX + 1];
    let resp = t1
        .pull_raw(&PullRequest {
            cursor: Some(new_end),
            limit: None,
            max_bytes: None,
            confirmed: too_many,
        })
        .await;
    let (status, body) = error_of(resp).await;
    assert_eq!((status, body.code), (400, ErrorCode::OutOfRange));
}
