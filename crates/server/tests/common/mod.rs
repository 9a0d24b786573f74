//! Test harness: a real `outpost-server` on a loopback port 0, over real HTTP, on
//! SQLite (a temporary file) or PostgreSQL (a fresh database per test on the server
//! named by `OUTPOST_TEST_PG_URL`). The PostgreSQL tests are `#[ignore]`d with the
//! reason, so a plain `cargo test` lists them as ignored; `make test` runs them with
//! `--include-ignored` inside `scripts/with-postgres.sh`, and there a missing
//! PostgreSQL fails them (README, "Tests").

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]
#![allow(dead_code)]

pub mod process;

use std::time::Duration;

use chrono::Utc;
use outpost_protocol::mutation::{EntityKind, ListItem};
use outpost_protocol::wire::*;
use outpost_protocol::*;
use outpost_server::{Db, PasswordCost, Running, ServerConfig};
use serde_json::Value;
use uuid::Uuid;

pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Runs each named async test on both backends: `name::sqlite` and `name::postgres`
/// (ignored unless asked for: it needs PostgreSQL).
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Kind::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs PostgreSQL: scripts/with-postgres.sh cargo test -p outpost-server -- --include-ignored (make test runs it)"]
            async fn postgres() {
                super::$name($crate::common::Kind::Postgres).await;
            }
        }
    )*};
}

/// The PostgreSQL server URL. Only ignored tests ask for it, so a test that runs
/// without one was asked to run and fails, saying how to provide it.
pub fn pg_url() -> String {
    match std::env::var("OUTPOST_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "this test needs PostgreSQL and OUTPOST_TEST_PG_URL is not set: run it through scripts/with-postgres.sh (make test does)"
        ),
    }
}

/// A fresh database URL for one test.
pub async fn fresh_db_url(kind: Kind, dir: &std::path::Path) -> String {
    match kind {
        Kind::Sqlite => format!("sqlite:{}", dir.join("server.db").display()),
        Kind::Postgres => {
            let base = pg_url();
            let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                .await
                .expect("connect to the test PostgreSQL");
            tokio::spawn(conn);
            let name = format!("outpost_t_{}", Uuid::new_v4().simple());
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create a test database");
            // Replace the database name (the path) in the URL.
            let (head, _) = base.rsplit_once('/').expect("URL with a database name");
            format!("{head}/{name}")
        }
    }
}

/// A server clock the test moves by hand (from the real time at its making), so that
/// a test of an expiry or a grace period moves time past it instead of sleeping.
#[derive(Debug)]
pub struct MovableClock(std::sync::Mutex<chrono::DateTime<Utc>>);

impl MovableClock {
    pub fn new() -> std::sync::Arc<MovableClock> {
        std::sync::Arc::new(MovableClock(std::sync::Mutex::new(Utc::now())))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += chrono::Duration::from_std(by).expect("a short duration");
    }
}

impl outpost_protocol::Clock for MovableClock {
    fn now(&self) -> chrono::DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The metrics token of test servers.
pub const METRICS_TOKEN: &str = "test-metrics-token";

pub fn test_config() -> ServerConfig {
    ServerConfig {
        password_cost: PasswordCost::for_tests(),
        login_max_failures: 1000,
        metrics_token: Some(METRICS_TOKEN.into()),
        ..ServerConfig::default()
    }
}

/// The configuration of a test that plays a slow client: the server's connection
/// timeouts as short as a test can wait for.
pub fn slow_client_config() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_secs(1),
        ..test_config()
    }
}

pub struct TestServer {
    pub base: String,
    pub db: Db,
    pub url: String,
    pub cfg: ServerConfig,
    pub running: Option<Running>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(kind: Kind) -> TestServer {
        Self::start_with(kind, test_config()).await
    }

