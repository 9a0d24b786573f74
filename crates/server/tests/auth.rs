//! Auth and bad input over real HTTP, on both backends: tokens, refresh rotation and
//! its grace period, revocation, disabling, rate limits, and every kind of malformed
//! request answered with a 4xx, a stable code, and no write.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::*;
use outpost_protocol::wire::*;
use outpost_protocol::*;
use uuid::Uuid;

both!(
    health_answers_without_a_token_and_metrics_with_theirs,
    login_refuses_wrong_credentials_and_malformed_bodies,
    everything_under_v1_needs_a_token,
    refresh_rotates_with_a_grace_period_and_reuse_revokes_the_device,
    an_expired_access_token_is_refused_and_tokens_survive_a_restart,
    disabling_a_user_or_revoking_a_device_takes_effect_at_once,
    failed_logins_are_rate_limited,
    bad_input_gets_a_stable_code_and_writes_nothing,
);

async fn health_answers_without_a_token_and_metrics_with_theirs(kind: Kind) {
    let s = TestServer::start(kind).await;
    let h: Health = s
        .http
        .get(s.url(paths::HEALTH))
        .send()
        .await
        .expect("h")
        .json()
        .await
        .expect("j");
    assert_eq!(h.status, "ok");
    let d = s.login("dispatcher").await;
    d.create_order(None).await;
    let m = s
        .http
        .get(s.url(paths::METRICS))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .expect("m")
        .text()
        .await
        .expect("t");
    assert!(
        m.contains("outpost_push_mutations_total{outcome=\"applied\"} 1"),
        "{m}"
    );
    assert!(m.contains(
        "outpost_http_requests_total{method=\"POST\",route=\"/v1/push\",status=\"200\"}"
    ));
}

async fn login_refuses_wrong_credentials_and_malformed_bodies(kind: Kind) {
    let s = TestServer::start(kind).await;
    let login = |body: serde_json::Value| s.http.post(s.url(paths::LOGIN)).json(&body).send();
    let dev = Uuid::new_v4();
    let (st, e) = error_of(
        login(serde_json::json!({"username": "tech1", "password": "nope", "device_id": dev}))
            .await
            .expect("r"),
    )
    .await;
    assert_eq!((st, e.code), (401, ErrorCode::InvalidCredentials));
    let (st, e) = error_of(
        login(serde_json::json!({"username": "ghost", "password": PASSWORD, "device_id": dev}))
            .await
            .expect("r"),
    )
    .await;
    assert_eq!(
        (st, e.code),
        (401, ErrorCode::InvalidCredentials),
        "an unknown user looks the same"
    );
    let (st, e) = error_of(login(serde_json::json!({"username": "tech1", "password": PASSWORD, "device_id": "not-a-uuid"})).await.expect("r")).await;
    assert_eq!((st, e.code), (400, ErrorCode::InvalidBody));
    let (st, e) = error_of(
        login(serde_json::json!({"username": "tech1"}))
            .await
            .expect("r"),
    )
    .await;
    assert_eq!((st, e.code), (400, ErrorCode::InvalidBody));
    let r = s
        .http
        .post(s.url(paths::LOGIN))
        .body("{not json")
        .send()
        .await
        .expect("r");
    let (st, e) = error_of(r).await;
    assert_eq!((st, e.code), (400, ErrorCode::MalformedJson));
    let t = s.login("tech1").await;
    assert_eq!(t.tokens.role, Role::Technician);
}

