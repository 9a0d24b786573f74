//! The server's authorization and abuse controls found missing by the security review
//! (issue 19), each reproduced over real HTTP on both backends: what a technician may
//! do with a resolution, who may reopen an order, what a former assignee learns from a
//! conflict, who may touch an upload. docs/SECURITY.md names these tests per actor.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use outpost_protocol::wire::*;
use outpost_protocol::*;
use uuid::Uuid;

both!(
    a_technician_settles_a_conflict_only_with_its_fields_and_within_the_status_machine,
    only_staff_may_reopen_a_cancelled_order,
    a_former_assignee_learns_nothing_new_from_a_held_push_and_its_conflicts_collapse,
    a_partial_upload_belongs_to_its_uploader,
    knowing_a_hash_neither_reveals_nor_grants_access_to_a_file,
    a_push_with_too_many_ops_is_refused_before_the_write_transaction,
    a_password_guessing_storm_is_bounded_and_does_not_lock_the_user_out,
    behind_a_trusted_proxy_each_client_has_its_own_limiter_key,
    a_rotated_refresh_token_reused_in_the_grace_window_gets_the_same_successor,
    metrics_need_their_token_and_logout_ends_the_access_token,
    a_client_that_never_finishes_its_headers_is_disconnected,
    a_request_past_the_in_flight_limit_is_shed_with_retry_after,
    an_incomplete_upload_expires_with_the_prune,
    a_file_past_the_users_storage_quota_is_refused_in_words_each_protocol_understands,
    a_batch_counts_the_quota_as_it_stores_its_files,
    a_list_of_failed_syncs_stops_at_its_byte_budget,
    the_refused_changes_the_server_keeps_for_one_person_stop_at_their_budget_and_stay_on_the_device_past_it,
    a_reference_made_before_the_bytes_exist_grants_only_the_bytes_its_maker_uploads,
);

async fn order_now(d: &Session, id: Uuid) -> WorkOrder {
    d.get(&format!("{}/{id}", paths::ORDERS))
        .send()
        .await
        .expect("get order")
        .json()
        .await
        .expect("order")
}

async fn open_conflicts(s: &Session) -> Vec<ConflictRecord> {
    let list: ConflictList = s
        .get(paths::CONFLICTS)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list.items
}

/// A `resolve` of `record` by `s` carrying exactly `ops` (what a modified client could
/// send), with what the record showed as `seen`.
fn resolve_with(s: &Session, record: &ConflictRecord, ops: Vec<Op>) -> Mutation {
    let mut m = record.resolve_mutation(
        &ResolutionChoice::KeepServer,
        Uuid::now_v7(),
        s.device,
        chrono::Utc::now(),
    );
    m.seen = record.seen_for(&ops);
    m.ops = ops;
    m
}

/// Item 1: a technician can open a conflict at will (a push on an old base); its
/// resolution must not become a way to cancel, reopen or rewrite the order.
async fn a_technician_settles_a_conflict_only_with_its_fields_and_within_the_status_machine(
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
            vec![
                Op::Set(SetOp::Title("Dispatcher's title".into())),
                Op::Set(SetOp::Status(Status::EnRoute)),
            ],
        ))
        .await
    else {
        panic!("the dispatcher's edit applies")
    };
    // The technician pushes on the old base: title and status conflict.
    let PushOutcome::AppliedWithConflicts(c) = t1
        .push1(t1.mutation(
            order.id,
            MutationKind::Update,
            1,
            vec![
                Op::Set(SetOp::Title("Technician's title".into())),
                Op::Set(SetOp::Status(Status::InProgress)),
            ],
        ))
        .await
    else {
        panic!("a field conflict")
    };
    let record = open_conflicts(&t1)
        .await
        .into_iter()
        .find(|r| r.id == c.conflict_id)
        .expect("the technician sees their conflict");

    // A field of the conflict, but a value only cancel may set.
    let cancel = t1
        .push1(resolve_with(
            &t1,
            &record,
            vec![Op::Set(SetOp::Status(Status::Cancelled))],
        ))
        .await;
    assert!(
        matches!(&cancel, PushOutcome::Rejected(_)),
        "a technician cannot cancel through a resolution: {cancel:?}"
    );
    // A field that is not the conflict's.
    let other = t1
        .push1(resolve_with(
            &t1,
            &record,
            vec![Op::Set(SetOp::Description("rewritten".into()))],
        ))
        .await;
    assert!(
        matches!(&other, PushOutcome::Rejected(r) if r.code == ErrorCode::Forbidden),
        "a technician's resolution sets only the conflict's fields: {other:?}"
    );
    let now = order_now(&d, order.id).await;
    assert_eq!(now.status, Status::EnRoute, "not cancelled");
    assert_eq!(now.description, order.description, "not rewritten");

    // The Conflicts screen's choices still work: a merged title and the device's status.
    let merged = t1
        .push1(resolve_with(
            &t1,
            &record,
            vec![
                Op::Set(SetOp::Title("Dispatcher's and technician's title".into())),
                Op::Set(SetOp::Status(Status::InProgress)),
            ],
        ))
        .await;
    assert!(
        matches!(&merged, PushOutcome::Applied(_)),
        "a merged value and the device's value settle it: {merged:?}"
    );
    let now = order_now(&d, order.id).await;
    assert_eq!(now.title, "Dispatcher's and technician's title");
    assert_eq!(now.status, Status::InProgress);
}

