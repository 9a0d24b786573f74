//! The admin CLI and `serve` as real processes: `seed --demo` (idempotent, `--items`),
//! `user add --password-stdin`, `user disable`/`enable`, `user reset-password`,
//! `device revoke` and
//! `epoch reset` against a running server, graceful shutdown on SIGTERM finishing a
//! request that is still arriving, and TLS with a certificate made in the test.

mod common;

use std::time::Duration;

use common::process::{run, run_ok, ServerProcess};
use common::*;
use outpost_protocol::wire::*;
use outpost_protocol::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use uuid::Uuid;

fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite:{}", dir.join("server.db").display())
}

/// Users with the tests' cheap password hashing (the binary verifies any Argon2id
/// hash by the parameters stored in it), so sign-ins stay quick in debug builds.
async fn add_users(url: &str, users: &[(&str, Role)]) {
    let db = outpost_server::Db::open(url).await.expect("open");
    for (name, role) in users {
        outpost_server::add_user(&db, &test_config(), name, *role, PASSWORD)
            .await
            .expect("add user");
    }
}

async fn count(url: &str, table: &'static str) -> i64 {
    let db = outpost_server::Db::open(url).await.expect("open");
    db.read(move |sql| {
        let rows = sql.query(&format!("SELECT COUNT(*) FROM {table}"), &[])?;
        rows[0].i64(0)
    })
    .await
    .expect("count")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_demo_is_idempotent_and_grows_items_on_request() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(dir.path());
    let first = run_ok(&["seed", "--demo", "--items", "300", "--db", &url], "");
    assert!(
        first.contains("seeded: 6 users, 500 work orders, 300 inventory items added"),
        "{first}"
    );
    assert!(first.contains("outpost-demo"), "names the demo password");
    let again = run_ok(&["seed", "--demo", "--items", "300", "--db", &url], "");
    assert!(
        again.contains("seeded: 0 users, 0 work orders, 0 inventory items added"),
        "{again}"
    );
    let more = run_ok(&["seed", "--demo", "--items", "450", "--db", &url], "");
    assert!(
        more.contains("0 users, 0 work orders, 150 inventory items added"),
        "{more}"
    );
    let fewer = run_ok(&["seed", "--demo", "--items", "10", "--db", &url], "");
    assert!(fewer.contains("0 inventory items added"), "{fewer}");
    assert_eq!(count(&url, "inventory").await, 450, "nothing removed");
    assert_eq!(count(&url, "orders").await, 500);
    assert_eq!(count(&url, "users").await, 6);
    // Out of range is refused by the argument parser.
    let out = run(&["seed", "--demo", "--items", "1000001", "--db", &url], "");
    assert!(!out.status.success());

    // The demo users sign in with the demo password and see their orders.
    let server = ServerProcess::start(&url, &[]);
    let http = http();
    let device = Uuid::new_v4();
    let resp = http
        .post(server.url(paths::LOGIN))
        .json(&LoginRequest {
            username: "tech1".into(),
            password: outpost_server::seed::DEMO_PASSWORD.into(),
            device_id: device,
        })
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 200);
    let tokens: TokenResponse = resp.json().await.expect("tokens");
    let t1 = Session {
        base: server.base.clone(),
        http,
        username: "tech1".into(),
        device,
        tokens,
    };
    let (changes, _, _) = t1.pull_all(None, 1000).await;
    let orders = changes
        .iter()
        .filter(|c| c.entity == ChangeEntity::WorkOrder)
        .count();
    assert_eq!(orders, 100, "500 orders over 5 technicians");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_commands_take_effect_on_a_running_server_at_once() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(dir.path());

    // user add --password-stdin
    let added = run_ok(
        &[
            "user",
            "add",
            "--username",
            "ada",
            "--role",
            "dispatcher",
            "--password-stdin",
            "--db",
            &url,
        ],
        "ada-secret-pass\n",
    );
    assert!(added.contains("added ada (dispatcher)"), "{added}");
    for (args, stdin, why) in [
        (
            vec!["--username", "ada", "--role", "dispatcher"],
            "another-pass\n",
            "already exists",
        ),
        (
            vec!["--username", "bob", "--role", "dispatcher"],
            "short\n",
            "at least 8",
        ),
        (
            vec!["--username", "bob", "--role", "overlord"],
            "long-enough-pass\n",
            "role",
        ),
    ] {
        let mut full = vec!["user", "add"];
        full.extend(args);
        full.extend(["--password-stdin", "--db", &url]);
        let out = run(&full, stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{full:?} is refused");
        assert!(err.contains(why), "{full:?}: {err}");
    }
    add_users(
        &url,
        &[("tech1", Role::Technician), ("tech2", Role::Technician)],
    )
    .await;

    let server = ServerProcess::start(&url, &[]);
    let http = http();
    // The password given on stdin works (without its newline).
    let ada_device = Uuid::new_v4();
    let resp = http
        .post(server.url(paths::LOGIN))
        .json(&LoginRequest {
            username: "ada".into(),
            password: "ada-secret-pass".into(),
            device_id: ada_device,
        })
        .send()
        .await
        .expect("login");
    assert_eq!(
        resp.status(),
        200,
        "ada signs in with the password from stdin"
    );
    let ada = Session {
        base: server.base.clone(),
        http: http.clone(),
        username: "ada".into(),
        device: ada_device,
        tokens: resp.json().await.expect("tokens"),
    };
    let t1 = login_at(&http, &server.base, "tech1", Uuid::new_v4()).await;
    let t2 = login_at(&http, &server.base, "tech2", Uuid::new_v4()).await;
    let order = ada.create_order(Some("tech1")).await;
    let path = format!("/v1/orders/{}", order.id);
    assert_eq!(t1.get(&path).send().await.expect("get").status(), 200);

    // user disable: the next request fails, and so does signing in.
    let out = run_ok(
        &["user", "disable", "--username", "tech1", "--db", &url],
        "",
    );
    assert!(out.contains("disabled tech1"), "{out}");
    let (status, body) = error_of(t1.get(&path).send().await.expect("get")).await;
    assert_eq!((status, body.code), (403, ErrorCode::UserDisabled));
    let resp = http
        .post(server.url(paths::LOGIN))
        .json(&LoginRequest {
            username: "tech1".into(),
            password: PASSWORD.into(),
            device_id: t1.device,
        })
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 403);
    run_ok(&["user", "enable", "--username", "tech1", "--db", &url], "");
    assert_eq!(t1.get(&path).send().await.expect("get").status(), 200);
    let out = run(
        &["user", "disable", "--username", "nobody", "--db", &url],
        "",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named nobody"));

    // device revoke: that device's tokens stop working at once; its refresh token too.
    let device = t2.device.to_string();
    let out = run_ok(
        &["device", "revoke", "--device-id", &device, "--db", &url],
        "",
    );
    assert!(out.contains("revoked device"), "{out}");
    let (status, body) = error_of(t2.pull_raw(&PullRequest::default()).await).await;
    assert_eq!((status, body.code), (401, ErrorCode::DeviceRevoked));
    let resp = http
        .post(server.url(paths::REFRESH))
        .json(&RefreshRequest {
            refresh_token: t2.tokens.refresh_token.clone(),
            device_id: t2.device,
        })
        .send()
        .await
        .expect("refresh");
    assert_eq!(resp.status(), 401, "the revoked refresh token is refused");
    // Signing in again (the person, with the password) works.
    let t2 = login_at(&http, &server.base, "tech2", t2.device).await;
    assert_eq!(
        t2.pull_raw(&PullRequest::default()).await.status(),
        200,
        "a new sign-in works"
    );

    // epoch reset: every cursor becomes foreign.
    let (_, cursor, _) = ada.pull_all(None, 500).await;
    let out = run_ok(&["epoch", "reset", "--db", &url], "");
    assert!(out.contains("new epoch"), "{out}");
    let resp = ada
        .pull_raw(&PullRequest {
            cursor: Some(cursor),
            limit: None,
            max_bytes: None,
            confirmed: Vec::new(),
        })
        .await;
    let (status, body) = error_of(resp).await;
    assert_eq!((status, body.code), (409, ErrorCode::ResyncRequired));
    let (changes, _, _) = ada.pull_all(None, 500).await;
    assert!(changes.iter().any(|c| c.id == order.id.to_string()));
}

