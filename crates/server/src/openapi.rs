//! The OpenAPI 3.1 description of the API, generated from the code.
//!
//! utoipa reads the schemas of the wire types from `outpost_protocol` (its `openapi`
//! feature) and each route's parameters, request body and answers from the
//! `#[utoipa::path]` attribute on its handler in [`crate::http`]. What the shared
//! layers add to many routes is added here, once, from the same code the layers run:
//! the protocol header and its refusal (the guard), the access-token refusals (the
//! guard), the JSON body refusals ([`crate::http::JsonBody`]), the store's 500 and 503,
//! and the bounds of `outpost_protocol::limits`.
//!
//! The document is checked in as `docs/openapi.json` (a test fails when it is stale:
//! `OUTPOST_UPDATE_OPENAPI=1 cargo test -p outpost-server --test openapi`), served at
//! `/openapi.json`, printed by `outpost-server openapi`, and held against a live server
//! by `scripts/conformance.sh` (schemathesis, in `make test`).

use outpost_protocol::compat::PREVIOUS_PROTOCOL_VERSION;
use outpost_protocol::wire::{limits, paths, ErrorCode, PROTOCOL_HEADER, UNSENT_HEADER};
use outpost_protocol::{Quantity, PROTOCOL_VERSION};
use serde_json::{json, Map, Value};
use utoipa::OpenApi as _;

use crate::http;

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        http::health,
        http::metrics,
        http::openapi,
        http::login,
        http::refresh,
        http::logout,
        http::push_handler,
        http::pull_handler,
        http::get_order,
        http::list_conflicts,
        http::list_failed,
        http::stock_alerts,
        http::fleet_health,
        http::put_attachment,
        http::get_attachment,
        http::attachment_status,
        http::batch_upload,
        http::document_index,
        http::add_document,
        http::document_content,
    ),
    tags(
        (name = "auth", description = "Signing in and out on a device."),
        (name = "sync", description = "Pushing mutations and pulling changes."),
        (name = "records", description = "Orders, conflicts, failed syncs and stock alerts as the caller may see them."),
        (name = "attachments", description = "Photos and signatures, named by the SHA-256 of their bytes."),
        (name = "documents", description = "Technical documents for the equipment on the caller's orders (issue 22)."),
        (name = "service", description = "Health, metrics and this document."),
    )
)]
struct ApiDoc;

/// The generated document does not have a part the shared layers or the limits are
/// written into: the code and this module went apart (a bug, which the tests catch).
#[derive(Debug, thiserror::Error)]
#[error("the OpenAPI document has no {0}")]
pub struct DocumentError(String);

/// The document.
pub fn document() -> Result<Value, DocumentError> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())
        .map_err(|e| DocumentError(format!("JSON form ({e})")))?;
    describe(&mut doc)?;
    binary_bodies(&mut doc);
    integer_ranges(&mut doc);
    date_time_patterns(&mut doc);
    nullable_is_optional(&mut doc);
    shared_layers(&mut doc)?;
    bounds(&mut doc)?;
    Ok(doc)
}

/// Title, version, how to authenticate.
fn describe(doc: &mut Value) -> Result<(), DocumentError> {
    let info = object(doc, "/info")?;
    info.insert("title".into(), json!("Outpost sync server"));
    info.insert("version".into(), json!(env!("CARGO_PKG_VERSION")));
    info.insert(
        "description".into(),
        json!(format!(
            "Sync protocol v{PROTOCOL_VERSION} (v{PREVIOUS_PROTOCOL_VERSION} is still served: a \
             fleet is upgraded over weeks). Send `{PROTOCOL_HEADER}: {PROTOCOL_VERSION}` on \
             every /v1 request and `Authorization: Bearer <access_token>` on every /v1 request \
             but the auth ones. Every error is an `ErrorBody` with a stable `code`; branch on \
             the code, never on the message. Responses are compressed when the request \
             accepts it: zstd if it takes zstd, else gzip. A device also sends `{UNSENT_HEADER}` (optional, informational): \
             what it has not sent, as a structured-field dictionary of integers, `count` \
             (changes the server has not accepted), `set_aside` (of those, set aside by the \
             device itself; left out when 0) and `oldest_secs` (the age of the oldest; left \
             out when `count` is 0), e.g. `count=3, set_aside=1, oldest_secs=5400`; the \
             latest figures are kept per device, and an unreadable value is ignored, never \
             refused. (It is described here rather than as a parameter of each operation: \
             like any header a server does not need, its absence or any other header changes \
             nothing.)"
        )),
    );
    info.remove("license");
    let components = object(doc, "/components")?;
    components.insert(
        "securitySchemes".into(),
        json!({
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "The `access_token` of a sign-in (POST /v1/auth/login or /v1/auth/refresh)."
            }
        }),
    );
    Ok(())
}

