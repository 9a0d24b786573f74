//! The OpenAPI 3.1 description of the API, generated from the code: paths from
//! `outpost_protocol::wire::paths`, error codes from `ErrorCode`, and an example of
//! every body made by serializing the real wire types. A test compares it with the
//! checked-in `crates/server/openapi.json` (regenerate with
//! `OUTPOST_UPDATE_OPENAPI=1 cargo test -p outpost-server --test openapi`).

use chrono::{TimeZone, Utc};
use outpost_protocol::mutation::{EntityKind, ListItem};
use outpost_protocol::wire::*;
use outpost_protocol::*;
use serde_json::{json, Value};
use uuid::Uuid;

fn ex<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn body(description: &str, example: Value) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "type": "object" }, "example": example } }
    })
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } } })
}

fn op(
    summary: &str,
    auth: bool,
    request: Option<Value>,
    ok: Value,
    errors: &[(&str, &str)],
) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert("200".into(), ok);
    for (status, what) in errors {
        responses.insert((*status).into(), error_response(what));
    }
    let mut o = json!({ "summary": summary, "responses": responses });
    if let Some(r) = request {
        o["requestBody"] = r;
    }
    if auth {
        o["security"] = json!([{ "bearer": [] }]);
    } else {
        o["security"] = json!([]);
    }
    o
}