async fn everything_under_v1_needs_a_token(kind: Kind) {
    let s = TestServer::start(kind).await;
    for (method, path) in [
        ("POST", paths::PUSH),
        ("POST", paths::PULL),
        ("GET", paths::CONFLICTS),
        ("GET", paths::FAILED_SYNCS),
        ("GET", "/v1/orders/00000000-0000-0000-0000-000000000000"),
        ("GET", "/v1/no-such-thing"),
    ] {
        let req = if method == "GET" {
            s.http.get(s.url(path))
        } else {
            s.http.post(s.url(path)).body("{}")
        };
        let (st, e) = error_of(req.send().await.expect("r")).await;
        assert_eq!(
            (st, e.code),
            (401, ErrorCode::Unauthorized),
            "{method} {path}"
        );
        let req = if method == "GET" {
            s.http.get(s.url(path))
        } else {
            s.http.post(s.url(path)).body("{}")
        };
        let (st, e) = error_of(req.bearer_auth("v1.forged.token").send().await.expect("r")).await;
        assert_eq!(
            (st, e.code),
            (401, ErrorCode::TokenInvalid),
            "{method} {path} with a forged token"
        );
    }
    let t = s.login("tech1").await;
    let (st, e) = error_of(t.get("/v1/no-such-thing").send().await.expect("r")).await;
    assert_eq!((st, e.code), (404, ErrorCode::NotFound));
    let (st, e) = error_of(t.get(paths::PUSH).send().await.expect("r")).await;
    assert_eq!((st, e.code), (405, ErrorCode::MethodNotAllowed));
    // A token signed by someone else is refused even with a valid shape.
    let mut forged = t.tokens.access_token.clone();
    forged.push('A');
    let (st, _) = error_of(
        s.http
            .post(s.url(paths::PULL))
            .bearer_auth(forged)
            .json(&PullRequest::default())
            .send()
            .await
            .expect("r"),
    )
    .await;
    assert_eq!(st, 401);
}

async fn refresh(s: &TestServer, token: &str, device: Uuid) -> reqwest::Response {
    s.http
        .post(s.url(paths::REFRESH))
        .json(&RefreshRequest {
            refresh_token: token.into(),
            device_id: device,
        })
        .send()
        .await
        .expect("refresh")
}

async fn refresh_rotates_with_a_grace_period_and_reuse_revokes_the_device(kind: Kind) {
    let clock = MovableClock::new();
    let cfg = outpost_server::ServerConfig {
        refresh_grace: Duration::from_millis(600),
        clock: clock.clone(),
        ..test_config()
    };
    let s = TestServer::start_with(kind, cfg).await;
    let t = s.login("tech1").await;
    let r1 = t.tokens.refresh_token.clone();
    let resp = refresh(&s, &r1, t.device).await;
    assert_eq!(resp.status(), 200);
    let new: TokenResponse = resp.json().await.expect("tokens");
    assert_ne!(new.refresh_token, r1, "rotated");
    // Bound to the device.
    let (st, e) = error_of(refresh(&s, &new.refresh_token, Uuid::new_v4()).await).await;
    assert_eq!((st, e.code), (401, ErrorCode::TokenInvalid));
    // The previous token within the grace period (a lost reply) still works.
    let resp = refresh(&s, &r1, t.device).await;
    assert_eq!(resp.status(), 200, "grace period");
    let newest: TokenResponse = resp.json().await.expect("tokens");
    // After the grace period, reuse of the old token revokes the device.
    clock.advance(Duration::from_millis(800));
    let (st, e) = error_of(refresh(&s, &r1, t.device).await).await;
    assert_eq!((st, e.code), (401, ErrorCode::RefreshReused));
    assert!(e.code.needs_sign_in());
    let (st, _) = error_of(refresh(&s, &newest.refresh_token, t.device).await).await;
    assert_eq!(st, 401, "every token of the device stops working");
    let r = s
        .http
        .post(s.url(paths::PULL))
        .bearer_auth(&newest.access_token)
        .json(&PullRequest::default())
        .send()
        .await
        .expect("p");
    let (st, e) = error_of(r).await;
    assert_eq!((st, e.code), (401, ErrorCode::DeviceRevoked));
    // Signing in again (a moment later: a token issued in the revocation's microsecond
    // counts as revoked) works.
    clock.advance(Duration::from_millis(1));
    let again = s.login_device("tech1", t.device).await;
    assert_eq!(
        again
            .post(paths::PULL)
            .json(&PullRequest::default())
            .send()
            .await
            .expect("p")
            .status(),
        200
    );
}

async fn an_expired_access_token_is_refused_and_tokens_survive_a_restart(kind: Kind) {
    let clock = MovableClock::new();
    let cfg = outpost_server::ServerConfig {
        access_ttl: Duration::from_secs(1),
        clock: clock.clone(),
        ..test_config()
    };
    let mut s = TestServer::start_with(kind, cfg).await;
    let t = s.login("tech1").await;
    // A restart (new state, keys loaded from the store) keeps tokens valid.
    s.stop().await;
    s.listen().await;
    let r = s
        .http
        .post(s.url(paths::PULL))
        .bearer_auth(&t.tokens.access_token)
        .json(&PullRequest::default())
        .send()
        .await
        .expect("p");
    assert_eq!(r.status(), 200, "tokens survive a restart");
    clock.advance(Duration::from_millis(1300));
    let r = s
        .http
        .post(s.url(paths::PULL))
        .bearer_auth(&t.tokens.access_token)
        .json(&PullRequest::default())
        .send()
        .await
        .expect("p");
    let (st, e) = error_of(r).await;
    assert_eq!((st, e.code), (401, ErrorCode::TokenExpired));
    assert!(e.code.is_transient(), "refresh and retry");
    assert_eq!(
        refresh(&s, &t.tokens.refresh_token, t.device)
            .await
            .status(),
        200
    );
}