/// Every JSON object and array in `v`, depth first.
fn each_object(v: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    match v {
        Value::Object(map) => {
            f(map);
            for child in map.values_mut() {
                each_object(child, f);
            }
        }
        Value::Array(items) => {
            for child in items {
                each_object(child, f);
            }
        }
        _ => {}
    }
}

/// An unsigned integer takes its Rust type's whole range (serde reads every value of
/// it): utoipa names the format (as `u-int16`; the OpenAPI format registry spells it
/// `uint16`), and since a validator does not know those formats, the range is spelled
/// out too.
fn integer_ranges(doc: &mut Value) {
    each_object(doc, &mut |map| {
        let (name, max): (&str, u64) = match map.get("format").and_then(Value::as_str) {
            Some("u-int8" | "uint8") => ("uint8", u8::MAX.into()),
            Some("u-int16" | "uint16") => ("uint16", u16::MAX.into()),
            Some("u-int32" | "uint32") => ("uint32", u32::MAX.into()),
            Some("u-int64" | "uint64") => ("uint64", u64::MAX),
            _ => return,
        };
        map.insert("format".into(), json!(name));
        map.entry("maximum").or_insert_with(|| json!(max));
    });
}

/// A timestamp is an RFC 3339 date-time. JSON Schema 2020-12 treats `format` as a
/// note, not a rule, so a validator (or a generator of test input) would take any
/// string; the pattern makes it a rule: a real calendar date (leap years included), a
/// time with seconds, up to nine fraction digits, `Z` or an offset within a day.
fn date_time_patterns(doc: &mut Value) {
    let year = "[0-9]{4}";
    let leap_year = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[048]|[2468][048]|[13579][26])00)";
    let date = format!(
        "({year}-(0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])\
         |{year}-(0[469]|11)-(0[1-9]|[12][0-9]|30)\
         |{year}-02-(0[1-9]|1[0-9]|2[0-8])\
         |{leap_year}-02-29)"
    );
    let time = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?";
    let offset = "(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
    let pattern = format!("^{date}T{time}{offset}$");
    each_object(doc, &mut |map| {
        if map.get("format").and_then(Value::as_str) == Some("date-time") {
            map.insert("pattern".into(), json!(pattern));
        }
    });
}

/// A member that may be `null` may also be left out: serde reads a missing `Option`
/// as `None`, in a struct and as the `value` of an adjacently tagged variant (a
/// `SetOp` such as `{"field": "completed_at"}` clears the field). utoipa marks the
/// variant's `value` required; the document says what the server reads.
fn nullable_is_optional(doc: &mut Value) {
    fn nullable(schema: &Value) -> bool {
        let null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
        ["oneOf", "anyOf"].iter().any(|k| {
            schema
                .get(*k)
                .and_then(Value::as_array)
                .is_some_and(|alts| alts.iter().any(null))
        }) || schema
            .get("type")
            .and_then(Value::as_array)
            .is_some_and(|types| types.iter().any(|t| t == "null"))
    }
    each_object(doc, &mut |map| {
        let Some(Value::Object(props)) = map.get("properties") else {
            return;
        };
        let optional: Vec<String> = props
            .iter()
            .filter(|(_, schema)| nullable(schema))
            .map(|(name, _)| name.clone())
            .collect();
        if let Some(Value::Array(required)) = map.get_mut("required") {
            required.retain(|r| {
                r.as_str()
                    .is_none_or(|name| !optional.iter().any(|o| o == name))
            });
        }
    });
}

/// Attachment bytes travel as they are: a binary string, not the array of integers
/// utoipa makes of `Vec<u8>`.
fn binary_bodies(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths") {
        each_object(paths, &mut |map| {
            if let Some(Value::Object(media)) = map.get_mut("application/octet-stream") {
                media.insert(
                    "schema".into(),
                    json!({ "type": "string", "format": "binary" }),
                );
            }
        });
    }
}