/// Item 3: reopening a cancelled order (back to scheduled) is for dispatchers and
/// administrators, whether pushed as an edit or as a resolution.
async fn only_staff_may_reopen_a_cancelled_order(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(
            order.id,
            MutationKind::Cancel,
            1,
            vec![Op::Set(SetOp::Status(Status::Cancelled))],
        ))
        .await
    else {
        panic!("the dispatcher cancels")
    };
    let reopen = vec![Op::Set(SetOp::Status(Status::Scheduled))];
    let edit = t1
        .push1(t1.mutation(order.id, MutationKind::Update, 2, reopen.clone()))
        .await;
    assert!(
        matches!(&edit, PushOutcome::Rejected(r) if r.code == ErrorCode::Forbidden),
        "a technician's edit does not reopen: {edit:?}"
    );
    assert_eq!(order_now(&d, order.id).await.status, Status::Cancelled);

    // The same change on the old base is held; settling it must not reopen either.
    let PushOutcome::AppliedWithConflicts(c) = t1
        .push1(t1.mutation(order.id, MutationKind::Update, 1, reopen.clone()))
        .await
    else {
        panic!("held behind the cancellation")
    };
    let record = open_conflicts(&t1)
        .await
        .into_iter()
        .find(|r| r.id == c.conflict_id)
        .expect("the technician sees their conflict");
    let settle = t1.push1(resolve_with(&t1, &record, reopen.clone())).await;
    assert!(
        matches!(&settle, PushOutcome::Rejected(r) if r.code == ErrorCode::Forbidden),
        "a technician's resolution does not reopen: {settle:?}"
    );
    assert_eq!(order_now(&d, order.id).await.status, Status::Cancelled);

    let staff = d
        .push1(d.mutation(order.id, MutationKind::Update, 2, reopen))
        .await;
    assert!(
        matches!(&staff, PushOutcome::Applied(_)),
        "a dispatcher reopens: {staff:?}"
    );
    assert_eq!(order_now(&d, order.id).await.status, Status::Scheduled);
}

/// Item 2: a former assignee pushing on an old base is held whole; the answer, the
/// conflict record and the pull must not hand them the order as it is now (the new
/// assignee's notes, the customer's details), and repeating it must not pile up
/// conflicts: one per device and order.
async fn a_former_assignee_learns_nothing_new_from_a_held_push_and_its_conflicts_collapse(
    kind: Kind,
) {
    const SECRET_NAME: &str = "Customer-name-only-the-new-assignee-may-see";
    const SECRET_NOTE: &str = "Door-code-only-the-new-assignee-may-see";
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let order = d.create_order(Some("tech1")).await;
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(
            order.id,
            MutationKind::Assign,
            1,
            vec![Op::Set(SetOp::Assignee(Some("tech2".into())))],
        ))
        .await
    else {
        panic!("reassigned to tech2")
    };
    let PushOutcome::Applied(_) = d
        .push1(d.mutation(
            order.id,
            MutationKind::Update,
            2,
            vec![Op::Set(SetOp::Customer(Customer {
                name: SECRET_NAME.into(),
                phone: "+1 555 0100".into(),
                email: String::new(),
            }))],
        ))
        .await
    else {
        panic!("the dispatcher's edit applies")
    };
    let PushOutcome::Applied(_) = t2
        .push1(t2.mutation(
            order.id,
            MutationKind::Update,
            3,
            vec![Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::now_v7(),
                    author: "tech2".into(),
                    text: SECRET_NOTE.into(),
                    at: chrono::Utc::now(),
                },
            }],
        ))
        .await
    else {
        panic!("the new assignee's note applies")
    };

    // tech1, offline since version 1, pushes an edit of the customer and the title.
    let first = t1.mutation(
        order.id,
        MutationKind::Update,
        1,
        vec![
            Op::Set(SetOp::Customer(Customer {
                name: "Customer as tech1 knew it".into(),
                phone: String::new(),
                email: String::new(),
            })),
            Op::Set(SetOp::Title("tech1's title".into())),
        ],
    );
    let answer = t1
        .post(paths::PUSH)
        .json(&PushRequest {
            mutations: vec![first],
        })
        .send()
        .await
        .expect("push")
        .text()
        .await
        .expect("body");
    let parsed: PushResponse = serde_json::from_str(&answer).expect("a push response");
    let PushOutcome::AppliedWithConflicts(c) = &parsed.results[0].outcome else {
        panic!("held whole: {answer}")
    };
    assert_eq!(c.conflict_kind, ConflictKind::Reassigned);
    for secret in [SECRET_NAME, SECRET_NOTE] {
        assert!(
            !answer.contains(secret),
            "the push answer hands the former assignee {secret}: {answer}"
        );
    }
    let listed = t1
        .get(paths::CONFLICTS)
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("body");
    assert!(
        !listed.contains(SECRET_NAME),
        "the conflict record shows the former assignee the server's values: {listed}"
    );
    let (changes, _, _) = t1.pull_all(None, 500).await;
    let pulled = serde_json::to_string(&changes).expect("json");
    for secret in [SECRET_NAME, SECRET_NOTE] {
        assert!(
            !pulled.contains(secret),
            "the pull hands the former assignee {secret}"
        );
    }
    // Staff still see both sides to decide.
    let record = open_conflicts(&d)
        .await
        .into_iter()
        .find(|r| r.id == c.conflict_id)
        .expect("listed for dispatchers");
    assert!(
        record.fields.iter().any(|f| f.server
            == Some(SetOp::Customer(Customer {
                name: SECRET_NAME.into(),
                phone: "+1 555 0100".into(),
                email: String::new(),
            }))),
        "a dispatcher sees the server's side: {record:?}"
    );

    // Pushing again on the old base (as a modified client could, at will) adds to the
    // same conflict instead of opening another.
    for i in 0..3 {
        let again = t1
            .push1(t1.mutation(
                order.id,
                MutationKind::Update,
                1,
                vec![Op::Set(SetOp::Title(format!("tech1's title, take {i}")))],
            ))
            .await;
        let PushOutcome::AppliedWithConflicts(a) = &again else {
            panic!("held again: {again:?}")
        };
        assert_eq!(a.conflict_id, c.conflict_id, "the same conflict");
    }
    let open: Vec<_> = open_conflicts(&d)
        .await
        .into_iter()
        .filter(|r| r.order_id == order.id)
        .collect();
    assert_eq!(open.len(), 1, "one conflict per device and order: {open:?}");
    let title = open[0]
        .fields
        .iter()
        .find(|f| f.field == "title")
        .expect("the title is a field of the conflict");
    assert_eq!(
        title.device,
        SetOp::Title("tech1's title, take 2".into()),
        "the latest value the device pushed"
    );
    assert!(
        open[0].fields.iter().any(|f| f.field == "customer"),
        "nothing the device pushed earlier is dropped: {:?}",
        open[0].fields
    );
}