/// Issue 19 item 8: an administrator resets a password from stdin; the old password
/// stops working and every session of that user ends (their access and refresh tokens).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_password_takes_the_new_password_from_stdin_and_ends_the_users_sessions() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(dir.path());
    add_users(
        &url,
        &[("tech1", Role::Technician), ("tech2", Role::Technician)],
    )
    .await;
    let server = ServerProcess::start(&url, &[]);
    let http = http();
    let t1 = login_at(&http, &server.base, "tech1", Uuid::new_v4()).await;
    let t2 = login_at(&http, &server.base, "tech2", Uuid::new_v4()).await;

    let out = run(
        &[
            "user",
            "reset-password",
            "--username",
            "tech1",
            "--password-stdin",
            "--db",
            &url,
        ],
        "a-brand-new-password\n",
    );
    assert!(
        out.status.success(),
        "reset-password runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = error_of(t1.pull_raw(&PullRequest::default()).await).await;
    assert_eq!(status, 401, "tech1's access token ends: {body:?}");
    let resp = http
        .post(server.url(paths::REFRESH))
        .json(&RefreshRequest {
            refresh_token: t1.tokens.refresh_token.clone(),
            device_id: t1.device,
        })
        .send()
        .await
        .expect("refresh");
    assert_eq!(resp.status(), 401, "tech1's refresh token ends");
    let sign_in = |password: &'static str| {
        http.post(server.url(paths::LOGIN))
            .json(&LoginRequest {
                username: "tech1".into(),
                password: password.into(),
                device_id: t1.device,
            })
            .send()
    };
    assert_eq!(sign_in(PASSWORD).await.expect("login").status(), 401);
    assert_eq!(
        sign_in("a-brand-new-password")
            .await
            .expect("login")
            .status(),
        200,
        "the new password works (without its newline)"
    );
    assert_eq!(
        t2.pull_raw(&PullRequest::default()).await.status(),
        200,
        "another user's session goes on"
    );
    for (username, stdin, why) in [
        ("tech1", "short\n", "at least 8"),
        ("nobody", "long-enough-pass\n", "no user named nobody"),
    ] {
        let out = run(
            &[
                "user",
                "reset-password",
                "--username",
                username,
                "--password-stdin",
                "--db",
                &url,
            ],
            stdin,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "{err}");
    }
}