    pub async fn start_with(kind: Kind, cfg: ServerConfig) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = fresh_db_url(kind, dir.path()).await;
        let db = Db::open(&url).await.expect("open the store");
        for (name, role) in [
            ("dispatcher", Role::Dispatcher),
            ("admin", Role::Admin),
            ("tech1", Role::Technician),
            ("tech2", Role::Technician),
        ] {
            outpost_server::add_user(&db, &cfg, name, role, PASSWORD)
                .await
                .expect("add user");
        }
        let items: Vec<InventoryItem> = (0..20).map(outpost_server::seed::demo_item).collect();
        let now_us = cfg.now_us();
        db.write(move |sql| outpost_server::seed::insert_items(sql, &items, now_us))
            .await
            .expect("items");
        let mut s = TestServer {
            base: String::new(),
            db,
            url,
            cfg,
            running: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            dir,
        };
        s.listen().await;
        s
    }

    /// (Re)start the HTTP side on a new port over the same store.
    pub async fn listen(&mut self) {
        let state = outpost_server::state(self.db.clone(), self.cfg.clone())
            .await
            .expect("state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let running = outpost_server::spawn(listener, state, None).expect("spawn");
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await.expect("clean stop");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn login(&self, username: &str) -> Session {
        self.login_device(username, Uuid::new_v4()).await
    }

    pub async fn login_device(&self, username: &str, device: Uuid) -> Session {
        let resp = self
            .http
            .post(self.url(paths::LOGIN))
            .json(&LoginRequest {
                username: username.into(),
                password: PASSWORD.into(),
                device_id: device,
            })
            .send()
            .await
            .expect("login request");
        assert_eq!(resp.status(), 200, "{username} signs in");
        let tokens: TokenResponse = resp.json().await.expect("tokens");
        Session {
            base: self.base.clone(),
            http: self.http.clone(),
            username: username.into(),
            device,
            tokens,
        }
    }

    /// The last change-log sequence (to check that bad input wrote nothing).
    pub async fn last_seq(&self) -> u64 {
        self.db
            .read(outpost_server::repo::last_seq)
            .await
            .expect("last seq")
    }
}

pub struct Session {
    pub base: String,
    pub http: reqwest::Client,
    pub username: String,
    pub device: Uuid,
    pub tokens: TokenResponse,
}

impl Session {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.tokens.access_token)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.tokens.access_token)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
    }

    pub async fn push(&self, mutations: Vec<Mutation>) -> Vec<PushOutcome> {
        let r = self.push_answer(mutations).await;
        r.results.into_iter().map(|r| r.outcome).collect()
    }

    /// Push `mutations` and return the whole answer (results, `written`).
    pub async fn push_answer(&self, mutations: Vec<Mutation>) -> PushResponse {
        let resp = self
            .post(paths::PUSH)
            .json(&PushRequest { mutations })
            .send()
            .await
            .expect("push");
        assert_eq!(resp.status(), 200, "push answers 200");
        resp.json().await.expect("push response")
    }

    /// `PUT /v1/attachments/{hash}`: one chunk of a file of `total` bytes at `offset`.
    pub async fn put_chunk(
        &self,
        hash: &str,
        offset: usize,
        total: usize,
        bytes: &[u8],
    ) -> reqwest::Response {
        self.http
            .put(self.url(&format!(
                "/v1/attachments/{hash}?offset={offset}&total={total}"
            )))
            .bearer_auth(&self.tokens.access_token)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("chunk")
    }

    /// `GET /v1/attachments/{hash}/status`.
    pub async fn attachment_status(&self, hash: &str) -> AttachmentStatus {
        let resp = self
            .get(&format!("/v1/attachments/{hash}/status"))
            .send()
            .await
            .expect("status");
        assert_eq!(resp.status(), 200, "status answers");
        resp.json().await.expect("status body")
    }

    pub async fn push1(&self, m: Mutation) -> PushOutcome {
        self.push(vec![m]).await.remove(0)
    }

    pub async fn pull_raw(&self, req: &PullRequest) -> reqwest::Response {
        self.post(paths::PULL).json(req).send().await.expect("pull")
    }

    pub async fn pull(&self, cursor: Option<String>, limit: Option<u32>) -> PullResponse {
        let resp = self
            .pull_raw(&PullRequest {
                cursor,
                limit,
                max_bytes: None,
                confirmed: Vec::new(),
            })
            .await;
        let status = resp.status();
        let text = resp.text().await.expect("pull body");
        assert_eq!(status, 200, "pull answers 200: {text}");
        serde_json::from_str(&text).expect("pull page")
    }

    /// Pull until `has_more` is false; returns all changes and the final cursor.
    pub async fn pull_all(
        &self,
        cursor: Option<String>,
        limit: u32,
    ) -> (Vec<Change>, String, usize) {
        let mut cursor = cursor;
        let mut all = Vec::new();
        let mut pages = 0;
        loop {
            let page = self.pull(cursor.clone(), Some(limit)).await;
            pages += 1;
            all.extend(page.changes);
            cursor = Some(page.cursor);
            if !page.has_more {
                break;
            }
            assert!(pages < 10_000, "pull terminates");
        }
        (all, cursor.expect("cursor"), pages)
    }

    pub fn mutation(
        &self,
        entity_id: Uuid,
        kind: MutationKind,
        base: u64,
        ops: Vec<Op>,
    ) -> Mutation {
        Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: self.device,
            entity: EntityKind::WorkOrder,
            entity_id,
            kind,
            base_version: base,
            format: FORMAT_VERSION,
            device_time: Utc::now(),
            ops,
            base_epoch: None,
            reason: None,
            seen: Vec::new(),
        }
    }

    /// Create an order (as a dispatcher: assigned to `assignee`).
    pub async fn create_order(&self, assignee: Option<&str>) -> WorkOrder {
        let id = Uuid::now_v7();
        let mut ops = vec![
            Op::Set(SetOp::Title("Replace pump seal".into())),
            Op::Add(ListItem::Checklist(ChecklistItem {
                id: "c1".into(),
                label: "Isolate power".into(),
                required: true,
                done: false,
            })),
        ];
        if let Some(a) = assignee {
            ops.push(Op::Set(SetOp::Assignee(Some(a.into()))));
        }
        match self
            .push1(self.mutation(id, MutationKind::Create, 0, ops))
            .await
        {
            PushOutcome::Applied(a) => a.order.expect("order in the result"),
            other => panic!("create applies, got {other:?}"),
        }
    }
}

/// Sign in at any server base URL (a process started by the test).
pub async fn login_at(http: &reqwest::Client, base: &str, username: &str, device: Uuid) -> Session {
    let resp = http
        .post(format!("{base}{}", paths::LOGIN))
        .json(&LoginRequest {
            username: username.into(),
            password: PASSWORD.into(),
            device_id: device,
        })
        .send()
        .await
        .expect("login request");
    assert_eq!(resp.status(), 200, "{username} signs in at {base}");
    Session {
        base: base.to_owned(),
        http: http.clone(),
        username: username.into(),
        device,
        tokens: resp.json().await.expect("tokens"),
    }
}

/// The same session, talking to another instance (tokens work on every instance: the
/// signing keys live in the database).
pub fn via(s: &Session, base: &str) -> Session {
    Session {
        base: base.to_owned(),
        http: s.http.clone(),
        username: s.username.clone(),
        device: s.device,
        tokens: s.tokens.clone(),
    }
}

pub async fn error_of(resp: reqwest::Response) -> (u16, ErrorBody) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let body: ErrorBody =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("error body is JSON ({e}): {text}"));
    (status, body)
}

pub fn json_of<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("shape")
}