fn photo_of(hash: &str) -> Op {
    Op::Add(outpost_protocol::mutation::ListItem::Photos(PhotoRef {
        hash: hash.into(),
        caption: "site".into(),
        media_type: "image/jpeg".into(),
    }))
}

/// Item 4: another user can neither append to, overwrite nor delete someone's partial
/// upload of the same file.
async fn a_partial_upload_belongs_to_its_uploader(kind: Kind) {
    let s = TestServer::start(kind).await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let hash = outpost_protocol::attachment_hash(&bytes);
    let total = bytes.len();
    let resp = t1.put_chunk(&hash, 0, total, &bytes[..1000]).await;
    assert_eq!(resp.status(), 200, "tech1's first chunk");
    // tech2 sends garbage where tech1 would resume.
    let _ = t2.put_chunk(&hash, 1000, total, &[0u8; 1000]).await;
    assert_eq!(
        t1.attachment_status(&hash).await.received,
        1000,
        "tech1's upload is where tech1 left it"
    );
    let resp = t1.put_chunk(&hash, 1000, total, &bytes[1000..]).await;
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "tech1 resumes and completes: {body}");
    let st: AttachmentStatus = serde_json::from_str(&body).expect("status");
    assert!(st.complete, "{st:?}");
}

/// Item 4: `status` does not tell a stranger whether a file exists, and naming its
/// hash in one's own order does not grant its bytes; uploading the bytes does.
async fn knowing_a_hash_neither_reveals_nor_grants_access_to_a_file(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let bytes = b"a photo of tech1's customer's meter".to_vec();
    let hash = outpost_protocol::attachment_hash(&bytes);
    let resp = t1.put_chunk(&hash, 0, bytes.len(), &bytes).await;
    assert_eq!(resp.status(), 200);

    let st = t2.attachment_status(&hash).await;
    assert!(
        !st.complete && st.received == 0,
        "status tells a stranger the file exists: {st:?}"
    );

    let order = d.create_order(Some("tech2")).await;
    let out = t2
        .push1(t2.mutation(order.id, MutationKind::Update, 1, vec![photo_of(&hash)]))
        .await;
    assert!(
        !out.is_acknowledged(),
        "a reference to bytes tech2 never had is not applied: {out:?}"
    );
    let got = t2
        .get(&format!("/v1/attachments/{hash}"))
        .send()
        .await
        .expect("get");
    assert_eq!(
        got.status(),
        404,
        "naming a hash in one's own order grants its bytes"
    );

    // Whoever has the bytes sends them, even when the server has them already.
    let resp = t2.put_chunk(&hash, 0, bytes.len(), &bytes).await;
    assert_eq!(resp.status(), 200);
    let out = t2
        .push1(t2.mutation(order.id, MutationKind::Update, 1, vec![photo_of(&hash)]))
        .await;
    assert!(matches!(out, PushOutcome::Applied(_)), "{out:?}");
    let got = t2
        .get(&format!("/v1/attachments/{hash}"))
        .send()
        .await
        .expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").to_vec(), bytes);
}