async fn disabling_a_user_or_revoking_a_device_takes_effect_at_once(kind: Kind) {
    let s = TestServer::start(kind).await;
    let t1 = s.login("tech1").await;
    let t2 = s.login("tech2").await;
    let pull = |sess: &Session| {
        s.http
            .post(s.url(paths::PULL))
            .bearer_auth(sess.tokens.access_token.clone())
            .json(&PullRequest::default())
            .send()
    };
    s.db.write(|sql| outpost_server::repo::set_user_disabled(sql, "tech1", true))
        .await
        .expect("disable");
    let (st, e) = error_of(pull(&t1).await.expect("p")).await;
    assert_eq!((st, e.code), (403, ErrorCode::UserDisabled));
    let (st, e) = error_of(
        s.http
            .post(s.url(paths::LOGIN))
            .json(&LoginRequest {
                username: "tech1".into(),
                password: PASSWORD.into(),
                device_id: Uuid::new_v4(),
            })
            .send()
            .await
            .expect("l"),
    )
    .await;
    assert_eq!((st, e.code), (403, ErrorCode::UserDisabled));
    let dev = t2.device;
    let now = chrono::Utc::now().timestamp_micros();
    s.db.write(move |sql| outpost_server::repo::revoke_device(sql, dev, None, now))
        .await
        .expect("revoke");
    let (st, e) = error_of(pull(&t2).await.expect("p")).await;
    assert_eq!((st, e.code), (401, ErrorCode::DeviceRevoked));
    let (st, _) = error_of(refresh(&s, &t2.tokens.refresh_token, dev).await).await;
    assert_eq!(st, 401);
}

async fn failed_logins_are_rate_limited(kind: Kind) {
    let cfg = outpost_server::ServerConfig {
        login_max_failures: 3,
        ..test_config()
    };
    let s = TestServer::start_with(kind, cfg).await;
    let bad = LoginRequest {
        username: "tech1".into(),
        password: "wrong".into(),
        device_id: Uuid::new_v4(),
    };
    for _ in 0..3 {
        let r = s
            .http
            .post(s.url(paths::LOGIN))
            .json(&bad)
            .send()
            .await
            .expect("l");
        assert_eq!(r.status(), 401);
    }
    let r = s
        .http
        .post(s.url(paths::LOGIN))
        .json(&bad)
        .send()
        .await
        .expect("l");
    assert!(
        r.headers().get("retry-after").is_some(),
        "Retry-After is set"
    );
    let (st, e) = error_of(r).await;
    assert_eq!((st, e.code), (429, ErrorCode::RateLimited));
    // Even the right password waits now.
    let good = LoginRequest {
        password: PASSWORD.into(),
        ..bad
    };
    assert_eq!(
        s.http
            .post(s.url(paths::LOGIN))
            .json(&good)
            .send()
            .await
            .expect("l")
            .status(),
        429
    );
}

