//! The published contract, checked the way an integrator meets it: the document the
//! running server serves at `/openapi.json` must declare every path parameter, describe
//! every request body with the fields the server requires, and list every status the
//! server answers for each operation. Real server, real HTTP, both backends. (The full
//! generated-input run is `scripts/conformance.sh`, in `make test`.)

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

mod common;

use common::*;
use outpost_protocol::wire::*;
use serde_json::{json, Value};
use uuid::Uuid;

both!(
    the_served_document_declares_every_path_parameter_and_request_body,
    every_status_the_server_answers_is_documented_for_its_operation,
    a_body_that_is_a_json_array_is_refused_not_read_as_an_object,
    integers_written_with_a_zero_fraction_are_read_as_integers,
    quantities_are_read_within_the_range_the_document_gives,
    text_with_nul_characters_gets_an_answer_not_a_server_error,
);

async fn served_document(s: &TestServer) -> Value {
    let resp = s
        .http
        .get(s.url(paths::OPENAPI))
        .send()
        .await
        .expect("GET /openapi.json");
    assert_eq!(resp.status(), 200, "the document is served");
    resp.json().await.expect("the document is JSON")
}

/// `#/components/schemas/X` → the schema X; anything else as it is.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{r} resolves")),
        None => schema,
    }
}