/// Item 5: the number of ops in one mutation and in one push is capped (the merge runs
/// inside the server's single write transaction), and the refusal comes at once.
async fn a_push_with_too_many_ops_is_refused_before_the_write_transaction(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let order = d.create_order(None).await;
    let title_ops = |n: usize| -> Vec<Op> {
        (0..n)
            .map(|i| Op::Set(SetOp::Title(format!("t{i}"))))
            .collect()
    };
    let send = |mutations: Vec<Mutation>| {
        let req = d.post(paths::PUSH).json(&PushRequest { mutations });
        async move {
            let started = std::time::Instant::now();
            let resp = tokio::time::timeout(std::time::Duration::from_secs(20), req.send())
                .await
                .expect("an answer within 20 s")
                .expect("push");
            (resp.status().as_u16(), started.elapsed())
        }
    };
    // One mutation with more ops than any order needs.
    let one = d.mutation(order.id, MutationKind::Update, 1, title_ops(6_000));
    let (status, took) = send(vec![one]).await;
    assert_eq!(
        status, 413,
        "a mutation of 6000 ops is refused (took {took:?})"
    );
    // A push of mutations each within bounds but too many ops together.
    let many: Vec<Mutation> = (0..20)
        .map(|_| d.mutation(order.id, MutationKind::Update, 1, title_ops(3_000)))
        .collect();
    let (status, took) = send(many).await;
    assert_eq!(
        status, 413,
        "a push of 60000 ops is refused (took {took:?})"
    );
    assert_eq!(
        order_now(&d, order.id).await.version,
        1,
        "nothing of either applied"
    );
}

/// Item 6: 300 concurrent wrong passwords for one user (as the review measured): only
/// the allowed attempts are hashed (the rest are refused before Argon2), an oversized
/// username is refused before it becomes a limiter key or a log field, and the real
/// user signs in once the delay has passed (a growing delay, not a hard lockout).
async fn a_password_guessing_storm_is_bounded_and_does_not_lock_the_user_out(kind: Kind) {
    let clock = MovableClock::new();
    let cfg = outpost_server::ServerConfig {
        login_max_failures: 10,
        clock: clock.clone(),
        ..test_config()
    };
    let s = TestServer::start_with(kind, cfg).await;
    let attempt = |username: String, password: &str| {
        let req = s.http.post(s.url(paths::LOGIN)).json(&LoginRequest {
            username,
            password: password.into(),
            device_id: Uuid::new_v4(),
        });
        async move { req.send().await.expect("login").status().as_u16() }
    };
    let mut storm = tokio::task::JoinSet::new();
    for _ in 0..300 {
        storm.spawn(attempt("tech1".into(), "wrong password"));
    }
    let answers = storm.join_all().await;
    let checked = answers.iter().filter(|s| **s == 401).count();
    let limited = answers.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + limited, 300, "{answers:?}");
    assert!(
        checked <= 11,
        "{checked} of 300 concurrent wrong passwords were hashed; the limit allows 10"
    );

    let long = "u".repeat(100_000);
    assert_eq!(
        attempt(long, "wrong password").await,
        400,
        "a username no account can have is refused before anything else"
    );

    clock.advance(std::time::Duration::from_secs(120));
    assert_eq!(
        attempt("tech1".into(), PASSWORD).await,
        200,
        "two minutes later the real user signs in"
    );
}

/// Item 6: behind a load balancer every client arrives from the proxy's address; with
/// the proxy's header configured, one client's failures do not delay another's sign-in,
/// and without it the header is ignored (a client cannot choose its own key).
async fn behind_a_trusted_proxy_each_client_has_its_own_limiter_key(kind: Kind) {
    for trusted in [true, false] {
        let cfg = outpost_server::ServerConfig {
            login_max_failures: 3,
            trusted_proxy_header: trusted.then(|| "x-forwarded-for".to_owned()),
            ..test_config()
        };
        let s = TestServer::start_with(kind, cfg).await;
        let attempt = |username: &str, password: &str, client: &str| {
            s.http
                .post(s.url(paths::LOGIN))
                .header("x-forwarded-for", format!("203.0.113.9, {client}"))
                .json(&LoginRequest {
                    username: username.into(),
                    password: password.into(),
                    device_id: Uuid::new_v4(),
                })
                .send()
        };
        for _ in 0..3 {
            let st = attempt("tech1", "wrong password", "198.51.100.1")
                .await
                .expect("login")
                .status();
            assert_eq!(st, 401);
        }
        let other = attempt("tech2", PASSWORD, "198.51.100.2")
            .await
            .expect("login")
            .status();
        if trusted {
            assert_eq!(other, 200, "another client behind the proxy signs in");
        } else {
            assert_eq!(
                other, 429,
                "an untrusted header is ignored: one address, one key"
            );
        }
    }
}