async fn bad_input_gets_a_stable_code_and_writes_nothing(kind: Kind) {
    let s = TestServer::start(kind).await;
    let d = s.login("dispatcher").await;
    let order = d.create_order(Some("tech1")).await;
    let good = d.mutation(
        order.id,
        MutationKind::Update,
        1,
        vec![Op::Set(SetOp::Title("x".into()))],
    );
    let good_json = serde_json::to_value(&good).expect("json");
    let seq = s.last_seq().await;
    let push_raw = |body: Vec<u8>| {
        d.post(paths::PUSH)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut m = good_json.clone();
        f(&mut m);
        serde_json::to_vec(&serde_json::json!({ "mutations": [m] })).expect("json")
    };
    let cases: Vec<(&str, Vec<u8>, u16, ErrorCode)> = vec![
        (
            "malformed JSON",
            b"{\"mutations\": [".to_vec(),
            400,
            ErrorCode::MalformedJson,
        ),
        (
            "invalid UTF-8",
            b"{\"mutations\": [\"\xff\xfe\"]}".to_vec(),
            400,
            ErrorCode::InvalidUtf8,
        ),
        (
            "unknown top-level field",
            br#"{"mutations": [], "extra": 1}"#.to_vec(),
            400,
            ErrorCode::InvalidBody,
        ),
        (
            "missing field",
            with(&|m| {
                m.as_object_mut().expect("o").remove("entity_id");
            }),
            400,
            ErrorCode::InvalidBody,
        ),
        (
            "unknown field in a mutation",
            with(&|m| {
                m["colour"] = "red".into();
            }),
            400,
            ErrorCode::InvalidBody,
        ),
        (
            "wrong type",
            with(&|m| {
                m["base_version"] = "one".into();
            }),
            400,
            ErrorCode::InvalidBody,
        ),
        (
            "out of range",
            with(&|m| {
                m["base_version"] = serde_json::json!(-1);
            }),
            400,
            ErrorCode::OutOfRange,
        ),
        (
            "unknown op field",
            with(&|m| {
                m["ops"] = serde_json::json!([{"op": "set", "field": "colour", "value": 1}]);
            }),
            400,
            ErrorCode::InvalidBody,
        ),
        (
            "oversized body",
            vec![b' '; limits::JSON_BODY_BYTES_MAX + 10],
            413,
            ErrorCode::PayloadTooLarge,
        ),
    ];
    for (what, body, status, code) in cases {
        let (st, e) = error_of(push_raw(body).await.expect("push")).await;
        assert_eq!((st, e.code), (status, code), "{what}: {}", e.message);
        assert!(!e.message.is_empty());
    }
    // Too many mutations in one push.
    let many: Vec<Mutation> = (0..limits::PUSH_MUTATIONS_MAX + 1)
        .map(|_| good.clone())
        .collect();
    let (st, e) = error_of(
        d.post(paths::PUSH)
            .json(&PushRequest { mutations: many })
            .send()
            .await
            .expect("p"),
    )
    .await;
    assert_eq!((st, e.code), (413, ErrorCode::PayloadTooLarge));
    // A protocol version this server does not serve (newer, or older than the
    // previous one): refused with a message that says whom to update.
    for (version, says) in [
        ((PROTOCOL_VERSION + 1).to_string(), "update the server"),
        ("0".to_owned(), "update Outpost"),
    ] {
        let (st, e) = error_of(
            d.http
                .post(d.url(paths::PUSH))
                .bearer_auth(&d.tokens.access_token)
                .header(PROTOCOL_HEADER, version)
                .json(&PushRequest {
                    mutations: vec![good.clone()],
                })
                .send()
                .await
                .expect("p"),
        )
        .await;
        assert_eq!((st, e.code), (400, ErrorCode::UnsupportedProtocol));
        assert!(e.message.contains(says), "{}", e.message);
    }
    // Out-of-range pull bounds.
    let (st, e) = error_of(
        d.pull_raw(&PullRequest {
            cursor: None,
            limit: Some(0),
            max_bytes: None,
            confirmed: Vec::new(),
        })
        .await,
    )
    .await;
    assert_eq!((st, e.code), (400, ErrorCode::OutOfRange));
    let (st, e) = error_of(
        d.get(&format!("{}?status=maybe", paths::CONFLICTS))
            .send()
            .await
            .expect("l"),
    )
    .await;
    assert_eq!((st, e.code), (400, ErrorCode::InvalidBody));
    let (st, e) = error_of(d.get("/v1/orders/not-a-uuid").send().await.expect("g")).await;
    assert_eq!((st, e.code), (400, ErrorCode::InvalidBody));
    let (st, e) = error_of(
        d.http
            .put(d.url("/v1/attachments/nothex?offset=0&total=1"))
            .bearer_auth(&d.tokens.access_token)
            .body("x")
            .send()
            .await
            .expect("u"),
    )
    .await;
    assert_eq!((st, e.code), (400, ErrorCode::InvalidBody));
    assert_eq!(s.last_seq().await, seq, "nothing was written");
    // A mutation of another body format is refused per mutation (acknowledged).
    let mut future = good.clone();
    future.format = FORMAT_VERSION + 1;
    let PushOutcome::Rejected(r) = d.push1(future).await else {
        panic!("refused")
    };
    assert_eq!(r.code, ErrorCode::UnsupportedFormat);
}