/// The document.
pub fn document() -> Value {
    let t = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    let device = Uuid::from_u128(0xd);
    let order_id = Uuid::from_u128(0x42);
    let mut order = WorkOrder::blank(order_id);
    order.title = "Boiler service".into();
    order.number = Some(17);
    order.version = 3;
    order.assignee = Some("tech1".into());
    let mutation = Mutation {
        mutation_id: Uuid::from_u128(0x1),
        device_id: device,
        entity: EntityKind::WorkOrder,
        entity_id: order_id,
        kind: MutationKind::Update,
        base_version: 2,
        format: FORMAT_VERSION,
        device_time: t,
        ops: vec![
            Op::Set(SetOp::Title("Boiler service".into())),
            Op::Add(ListItem::PartsUsed(PartUsed {
                id: Uuid::from_u128(0x9),
                sku: "SKU-00001".into(),
                quantity: Quantity(2000),
            })),
            Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::from_u128(0x7),
                    author: "tech1".into(),
                    text: "Replaced seal".into(),
                    at: t,
                },
            },
        ],
        base_epoch: None,
        seen: Vec::new(),
    };
    let tokens = TokenResponse {
        access_token: "v1.eyJ….sig".into(),
        access_expires_at: t,
        refresh_token: "opaque".into(),
        refresh_expires_at: t,
        username: "tech1".into(),
        role: Role::Technician,
        device_id: device,
        server_time: t,
    };
    let push_resp = PushResponse {
        results: vec![
            MutationResult {
                mutation_id: Uuid::from_u128(0x1),
                outcome: PushOutcome::Applied(Applied {
                    entity: EntityKind::WorkOrder,
                    entity_id: order_id,
                    version: 3,
                    number: Some(17),
                    changed: true,
                    order: Some(order.clone()),
                }),
            },
            MutationResult {
                mutation_id: Uuid::from_u128(0x2),
                outcome: PushOutcome::MissingAttachments {
                    hashes: vec!["ab".repeat(32)],
                },
            },
        ],
        server_time: t,
    };
    let pull_resp = PullResponse {
        changes: vec![Change {
            seq: 12,
            entity: ChangeEntity::WorkOrder,
            id: order_id.to_string(),
            version: 3,
            mutation_ids: vec![Uuid::from_u128(0x1)],
            change: ChangeBody::WorkOrder(order.clone()),
        }],
        cursor: "bDplcG9jaDoxMg".into(),
        has_more: false,
        priming: Some(PrimingProgress {
            phase: PrimingPhase::Inventory,
            done: 1000,
            total: 50_500,
            snapshot_seq: 11,
        }),
        server_time: t,
        epoch: None,
    };
    let codes: Vec<&str> = [
        ErrorCode::MalformedJson,
        ErrorCode::InvalidUtf8,
        ErrorCode::InvalidBody,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedProtocol,
        ErrorCode::UnsupportedFormat,
        ErrorCode::OutOfRange,
        ErrorCode::Unauthorized,
        ErrorCode::InvalidCredentials,
        ErrorCode::TokenExpired,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenRevoked,
        ErrorCode::RefreshReused,
        ErrorCode::UserDisabled,
        ErrorCode::DeviceRevoked,
        ErrorCode::DeviceMismatch,
        ErrorCode::RateLimited,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::ResyncRequired,
        ErrorCode::OffsetMismatch,
        ErrorCode::HashMismatch,
        ErrorCode::MutationIdReused,
        ErrorCode::ValidationFailed,
        ErrorCode::UnknownEntity,
        ErrorCode::AlreadyExists,
        ErrorCode::AlreadyResolved,
        ErrorCode::VersionMismatch,
        ErrorCode::UnknownSku,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ]
    .iter()
    .map(|c| c.as_str())
    .collect();
    let auth_errors: &[(&str, &str)] = &[
        ("400", "bad input"),
        ("401", "no or invalid access token"),
        ("403", "not allowed"),
    ];
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Outpost sync server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("Sync protocol v{PROTOCOL_VERSION}. Send `{PROTOCOL_HEADER}: {PROTOCOL_VERSION}` on every /v1 request. Responses are gzip-compressed when the request accepts it.")
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "ErrorBody": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": { "type": "string", "enum": codes },
                        "message": { "type": "string" },
                        "field_errors": { "type": "array", "items": { "type": "object", "properties": { "field": {"type": "string"}, "code": {"type": "string"}, "message": {"type": "string"} } } },
                        "retry_after_secs": { "type": "integer" }
                    }
                }
            }
        },
        "paths": {
            paths::HEALTH: { "get": op("200 when the store answers", false, None, body("health", ex(&Health { status: "ok".into(), protocol_version: PROTOCOL_VERSION, server_time: t })), &[("503", "store unavailable")]) },
            paths::METRICS: { "get": op("Prometheus text metrics", false, None, json!({"description": "text/plain metrics"}), &[]) },
            paths::OPENAPI: { "get": op("this document", false, None, json!({"description": "OpenAPI JSON"}), &[]) },
            paths::LOGIN: { "post": op("sign in on a device", false,
                Some(body("credentials", ex(&LoginRequest { username: "tech1".into(), password: "…".into(), device_id: device }))),
                body("tokens", ex(&tokens)), &[("400", "malformed body"), ("401", "invalid_credentials"), ("403", "user_disabled"), ("429", "rate_limited")]) },
            paths::REFRESH: { "post": op("rotate the refresh token", false,
                Some(body("refresh token", ex(&RefreshRequest { refresh_token: "opaque".into(), device_id: device }))),
                body("tokens", ex(&tokens)), &[("400", "malformed body"), ("401", "token_invalid, token_expired, token_revoked, refresh_reused"), ("403", "user_disabled")]) },
            paths::LOGOUT: { "post": op("revoke a refresh token", false,
                Some(body("refresh token", ex(&LogoutRequest { refresh_token: "opaque".into() }))),
                json!({"description": "204 No Content"}), &[("400", "malformed body")]) },
            paths::PUSH: { "post": op("apply a batch of mutations, one result each", true,
                Some(body("mutations", ex(&PushRequest { mutations: vec![mutation.clone()] }))),
                body("results", ex(&push_resp)), &[("400", "malformed body"), ("401", "no or invalid token"), ("413", "too many mutations or too large")]) },
            paths::PULL: { "post": op("one page of snapshot rows or change-log rows", true,
                Some(body("cursor and page bounds", ex(&PullRequest { cursor: Some("bDplcG9jaDoxMg".into()), limit: Some(1000), max_bytes: None }))),
                body("page", ex(&pull_resp)), &[("400", "bad cursor or bounds"), ("401", "no or invalid token"), ("409", "resync_required")]) },
            "/v1/orders/{id}": { "get": op("one order the caller may see", true, None, body("order", ex(&order)), &[("401", "no or invalid token"), ("404", "no such order (or not yours)")]) },
            paths::CONFLICTS: { "get": op("conflicts (?status=open|resolved|all&limit=N)", true, None, body("conflicts", ex(&ConflictList { items: vec![] })), auth_errors) },
            paths::FAILED_SYNCS: { "get": op("failed syncs with full payload (?status=open|resolved|all&limit=N)", true, None, body("failed syncs", ex(&FailedSyncList { items: vec![] })), auth_errors) },
            paths::STOCK_ALERTS: { "get": op("stock below zero (dispatchers)", true, None, body("alerts", ex(&StockAlertList { items: vec![StockAlert { sku: "SKU-00001".into(), name: "Filter 1".into(), location: "van-tech1".into(), quantity: Quantity(-1000) }] })), auth_errors) },
            "/v1/attachments/{hash}": {
                "put": op("store one chunk (?offset=N&total=T, body: bytes)", true, Some(json!({"content": {"application/octet-stream": {}}})),
                    body("upload state", ex(&AttachmentStatus { hash: "ab".repeat(32), received: 4096, total: Some(8192), complete: false })),
                    &[("400", "bad hash or chunk"), ("401", "no or invalid token"), ("409", "offset_mismatch"), ("413", "too large"), ("422", "hash_mismatch")]),
                "get": op("the bytes of a complete attachment", true, None, json!({"description": "application/octet-stream"}), &[("401", "no or invalid token"), ("404", "no such attachment (or not yours)")])
            },
            "/v1/attachments/{hash}/status": { "get": op("upload state (resume from `received`)", true, None, body("upload state", ex(&AttachmentStatus { hash: "ab".repeat(32), received: 0, total: None, complete: false })), auth_errors) },
            paths::ATTACHMENTS_BATCH: { "post": op("several small files at once", true,
                Some(body("files", ex(&BatchUploadRequest { files: vec![BatchFile { hash: "ab".repeat(32), data_base64: "aGVsbG8=".into() }] }))),
                body("one result per file", ex(&BatchUploadResponse { results: vec![BatchFileResult { hash: "ab".repeat(32), complete: true, error: None }] })), auth_errors) }
        }
    })
}