/// Item 10: reusing a rotated refresh token inside the grace window (a lost reply, or a
/// thief racing the device) must neither revoke the legitimate successor nor hand out a
/// second, independent pair: it answers the same successor.
async fn a_rotated_refresh_token_reused_in_the_grace_window_gets_the_same_successor(kind: Kind) {
    let clock = MovableClock::new();
    let cfg = outpost_server::ServerConfig {
        refresh_grace: std::time::Duration::from_secs(30),
        clock: clock.clone(),
        ..test_config()
    };
    let s = TestServer::start_with(kind, cfg).await;
    let t = s.login("tech1").await;
    let refresh = |token: String| {
        let req = s.http.post(s.url(paths::REFRESH)).json(&RefreshRequest {
            refresh_token: token,
            device_id: t.device,
        });
        async move { req.send().await.expect("refresh") }
    };
    let first = refresh(t.tokens.refresh_token.clone()).await;
    assert_eq!(first.status(), 200);
    let first: TokenResponse = first.json().await.expect("tokens");
    clock.advance(std::time::Duration::from_secs(5));
    let again = refresh(t.tokens.refresh_token.clone()).await;
    assert_eq!(again.status(), 200, "within the grace window");
    let again: TokenResponse = again.json().await.expect("tokens");
    assert_eq!(
        again.refresh_token, first.refresh_token,
        "the same successor, not a second pair"
    );
    let next = refresh(first.refresh_token.clone()).await;
    assert_eq!(
        next.status(),
        200,
        "the legitimate successor still works after the reuse"
    );
}

/// Item 11: `/metrics` is not open to anyone who can reach the server, and signing out
/// ends the access token too, not only the refresh token.
async fn metrics_need_their_token_and_logout_ends_the_access_token(kind: Kind) {
    let s = TestServer::start(kind).await;
    let anonymous = s
        .http
        .get(s.url(paths::METRICS))
        .send()
        .await
        .expect("metrics");
    assert_eq!(anonymous.status(), 401, "metrics without a token");

    let t = s.login("tech1").await;
    let resp = s
        .http
        .post(s.url(paths::LOGOUT))
        .json(&LogoutRequest {
            refresh_token: t.tokens.refresh_token.clone(),
        })
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status(), 204);
    let after = t.pull_raw(&PullRequest::default()).await;
    assert_eq!(
        after.status(),
        401,
        "the access token ends with the sign-out"
    );
}

/// Item 7: a client that opens a connection and sends its headers a byte at a time
/// (slowloris) is disconnected once the header-read timeout passes, instead of holding
/// the connection (and its task) for ever.
async fn a_client_that_never_finishes_its_headers_is_disconnected(kind: Kind) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let s = TestServer::start_with(kind, slow_client_config()).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(b"POST /v1/auth/login HTTP/1.1\r\nHost: outpost\r\nX-Slow: a")
        .await
        .expect("the first bytes");
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection is still open 5 s after the last header byte"
    );
}