async fn the_served_document_declares_every_path_parameter_and_request_body(kind: Kind) {
    let s = TestServer::start(kind).await;
    let doc = served_document(&s).await;
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                if !params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true)
                {
                    problems.push(format!(
                        "{method} {path}: path parameter {{{name}}} is not declared"
                    ));
                }
            }
            if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
                let schema = resolve(&doc, schema);
                let required = schema["required"].as_array().map_or(0, Vec::len);
                if schema["properties"]
                    .as_object()
                    .is_none_or(|p| p.is_empty())
                {
                    problems.push(format!(
                        "{method} {path}: the request body is documented as any object ({schema})"
                    ));
                } else if required == 0 && path != paths::PULL {
                    problems.push(format!(
                        "{method} {path}: the request body documents no required field"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// One request and the operation of the document it belongs to.
struct Probe {
    method: reqwest::Method,
    /// The path as the document names it.
    operation: &'static str,
    url: String,
    token: Option<String>,
    body: Option<Vec<u8>>,
    content_type: &'static str,
    /// The status the server should answer (so the probe tests what it means to).
    expect: u16,
}

impl Probe {
    fn new(method: reqwest::Method, operation: &'static str, url: impl Into<String>) -> Self {
        Probe {
            method,
            operation,
            url: url.into(),
            token: None,
            body: None,
            content_type: "application/json",
            expect: 200,
        }
    }
    fn token(mut self, s: &Session) -> Self {
        self.token = Some(s.tokens.access_token.clone());
        self
    }
    fn bearer(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }
    fn json(mut self, v: Value) -> Self {
        self.body = Some(serde_json::to_vec(&v).expect("json"));
        self
    }
    fn raw(mut self, bytes: &[u8], content_type: &'static str) -> Self {
        self.body = Some(bytes.to_vec());
        self.content_type = content_type;
        self
    }
    fn expect(mut self, status: u16) -> Self {
        self.expect = status;
        self
    }
}

async fn every_status_the_server_answers_is_documented_for_its_operation(kind: Kind) {
    use reqwest::Method;
    let s = TestServer::start(kind).await;
    let doc = served_document(&s).await;
    let disp = s.login("dispatcher").await;
    let tech = s.login("tech1").await;
    let order = disp.create_order(Some("tech1")).await;
    let u = |p: &str| s.url(p);
    let hash = "ab".repeat(32);
    let device = Uuid::new_v4();

    let probes = vec![
        Probe::new(Method::GET, paths::HEALTH, u(paths::HEALTH)),
        Probe::new(Method::GET, paths::METRICS, u(paths::METRICS)).expect(401),
        Probe::new(Method::GET, paths::METRICS, u(paths::METRICS)).bearer(METRICS_TOKEN),
        Probe::new(Method::GET, paths::OPENAPI, u(paths::OPENAPI)),
        Probe::new(Method::POST, paths::LOGIN, u(paths::LOGIN))
            .json(json!({"username": "tech2", "password": PASSWORD, "device_id": device})),
        Probe::new(Method::POST, paths::LOGIN, u(paths::LOGIN))
            .json(json!({"username": "tech2", "password": "wrong-password", "device_id": device}))
            .expect(401),
        Probe::new(Method::POST, paths::LOGIN, u(paths::LOGIN))
            .json(json!({}))
            .expect(400),
        Probe::new(Method::POST, paths::LOGIN, u(paths::LOGIN))
            .raw(b"{not json", "application/json")
            .expect(400),
        Probe::new(Method::POST, paths::REFRESH, u(paths::REFRESH))
            .json(json!({"refresh_token": "nope", "device_id": device}))
            .expect(401),
        Probe::new(Method::POST, paths::LOGOUT, u(paths::LOGOUT))
            .json(json!({"refresh_token": "nope"}))
            .expect(204),
        Probe::new(Method::POST, paths::LOGOUT, u(paths::LOGOUT))
            .json(json!({}))
            .expect(400),
        Probe::new(Method::POST, paths::PUSH, u(paths::PUSH))
            .token(&disp)
            .json(json!({"mutations": []})),
        Probe::new(Method::POST, paths::PUSH, u(paths::PUSH))
            .json(json!({"mutations": []}))
            .expect(401),
        Probe::new(Method::POST, paths::PUSH, u(paths::PUSH))
            .token(&disp)
            .json(json!({}))
            .expect(400),
        Probe::new(Method::POST, paths::PULL, u(paths::PULL))
            .token(&disp)
            .json(json!({})),
        Probe::new(Method::POST, paths::PULL, u(paths::PULL))
            .token(&disp)
            .json(json!({"cursor": "not-a-cursor"}))
            .expect(400),
        Probe::new(
            Method::GET,
            "/v1/orders/{id}",
            u(&format!("/v1/orders/{}", order.id)),
        )
        .token(&disp),
        Probe::new(Method::GET, "/v1/orders/{id}", u("/v1/orders/not-a-uuid"))
            .token(&disp)
            .expect(400),
        Probe::new(
            Method::GET,
            "/v1/orders/{id}",
            u(&format!("/v1/orders/{}", Uuid::new_v4())),
        )
        .token(&disp)
        .expect(404),
        Probe::new(Method::GET, paths::CONFLICTS, u(paths::CONFLICTS)).token(&disp),
        Probe::new(
            Method::GET,
            paths::CONFLICTS,
            u("/v1/conflicts?status=bogus"),
        )
        .token(&disp)
        .expect(400),
        Probe::new(
            Method::GET,
            paths::FAILED_SYNCS,
            u("/v1/failed-syncs?limit=0"),
        )
        .token(&disp)
        .expect(400),
        Probe::new(Method::GET, paths::STOCK_ALERTS, u(paths::STOCK_ALERTS)).token(&disp),
        Probe::new(Method::GET, paths::STOCK_ALERTS, u(paths::STOCK_ALERTS))
            .token(&tech)
            .expect(403),
        Probe::new(
            Method::PUT,
            "/v1/attachments/{hash}",
            u(&format!("/v1/attachments/{hash}?offset=5&total=10")),
        )
        .token(&disp)
        .raw(b"hello", "application/octet-stream")
        .expect(409),
        Probe::new(
            Method::PUT,
            "/v1/attachments/{hash}",
            u(&format!("/v1/attachments/{hash}?offset=0&total=3")),
        )
        .token(&disp)
        .raw(b"abc", "application/octet-stream")
        .expect(422),
        Probe::new(
            Method::PUT,
            "/v1/attachments/{hash}",
            u("/v1/attachments/not-a-hash?offset=0&total=3"),
        )
        .token(&disp)
        .raw(b"abc", "application/octet-stream")
        .expect(400),
        Probe::new(
            Method::GET,
            "/v1/attachments/{hash}",
            u(&format!("/v1/attachments/{hash}")),
        )
        .token(&disp)
        .expect(404),
        Probe::new(
            Method::GET,
            "/v1/attachments/{hash}/status",
            u(&format!("/v1/attachments/{hash}/status")),
        )
        .token(&disp),
        Probe::new(
            Method::GET,
            "/v1/attachments/{hash}/status",
            u("/v1/attachments/XYZ/status"),
        )
        .token(&disp)
        .expect(400),
        Probe::new(
            Method::POST,
            paths::ATTACHMENTS_BATCH,
            u(paths::ATTACHMENTS_BATCH),
        )
        .token(&disp)
        .json(json!({"files": []})),
        Probe::new(
            Method::POST,
            paths::ATTACHMENTS_BATCH,
            u(paths::ATTACHMENTS_BATCH),
        )
        .token(&disp)
        .json(json!({}))
        .expect(400),
    ];

    let mut undocumented = Vec::new();
    for p in probes {
        let mut req = s.http.request(p.method.clone(), &p.url);
        if let Some(t) = &p.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = p.body.clone() {
            req = req.header("content-type", p.content_type).body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, p.expect, "{} {}: {text}", p.method, p.url);
        let method = p.method.as_str().to_lowercase();
        let op = &doc["paths"][p.operation][method.as_str()];
        assert!(op.is_object(), "{method} {} is documented", p.operation);
        if !op["responses"][status.to_string()].is_object() {
            undocumented.push(format!(
                "{method} {} answered {status}, which the document does not list ({})",
                p.operation,
                op["responses"]
                    .as_object()
                    .map(|r| r.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default()
            ));
        }
    }
    assert!(undocumented.is_empty(), "{}", undocumented.join("\n"));
}

/// serde reads a struct from an array of its fields; the document says every body is an
/// object, and so does the server now (schemathesis: `[null, null]` pulled a page).
async fn a_body_that_is_a_json_array_is_refused_not_read_as_an_object(kind: Kind) {
    let s = TestServer::start(kind).await;
    let disp = s.login("dispatcher").await;
    let resp = disp
        .post(paths::PULL)
        .header("content-type", "application/json")
        .body("[null, null]")
        .send()
        .await
        .expect("pull");
    let (status, body) = error_of(resp).await;
    assert_eq!((status, body.code), (400, ErrorCode::InvalidBody));
    let resp = s
        .http
        .post(s.url(paths::LOGIN))
        .json(&json!(["dispatcher", PASSWORD, Uuid::new_v4()]))
        .send()
        .await
        .expect("login");
    let (status, body) = error_of(resp).await;
    assert_eq!(
        (status, body.code),
        (400, ErrorCode::InvalidBody),
        "a sign-in as an array is refused: {}",
        body.message
    );
    // Objects, with whitespace before them, still read.
    let resp = disp
        .post(paths::PULL)
        .header("content-type", "application/json")
        .body(" \n {\"limit\": 1}")
        .send()
        .await
        .expect("pull");
    assert_eq!(resp.status(), 200);
}

/// JSON Schema (the document) counts `10.0` as the integer 10, and Python writes floats
/// that way: such a body is read, with the same meaning as `10`.
async fn integers_written_with_a_zero_fraction_are_read_as_integers(kind: Kind) {
    let s = TestServer::start(kind).await;
    let disp = s.login("dispatcher").await;
    let resp = disp
        .post(paths::PULL)
        .json(&json!({"limit": 2.0, "max_bytes": 1e6}))
        .send()
        .await
        .expect("pull");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    let page: PullResponse = serde_json::from_str(&text).expect("a page");
    assert!(page.changes.len() <= 2, "the limit 2.0 is the limit 2");

    let order = disp.create_order(None).await;
    let m = disp.mutation(
        order.id,
        outpost_protocol::MutationKind::Update,
        order.version,
        vec![outpost_protocol::Op::Set(outpost_protocol::SetOp::Title(
            "Written by Python".into(),
        ))],
    );
    let mut body = json!({ "mutations": [m] });
    body["mutations"][0]["base_version"] = json!(order.version as f64);
    body["mutations"][0]["format"] = json!(1.0);
    let text = serde_json::to_string(&body).expect("json");
    assert!(text.contains("\"format\":1.0"), "{text}");
    let resp = disp
        .post(paths::PUSH)
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .expect("push");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    let r: PushResponse = serde_json::from_str(&text).expect("push response");
    assert!(
        matches!(&r.results[0].outcome, PushOutcome::Applied(a) if a.changed),
        "{text}"
    );
    // Read exactly, so a large whole number is still whole (serde_json's fast float
    // reading made 1916543524585577.0 into 1916543524585576.75).
    let mut body = json!({ "mutations": [m] });
    body["mutations"][0]["mutation_id"] = json!(Uuid::now_v7());
    body["mutations"][0]["base_version"] = json!(1_916_543_524_585_577.0_f64);
    let resp = disp
        .post(paths::PUSH)
        .json(&body)
        .send()
        .await
        .expect("push");
    let status = resp.status();
    let text = resp.text().await.expect("body");
    assert_eq!(status, 200, "{text}");
    // A fraction is still refused where an integer is wanted.
    let resp = disp
        .post(paths::PULL)
        .json(&json!({"limit": 2.5}))
        .send()
        .await
        .expect("pull");
    assert_eq!(error_of(resp).await.0, 400);
}

/// `Quantity` reads an integer up to what its thousandths fit in an i64 and a fraction up
/// to 10^12 units; the document gives exactly those bounds, and the server keeps them.
async fn quantities_are_read_within_the_range_the_document_gives(kind: Kind) {
    let s = TestServer::start(kind).await;
    let doc = served_document(&s).await;
    let q = &doc["components"]["schemas"]["Quantity"]["anyOf"];
    let int_max = q[0]["maximum"].as_i64().expect("integer bound");
    let num_max = q[1]["maximum"].as_f64().expect("number bound");
    assert_eq!(q[0]["minimum"].as_i64(), Some(-int_max));
    assert_eq!(q[1]["minimum"].as_f64(), Some(-num_max));

    let disp = s.login("dispatcher").await;
    let order = disp.create_order(None).await;
    let status_for = |quantity: Value| {
        let m = disp.mutation(
            order.id,
            outpost_protocol::MutationKind::Update,
            order.version,
            vec![outpost_protocol::Op::Add(
                outpost_protocol::mutation::ListItem::PartsUsed(outpost_protocol::PartUsed {
                    id: Uuid::now_v7(),
                    sku: "SKU-00001".into(),
                    quantity: outpost_protocol::Quantity(1000),
                }),
            )],
        );
        let mut body = json!({ "mutations": [m] });
        body["mutations"][0]["ops"][0]["item"]["quantity"] = quantity;
        let req = disp.post(paths::PUSH).json(&body);
        async move { req.send().await.expect("push").status().as_u16() }
    };
    // Within: read (the push answers 200, whatever validation then says).
    assert_eq!(status_for(json!(int_max)).await, 200);
    assert_eq!(status_for(json!(-int_max)).await, 200);
    assert_eq!(status_for(json!(num_max - 0.5)).await, 200);
    // Beyond: refused as out of range.
    assert_eq!(status_for(json!(int_max + 1)).await, 400);
    assert_eq!(status_for(json!(num_max + 0.5)).await, 400);
}

/// JSON strings may hold U+0000; PostgreSQL text may not. Every place such a string can
/// reach is answered as for any other string (schemathesis sends them).
async fn text_with_nul_characters_gets_an_answer_not_a_server_error(kind: Kind) {
    let s = TestServer::start(kind).await;
    let disp = s.login("dispatcher").await;
    let nul = "tech\u{0}1";
    let resp = s
        .http
        .post(s.url(paths::LOGIN))
        .json(&json!({"username": nul, "password": PASSWORD, "device_id": Uuid::new_v4()}))
        .send()
        .await
        .expect("login");
    // A name no account can have is refused before anything else (issue 19 item 6).
    assert_eq!(error_of(resp).await.0, 400, "not a username");
    for path in [paths::REFRESH, paths::LOGOUT] {
        let body = if path == paths::REFRESH {
            json!({"refresh_token": nul, "device_id": Uuid::new_v4()})
        } else {
            json!({"refresh_token": nul})
        };
        let resp = s
            .http
            .post(s.url(path))
            .json(&body)
            .send()
            .await
            .expect(path);
        assert!(resp.status().as_u16() < 500, "{path}: {}", resp.status());
    }
    let resp = disp
        .post(paths::PULL)
        .json(&json!({"cursor": nul}))
        .send()
        .await
        .expect("pull");
    assert_eq!(error_of(resp).await.0, 400, "not a cursor");
    let order = disp.create_order(None).await;
    let outcome = disp
        .push1(disp.mutation(
            order.id,
            outpost_protocol::MutationKind::Update,
            order.version,
            vec![
                outpost_protocol::Op::Set(outpost_protocol::SetOp::Title(nul.into())),
                outpost_protocol::Op::Set(outpost_protocol::SetOp::Assignee(Some(nul.into()))),
            ],
        ))
        .await;
    assert!(
        !matches!(outcome, PushOutcome::MissingAttachments { .. }),
        "{outcome:?}"
    );
    let resp = disp
        .get(&format!("/v1/conflicts?status={}", "open%00"))
        .send()
        .await
        .expect("conflicts");
    assert_eq!(error_of(resp).await.0, 400);
}