/// Issue 19 item 11: an administrator rotates the token signing key; nobody is signed
/// out (tokens signed with the previous key still work, on the running server and after
/// a restart) and new tokens are signed with the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_signing_key_signs_nobody_out() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(dir.path());
    add_users(&url, &[("tech1", Role::Technician)]).await;
    let server = ServerProcess::start(&url, &[]);
    let http = http();
    let before = login_at(&http, &server.base, "tech1", Uuid::new_v4()).await;
    let out = run(&["keys", "rotate", "--db", &url], "");
    assert!(
        out.status.success(),
        "keys rotate runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        before.pull_raw(&PullRequest::default()).await.status(),
        200,
        "a token signed before the rotation still works"
    );
    let after = login_at(&http, &server.base, "tech1", Uuid::new_v4()).await;
    assert_ne!(
        after.tokens.access_token.split('.').nth(1),
        before.tokens.access_token.split('.').nth(1),
        "a new token"
    );
    drop(server);
    let server = ServerProcess::start(&url, &[]);
    for s in [&before, &after] {
        assert_eq!(
            via(s, &server.base)
                .pull_raw(&PullRequest::default())
                .await
                .status(),
            200,
            "after a restart, tokens of both keys work"
        );
    }
}

/// Item 11 (rest): `keys retire` drops signing keys replaced longer ago than the
/// longest access-token lifetime (no token they signed is still valid); the newest key
/// always stays, and a key replaced too recently stays too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_old_signing_keys_keeps_every_key_a_valid_token_needs() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(dir.path());
    add_users(&url, &[("tech1", Role::Technician)]).await;
    let server = ServerProcess::start(&url, &[]);
    let http = http();
    let old = login_at(&http, &server.base, "tech1", Uuid::new_v4()).await;
    run_ok(&["keys", "rotate", "--db", &url], "");
    let new = login_at(&http, &server.base, "tech1", Uuid::new_v4()).await;
    drop(server);

    // Replaced a moment ago: its tokens may still be valid, so it stays.
    let out = run(&["keys", "retire", "--db", &url], "");
    assert!(
        out.status.success(),
        "keys retire runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("retired 0 "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(count(&url, "signing_keys").await, 2);

    // Told that access tokens live 0 s: the replaced key goes, the newest stays.
    let out = run(
        &["keys", "retire", "--access-ttl-secs", "0", "--db", &url],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("retired 1 "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(count(&url, "signing_keys").await, 1);
    let server = ServerProcess::start(&url, &[]);
    assert_eq!(
        via(&new, &server.base)
            .pull_raw(&PullRequest::default())
            .await
            .status(),
        200,
        "a token of the newest key works"
    );
    assert_eq!(
        via(&old, &server.base)
            .pull_raw(&PullRequest::default())
            .await
            .status(),
        401,
        "a token of a retired key is refused"
    );
    // Nothing more to retire: the newest key is never retired.
    let out = run(
        &["keys", "retire", "--access-ttl-secs", "0", "--db", &url],
        "",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("retired 0 "));
    assert_eq!(count(&url, "signing_keys").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_a_request_still_arriving_then_exits_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(dir.path());
    add_users(&url, &[("dispatcher", Role::Dispatcher)]).await;
    let mut server = ServerProcess::start(&url, &[]);
    let d = login_at(&http(), &server.base, "dispatcher", Uuid::new_v4()).await;
    let id = Uuid::now_v7();
    let m = d.mutation(
        id,
        MutationKind::Create,
        0,
        vec![Op::Set(SetOp::Title("Sent across a shutdown".into()))],
    );
    let body = serde_json::to_vec(&PushRequest {
        mutations: vec![m.clone()],
    })
    .expect("json");
    // `Expect: 100-continue`: the server says when its handler starts reading the body,
    // so the test knows the request is in flight without guessing a delay.
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         {}: 1\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        paths::PUSH,
        server.addr,
        d.tokens.access_token,
        PROTOCOL_HEADER,
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    conn.write_all(head.as_bytes()).await.expect("head");
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        conn.read_exact(&mut byte)
            .await
            .expect("the interim answer");
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&interim)
    );
    let half = body.len() / 2;
    conn.write_all(&body[..half]).await.expect("first half");
    conn.flush().await.expect("flush");
    // The request is in flight (headers read, body half there) when SIGTERM arrives;
    // the rest of the body follows once the server has begun shutting down.
    server.terminate();
    let start = std::time::Instant::now();
    while !server.log().contains("shutting down") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no shutdown after SIGTERM: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.write_all(&body[half..]).await.expect("second half");
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).await.expect("reply");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let json = reply.split("\r\n\r\n").nth(1).expect("a body");
    let resp: PushResponse = serde_json::from_str(json).expect("a push response");
    assert!(
        matches!(resp.results[0].outcome, PushOutcome::Applied(_)),
        "{resp:?}"
    );
    let status = server.wait(Duration::from_secs(30));
    assert!(status.success(), "a clean exit: {status}");
    let log = server.log();
    assert!(log.contains("shutting down"), "{log}");
    // The push committed.
    assert_eq!(count(&url, "orders").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serve_with_a_certificate_made_in_the_test() {
    let dir = tempfile::tempdir().expect("dir");
    let url = sqlite_url(dir.path());
    add_users(&url, &[("dispatcher", Role::Dispatcher)]).await;
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("a self-signed certificate");
    let cert_pem = certified.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
    let server = ServerProcess::start(
        &url,
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8 path"),
            "--tls-key",
            key.to_str().expect("utf-8 path"),
        ],
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let port = server.addr.port();
    for host in ["localhost", "127.0.0.1"] {
        let health = client
            .get(format!("https://{host}:{port}/health"))
            .send()
            .await
            .expect("health over TLS");
        assert_eq!(health.status(), 200, "{host}");
    }
    let d = login_at(
        &client,
        &format!("https://127.0.0.1:{port}"),
        "dispatcher",
        Uuid::new_v4(),
    )
    .await;
    let order = d.create_order(None).await;
    assert_eq!(order.number, Some(1));
    // Plain HTTP to the TLS port gets no answer, and an untrusting client refuses.
    let plain = http()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(plain.map(|r| r.status() != 200).unwrap_or(true));
    let untrusting = http()
        .get(format!("https://127.0.0.1:{port}/health"))
        .send()
        .await;
    assert!(untrusting.is_err(), "an unknown certificate is refused");
}