/// Issue 25: past `max_in_flight` requests handled at once, the next `/v1/` request is
/// answered 503 with `Retry-After` at once (the server sheds load instead of queuing
/// every request with its memory); the health check stays open, and the slot is free
/// again once the request holding it ends.
async fn a_request_past_the_in_flight_limit_is_shed_with_retry_after(kind: Kind) {
    use tokio::io::AsyncWriteExt as _;
    let s = TestServer::start_with(
        kind,
        outpost_server::ServerConfig {
            max_in_flight: 1,
            ..test_config()
        },
    )
    .await;
    let t = s.login("tech1").await;
    // A pull whose body never finishes holds the one slot. Nothing else is in flight
    // while it is taken up; a connection the server answered at once (shed: the slot
    // was not free yet) is replaced.
    use tokio::io::AsyncReadExt as _;
    let addr = s.base.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: outpost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        paths::PULL,
        t.tokens.access_token
    );
    let mut held = None;
    for _ in 0..20 {
        let mut conn = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        conn.write_all(head.as_bytes())
            .await
            .expect("the held request");
        let mut first = [0u8; 64];
        match tokio::time::timeout(std::time::Duration::from_millis(300), conn.read(&mut first))
            .await
        {
            // No answer: the request is in the server's hands, waiting for its body.
            Err(_) => {
                held = Some(conn);
                break;
            }
            Ok(_) => continue,
        }
    }
    let held = held.expect("a request holds the slot");
    let mut shed = None;
    for _ in 0..20 {
        let resp = t.pull_raw(&PullRequest::default()).await;
        if resp.status() == 503 {
            shed = Some(resp);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let shed = shed.expect("a request past the limit is shed");
    assert_eq!(
        shed.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("2"),
        "it says when to come back"
    );
    let body: ErrorBody = shed.json().await.expect("an error body");
    assert_eq!(body.code, ErrorCode::Unavailable);
    let health = reqwest::get(format!("{}{}", s.base, paths::HEALTH))
        .await
        .expect("health");
    assert_eq!(health.status(), 200, "the health check is not shed");
    drop(held);
    let mut served = false;
    for _ in 0..100 {
        if t.pull_raw(&PullRequest::default()).await.status() == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(served, "the slot is free again once the held request ends");
}

/// Item 9: a PostgreSQL URL asking for verified TLS (`sslmode=verify-full` with the
/// cluster's certificate as `sslrootcert`) connects over TLS, and the same URL with a
/// certificate that did not sign the server's is refused instead of trusting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh cargo test -p outpost-server -- --include-ignored (make test runs it)"]
async fn postgres_with_sslmode_verify_full_connects_over_verified_tls() {
    let ca = std::env::var("OUTPOST_TEST_PG_CA")
        .expect("OUTPOST_TEST_PG_CA: run through scripts/with-postgres.sh");
    let dir = tempfile::tempdir().expect("dir");
    let url = fresh_db_url(Kind::Postgres, dir.path()).await;
    let db = outpost_server::Db::open(&format!("{url}?sslmode=verify-full&sslrootcert={ca}"))
        .await
        .expect("connects with verified TLS");
    let ssl = db
        .read(|sql| {
            sql.query(
                "SELECT CASE WHEN ssl THEN 1 ELSE 0 END FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )?[0]
                .i64(0)
        })
        .await
        .expect("pg_stat_ssl");
    assert_eq!(ssl, 1, "the connection uses TLS");

    let other = dir.path().join("other-ca.pem");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    std::fs::write(&other, made.cert.pem()).expect("write");
    let refused = outpost_server::Db::open(&format!(
        "{url}?sslmode=verify-full&sslrootcert={}",
        other.display()
    ))
    .await;
    assert!(
        refused.is_err(),
        "a server certificate the given root did not sign is refused"
    );
}

/// Item 7: an upload that is never finished does not keep its bytes for ever: `prune`
/// drops incomplete uploads last touched before its cutoff.
async fn an_incomplete_upload_expires_with_the_prune(kind: Kind) {
    let s = TestServer::start(kind).await;
    let t1 = s.login("tech1").await;
    let bytes = vec![7u8; 3000];
    let hash = outpost_protocol::attachment_hash(&bytes);
    let resp = t1.put_chunk(&hash, 0, bytes.len(), &bytes[..1000]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(t1.attachment_status(&hash).await.received, 1000);
    let later = s.cfg.now_us() + 1;
    s.db.write(move |sql| outpost_server::repo::prune(sql, later))
        .await
        .expect("prune");
    assert_eq!(
        t1.attachment_status(&hash).await.received,
        0,
        "the incomplete upload is gone after the prune"
    );
}

/// Three different files of `len` bytes each, with their names (SHA-256).
fn three_files(len: u32) -> [(String, Vec<u8>); 3] {
    [3u8, 5, 7].map(|seed| {
        let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed)).collect();
        (outpost_protocol::attachment_hash(&bytes), bytes)
    })
}

/// One file of a batch upload.
fn batch_file(hash: &str, bytes: &[u8]) -> BatchFile {
    BatchFile {
        hash: hash.to_owned(),
        data_base64: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes),
    }
}

/// Item 7: each user's files count against their own storage quota; a file past it is
/// refused before any byte is stored, as `quota_exceeded` for a protocol 2 client and
/// `payload_too_large` (which release 0.1.0 sets the completion aside for) for protocol 1.
async fn a_file_past_the_users_storage_quota_is_refused_in_words_each_protocol_understands(
    kind: Kind,
) {
    let cfg = outpost_server::config::ServerConfig {
        attachment_quota_bytes: 5000,
        ..test_config()
    };
    let s = TestServer::start_with(kind, cfg).await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let [(a, a_bytes), (b, b_bytes), (c, c_bytes)] = three_files(3000);
    assert_eq!(t1.put_chunk(&a, 0, 3000, &a_bytes).await.status(), 200);

    // Protocol 1 (no header): a code release 0.1.0 knows.
    let (status, body) = error_of(t1.put_chunk(&b, 0, 3000, &b_bytes[..1000]).await).await;
    assert_eq!(
        (status, body.code),
        (413, ErrorCode::PayloadTooLarge),
        "{body:?}"
    );
    assert!(body.message.contains("storage quota"), "{}", body.message);
    assert_eq!(t1.attachment_status(&b).await.received, 0, "nothing stored");

    // Protocol 2: its own code, for a resumable upload and in a batch.
    let resp = s
        .http
        .put(t1.url(&format!("/v1/attachments/{b}?offset=0&total=3000")))
        .bearer_auth(&t1.tokens.access_token)
        .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
        .body(b_bytes.clone())
        .send()
        .await
        .expect("chunk");
    let (status, body) = error_of(resp).await;
    assert_eq!(
        (status, body.code),
        (413, ErrorCode::QuotaExceeded),
        "{body:?}"
    );
    let batch = BatchUploadRequest {
        files: vec![batch_file(&c, &c_bytes)],
    };
    let resp = t1
        .post(paths::ATTACHMENTS_BATCH)
        .json(&batch)
        .send()
        .await
        .expect("batch");
    assert_eq!(resp.status(), 200);
    let r: BatchUploadResponse = resp.json().await.expect("batch answer");
    assert!(!r.results[0].complete);
    assert_eq!(
        r.results[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::QuotaExceeded)
    );

    // A file the user holds already costs nothing more; another user has their own quota.
    assert_eq!(t1.put_chunk(&a, 0, 3000, &a_bytes).await.status(), 200);
    assert_eq!(t2.put_chunk(&b, 0, 3000, &b_bytes).await.status(), 200);
}

/// The quota in a batch upload (issue 24: summed once per request, then kept as the
/// batch stores files): a file's upload in progress stops counting once the file is
/// whole, a file sent twice in one batch counts once, and the file that would pass the
/// quota is refused while the ones before it are stored.
async fn a_batch_counts_the_quota_as_it_stores_its_files(kind: Kind) {
    let cfg = outpost_server::config::ServerConfig {
        attachment_quota_bytes: 5000,
        ..test_config()
    };
    let s = TestServer::start_with(kind, cfg).await;
    let t1 = s.login("tech1").await;
    let [(a, a_bytes), (b, b_bytes), (c, c_bytes)] = three_files(2000);
    // Half of `a` sent resumably: its whole size (2000) counts while it is in progress.
    assert_eq!(
        t1.put_chunk(&a, 0, 2000, &a_bytes[..1000]).await.status(),
        200
    );
    let batch = BatchUploadRequest {
        files: vec![
            batch_file(&a, &a_bytes),
            batch_file(&a, &a_bytes),
            batch_file(&b, &b_bytes),
            batch_file(&c, &c_bytes),
        ],
    };
    let resp = t1
        .post(paths::ATTACHMENTS_BATCH)
        .json(&batch)
        .send()
        .await
        .expect("batch");
    assert_eq!(resp.status(), 200);
    let r: BatchUploadResponse = resp.json().await.expect("batch answer");
    let outcome: Vec<(bool, Option<ErrorCode>)> = r
        .results
        .iter()
        .map(|f| (f.complete, f.error.as_ref().map(|e| e.code)))
        .collect();
    assert_eq!(
        outcome,
        [
            (true, None),
            (true, None),
            (true, None),
            (false, Some(ErrorCode::QuotaExceeded)),
        ],
        "a (2000, its upload done) and b (2000) fit in 5000; c would make 6000"
    );
    assert_eq!(
        t1.attachment_status(&c).await.received,
        0,
        "nothing of c stored"
    );
}

/// Item 7: a list answer has a byte budget. Failed syncs carry their whole payload (a
/// push may be 8 MiB), and a list may ask for thousands: the answer stops at 4 MiB
/// (at least one record), newest first.
async fn a_list_of_failed_syncs_stops_at_its_byte_budget(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let order = d.create_order(Some("tech1")).await;
    // Each refused mutation (an unknown part) carries about 1 MB of notes.
    let big = "n".repeat(10_000);
    for _ in 0..6 {
        let mut ops: Vec<Op> = (0..100)
            .map(|_| Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::now_v7(),
                    author: "tech1".into(),
                    text: big.clone(),
                    at: chrono::Utc::now(),
                },
            })
            .collect();
        ops.push(Op::Add(outpost_protocol::mutation::ListItem::PartsUsed(
            PartUsed {
                id: Uuid::now_v7(),
                sku: "NO-SUCH-SKU".into(),
                quantity: Quantity(1000),
            },
        )));
        let out = t1
            .push1(t1.mutation(order.id, MutationKind::Update, 1, ops))
            .await;
        assert!(matches!(out, PushOutcome::Rejected(_)), "{out:?}");
    }
    let resp = d
        .get(&format!("{}?status=all&limit=5000", paths::FAILED_SYNCS))
        .send()
        .await
        .expect("list");
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.expect("body");
    assert!(
        body.len() <= 4 * 1024 * 1024,
        "the answer is {} bytes, over its 4 MiB budget",
        body.len()
    );
    let list: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let n = list["items"].as_array().map_or(0, Vec::len);
    assert!((1..6).contains(&n), "some records, not all: {n}");
    assert_eq!(list["more"], true, "the answer says there are more");
}