/// The error answers of the layers every `/v1/` request passes through, added to each
/// operation they apply to (merged with what the handler declares for the same status).
fn shared_layers(doc: &mut Value) -> Result<(), DocumentError> {
    let codes = |list: &[ErrorCode]| {
        list.iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let protocol = format!(
        "The `{PROTOCOL_HEADER}` header names a protocol version this server does not serve \
         ({}): the message says whether to update Outpost or the server.",
        codes(&[ErrorCode::UnsupportedProtocol])
    );
    let unauthenticated = format!(
        "No access token, or one that is not valid, has expired, or whose device's sign-in \
         was revoked ({}).",
        codes(&[
            ErrorCode::Unauthorized,
            ErrorCode::TokenInvalid,
            ErrorCode::TokenExpired,
            ErrorCode::DeviceRevoked,
        ])
    );
    let disabled = format!(
        "The account is disabled ({}).",
        codes(&[ErrorCode::UserDisabled])
    );
    let bad_json = format!(
        "The body is not UTF-8, not well-formed JSON, not of the documented shape, or has a \
         number out of range ({}).",
        codes(&[
            ErrorCode::InvalidUtf8,
            ErrorCode::MalformedJson,
            ErrorCode::InvalidBody,
            ErrorCode::OutOfRange,
        ])
    );
    let json_too_large = format!(
        "The body is larger than {} bytes ({}).",
        limits::JSON_BODY_BYTES_MAX,
        codes(&[ErrorCode::PayloadTooLarge])
    );
    let internal = format!(
        "The server failed; try again later ({}).",
        codes(&[ErrorCode::Internal])
    );
    let unavailable = format!(
        "The store is busy or unreachable; retry after `retry_after_secs` ({}).",
        codes(&[ErrorCode::Unavailable])
    );
    let header = json!({
        "name": PROTOCOL_HEADER,
        "in": "header",
        "required": false,
        "description": "The sync protocol version the client speaks: the current one or the \
                        previous one (by default; an administrator may raise the oldest \
                        served). Without it the request is served as the oldest served \
                        version; another version is refused.",
        "schema": { "type": "integer", "enum": (PREVIOUS_PROTOCOL_VERSION..=PROTOCOL_VERSION).collect::<Vec<u32>>() }
    });

    let paths = object(doc, "/paths")?;
    for (path, item) in paths.iter_mut() {
        let item = item
            .as_object_mut()
            .ok_or_else(|| DocumentError(format!("path item for {path}")))?;
        for (method, op) in item.iter_mut() {
            let op = op
                .as_object_mut()
                .ok_or_else(|| DocumentError(format!("operation {method} {path}")))?;
            if !path.starts_with("/v1/") {
                continue;
            }
            let bearer = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            let json_body = op
                .get("requestBody")
                .and_then(|b| b.pointer("/content/application~1json"))
                .is_some();
            op.entry("parameters")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or_else(|| DocumentError(format!("parameter list of {method} {path}")))?
                .push(header.clone());
            let responses = op
                .get_mut("responses")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| DocumentError(format!("responses of {method} {path}")))?;
            add_error(responses, 400, &protocol, false);
            if bearer {
                add_error(responses, 401, &unauthenticated, false);
                add_error(responses, 403, &disabled, false);
            }
            if json_body {
                add_error(responses, 400, &bad_json, false);
                add_error(responses, 413, &json_too_large, false);
            }
            add_error(responses, 500, &internal, false);
            add_error(responses, 503, &unavailable, true);
        }
    }
    Ok(())
}

/// Add an `ErrorBody` answer for `status`, or append `text` to the one declared.
fn add_error(responses: &mut Map<String, Value>, status: u16, text: &str, retry_after: bool) {
    let entry = responses.entry(status.to_string()).or_insert_with(|| {
        json!({
            "description": "",
            "content": {
                "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } }
            }
        })
    });
    if let Some(obj) = entry.as_object_mut() {
        let description = match obj.get("description").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => format!("{d} {text}"),
            _ => text.to_owned(),
        };
        obj.insert("description".into(), json!(description));
        if retry_after {
            obj.insert(
                "headers".into(),
                json!({
                    "Retry-After": {
                        "description": "Seconds to wait before retrying.",
                        "schema": { "type": "integer", "minimum": 0 }
                    }
                }),
            );
        }
    }
}