/// A refused mutation of tech1 carrying about `kb` KB of notes (an unknown part refuses it).
fn refused_with_notes(t1: &Session, order: Uuid, kb: usize) -> Mutation {
    let text = "n".repeat(1_000);
    let mut ops: Vec<Op> = (0..kb)
        .map(|_| Op::AppendNote {
            note: NoteEntry {
                id: Uuid::now_v7(),
                author: "tech1".into(),
                text: text.clone(),
                at: chrono::Utc::now(),
            },
        })
        .collect();
    ops.push(Op::Add(outpost_protocol::mutation::ListItem::PartsUsed(
        PartUsed {
            id: Uuid::now_v7(),
            sku: "NO-SUCH-SKU".into(),
            quantity: Quantity(1000),
        },
    )));
    t1.mutation(order, MutationKind::Update, 1, ops)
}

/// Item 7 (rest): the open failed-sync records the server keeps for one person have a
/// byte budget. Past it a refusal is still answered (with its own code, so the device
/// sets the change aside in front of the technician, who can send it again), but not
/// stored; once a dispatcher decides a waiting one, refusals are recorded again. Other
/// people are not affected.
async fn the_refused_changes_the_server_keeps_for_one_person_stop_at_their_budget_and_stay_on_the_device_past_it(
    kind: Kind,
) {
    let cfg = outpost_server::ServerConfig {
        failed_sync_budget_bytes: 250_000,
        ..test_config()
    };
    let s = TestServer::start_with(kind, cfg).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let order = d.create_order(Some("tech1")).await;
    let mut recorded = Vec::new();
    let mut unrecorded = Vec::new();
    for _ in 0..5 {
        // About 100 KB each: two fit in 250 KB, the third does not.
        match t1.push1(refused_with_notes(&t1, order.id, 100)).await {
            PushOutcome::Rejected(r) => {
                assert_eq!(
                    r.code,
                    ErrorCode::UnknownSku,
                    "the refusal keeps its own code: {r:?}"
                );
                match r.failed_sync_id {
                    Some(id) => recorded.push(id),
                    None => {
                        assert!(
                            r.message.contains("stays on this device"),
                            "the message says where the change is: {}",
                            r.message
                        );
                        unrecorded.push(r)
                    }
                }
            }
            other => panic!("refused expected: {other:?}"),
        }
    }
    assert_eq!(recorded.len(), 2, "two refusals fit the budget");
    assert_eq!(unrecorded.len(), 3, "the rest are answered but not stored");
    let list: FailedSyncList = d
        .get(&format!("{}?status=open&limit=5000", paths::FAILED_SYNCS))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let mine: Vec<FailedSyncRecord> = list
        .items
        .into_iter()
        .filter(|f| f.username == "tech1")
        .collect();
    assert_eq!(mine.len(), 2, "only the recorded refusals are stored");
    let bytes: usize = mine
        .iter()
        .map(|f| serde_json::to_string(f).expect("json").len())
        .sum();
    assert!(
        bytes <= 250_000,
        "{bytes} bytes stored, over the 250 KB budget"
    );

    // Someone else's refusals are recorded as usual.
    let order2 = d.create_order(Some("tech2")).await;
    let mut m2 = refused_with_notes(&t2, order2.id, 100);
    m2.ops.truncate(m2.ops.len() - 1);
    m2.ops.drain(..99);
    m2.ops
        .push(Op::Add(outpost_protocol::mutation::ListItem::PartsUsed(
            PartUsed {
                id: Uuid::now_v7(),
                sku: "NO-SUCH-SKU".into(),
                quantity: Quantity(1000),
            },
        )));
    match t2.push1(m2).await {
        PushOutcome::Rejected(r) => assert!(r.failed_sync_id.is_some(), "{r:?}"),
        other => panic!("refused expected: {other:?}"),
    }

    // A dispatcher decides one of tech1's; the next refusal is recorded again.
    let first = mine.iter().find(|f| f.id == recorded[0]).expect("recorded");
    let out = d
        .push1(first.resolve_mutation(Vec::new(), Uuid::now_v7(), d.device, chrono::Utc::now()))
        .await;
    assert!(matches!(out, PushOutcome::Applied(_)), "{out:?}");
    match t1.push1(refused_with_notes(&t1, order.id, 100)).await {
        PushOutcome::Rejected(r) => assert!(
            r.failed_sync_id.is_some(),
            "recorded once there is room again: {r:?}"
        ),
        other => panic!("refused expected: {other:?}"),
    }
}