/// The bounds both sides know (`outpost_protocol::limits`) and the server's own, on the
/// fields and parameters they bound.
fn bounds(doc: &mut Value) -> Result<(), DocumentError> {
    let schemas = "/components/schemas";
    let set = |doc: &mut Value, at: String, values: Value| -> Result<(), DocumentError> {
        let target = object(doc, &at)?;
        if let Value::Object(values) = values {
            target.extend(values);
        }
        Ok(())
    };
    set(
        doc,
        format!("{schemas}/PushRequest/properties/mutations"),
        json!({ "maxItems": limits::PUSH_MUTATIONS_MAX }),
    )?;
    set(
        doc,
        format!("{schemas}/PullRequest/properties/limit"),
        json!({ "minimum": 1, "maximum": limits::PULL_LIMIT_MAX }),
    )?;
    set(
        doc,
        format!("{schemas}/PullRequest/properties/max_bytes"),
        json!({ "minimum": 1, "maximum": limits::PULL_BYTES_MAX }),
    )?;
    // `outpost_protocol::Quantity`: an integer is read up to what thousandths of it fit
    // in an i64, a fraction only up to 10^12 units.
    let quantity = object(doc, &format!("{schemas}/Quantity"))?;
    quantity.remove("type");
    quantity.remove("format");
    let whole = i64::MAX / Quantity::SCALE;
    quantity.insert(
        "anyOf".into(),
        json!([
            { "type": "integer", "minimum": -whole, "maximum": whole },
            { "type": "number", "minimum": -1e12, "maximum": 1e12 }
        ]),
    );
    set(
        doc,
        format!("{schemas}/BatchUploadRequest/properties/files"),
        json!({ "maxItems": limits::BATCH_FILES_MAX }),
    )?;
    for list in [paths::CONFLICTS, paths::FAILED_SYNCS] {
        let at = parameter(doc, list, "get", "limit")?;
        set(
            doc,
            format!("{at}/schema"),
            json!({ "minimum": 1, "maximum": http::LIST_LIMIT_MAX }),
        )?;
    }
    let at = parameter(doc, "/v1/attachments/{hash}", "put", "total")?;
    set(
        doc,
        format!("{at}/schema"),
        json!({ "minimum": 1, "maximum": limits::ATTACHMENT_BYTES_MAX }),
    )?;
    for (path, method) in [
        ("/v1/attachments/{hash}", "put"),
        ("/v1/attachments/{hash}", "get"),
        ("/v1/attachments/{hash}/status", "get"),
    ] {
        let at = parameter(doc, path, method, "hash")?;
        set(
            doc,
            format!("{at}/schema"),
            json!({ "pattern": "^[0-9a-f]{64}$" }),
        )?;
    }
    Ok(())
}

/// The JSON pointer of the parameter `name` of `method path`.
fn parameter(doc: &Value, path: &str, method: &str, name: &str) -> Result<String, DocumentError> {
    let op = format!(
        "/paths/{}/{method}",
        path.replace('~', "~0").replace('/', "~1")
    );
    let index = doc
        .pointer(&format!("{op}/parameters"))
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .position(|p| p.get("name").and_then(Value::as_str) == Some(name))
        })
        .ok_or_else(|| DocumentError(format!("parameter {name} of {method} {path}")))?;
    Ok(format!("{op}/parameters/{index}"))
}

/// The object at a JSON pointer.
fn object<'a>(doc: &'a mut Value, at: &str) -> Result<&'a mut Map<String, Value>, DocumentError> {
    doc.pointer_mut(at)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| DocumentError(at.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_builds_and_every_route_of_the_router_is_in_it() {
        let doc = document().expect("the document builds");
        let paths = doc["paths"].as_object().expect("paths");
        for path in [
            paths::HEALTH,
            paths::METRICS,
            paths::OPENAPI,
            paths::LOGIN,
            paths::REFRESH,
            paths::LOGOUT,
            paths::PUSH,
            paths::PULL,
            "/v1/orders/{id}",
            paths::CONFLICTS,
            paths::FAILED_SYNCS,
            paths::STOCK_ALERTS,
            "/v1/attachments/{hash}",
            "/v1/attachments/{hash}/status",
            paths::ATTACHMENTS_BATCH,
        ] {
            assert!(paths.contains_key(path), "{path} is described");
        }
    }

    #[test]
    fn every_v1_operation_declares_its_path_parameters_and_the_shared_answers() {
        let doc = document().expect("the document builds");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                for name in path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                {
                    assert!(
                        params.iter().any(|p| p["name"] == name
                            && p["in"] == "path"
                            && p["required"] == true),
                        "{method} {path} declares {{{name}}}"
                    );
                }
                if !path.starts_with("/v1/") {
                    continue;
                }
                for status in ["400", "500", "503"] {
                    assert!(
                        op["responses"][status]["content"]["application/json"].is_object(),
                        "{method} {path} answers {status} with an ErrorBody"
                    );
                }
                let bearer = op["security"].as_array().is_some_and(|s| !s.is_empty());
                assert_eq!(
                    bearer,
                    !path.starts_with("/v1/auth/"),
                    "{method} {path}: a token is needed everywhere under /v1/ but auth"
                );
                if bearer {
                    assert!(
                        op["responses"]["401"].is_object(),
                        "{method} {path} has 401"
                    );
                }
            }
        }
    }

    #[test]
    fn request_bodies_are_the_wire_types_with_their_required_fields() {
        let doc = document().expect("the document builds");
        let login = &doc["components"]["schemas"]["LoginRequest"];
        let required: Vec<&str> = login["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required, ["username", "password", "device_id"]);
        assert_eq!(login["additionalProperties"], false);
        assert_eq!(
            doc["paths"][paths::LOGIN]["post"]["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/LoginRequest"
        );
        assert_eq!(
            doc["components"]["schemas"]["PullRequest"]["properties"]["limit"]["maximum"],
            limits::PULL_LIMIT_MAX
        );
    }
}