/// Item 4 (rest): a reference to a file the server does not store yet records who made
/// it. Bytes someone else uploads later do not become readable through it; the maker's
/// own deferred upload still completes their reference.
async fn a_reference_made_before_the_bytes_exist_grants_only_the_bytes_its_maker_uploads(
    kind: Kind,
) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let read = |who: &Session, hash: &str| who.get(&format!("/v1/attachments/{hash}")).send();
    let secret = b"tech2's photo of another customer's meter".to_vec();
    let secret_hash = outpost_protocol::attachment_hash(&secret);
    let own = b"tech1's own photo, uploaded later on a better link".to_vec();
    let own_hash = outpost_protocol::attachment_hash(&own);

    let order = d.create_order(Some("tech1")).await;
    let out = t1
        .push1(t1.mutation(
            order.id,
            MutationKind::Update,
            1,
            vec![photo_of(&secret_hash), photo_of(&own_hash)],
        ))
        .await;
    assert!(
        matches!(out, PushOutcome::Applied(_)),
        "deferred uploads: {out:?}"
    );

    // Someone else uploads exactly the bytes tech1 named.
    assert_eq!(
        t2.put_chunk(&secret_hash, 0, secret.len(), &secret)
            .await
            .status(),
        200
    );
    let got = read(&t1, &secret_hash).await.expect("get");
    assert_eq!(
        got.status(),
        404,
        "bytes tech2 uploaded are readable through tech1's earlier reference"
    );
    let st = t1.attachment_status(&secret_hash).await;
    assert!(!st.complete && st.received == 0, "{st:?}");

    // tech1's own deferred upload completes their reference.
    assert_eq!(
        t1.put_chunk(&own_hash, 0, own.len(), &own).await.status(),
        200
    );
    let got = read(&t1, &own_hash).await.expect("get");
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.expect("bytes").to_vec(), own);
    // And the dispatcher (staff) reads both.
    assert_eq!(read(&d, &secret_hash).await.expect("get").status(), 200);
}
