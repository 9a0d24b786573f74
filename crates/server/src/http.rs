//! The HTTP surface (axum): routes, the JSON and auth extractors, error answers.
//!
//! Handlers are thin: parse, call a function of `push`, `pull`, `auth` or
//! `attachments` inside one store transaction, answer. Every failure is an
//! [`ErrorBody`] with a stable code; bad input is refused before any write. Everything
//! under `/v1/` except the auth endpoints needs a valid access token, checked in a
//! middleware before routing (so an unknown `/v1/` path without a token is a 401, not a
//! 404). The same middleware reads the client's protocol version
//! ([`ClientProtocol`]): handlers shape what they send for it.
//! Request bodies are never logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequest, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use outpost_protocol::fleet::FleetHealth;
use outpost_protocol::wire::{
    limits, paths, AttachmentStatus, BatchUploadRequest, BatchUploadResponse, ConflictList,
    ConflictRecord, DocumentAdded, DocumentIndex, ErrorBody, ErrorCode, FailedSyncList,
    FailedSyncRecord, Health, LoginRequest, LogoutRequest, PullRequest, PullResponse, PushRequest,
    PushResponse, RecordStatus, RefreshRequest, StockAlert, StockAlertList, TokenResponse,
    PROTOCOL_HEADER,
};
use outpost_protocol::{compat, Quantity, WorkOrder, PROTOCOL_VERSION};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use tower_http::compression::CompressionLayer;
use uuid::Uuid;

use crate::auth::{self, Keys, LoginLimiter, Principal};
use crate::config::ServerConfig;
use crate::db::Db;
use crate::error::{ApiError, Error};
use crate::metrics::Metrics;
use crate::{attachments, pull, push, repo};

/// Everything a handler needs.
pub struct AppState {
    pub db: Db,
    pub cfg: ServerConfig,
    pub keys: Keys,
    pub limiter: LoginLimiter,
    /// Password checks that may run at once (`ServerConfig::password_hashers`).
    pub hashers: std::sync::Arc<tokio::sync::Semaphore>,
    /// `/v1/` requests handled at once (`ServerConfig::max_in_flight`).
    pub admission: std::sync::Arc<tokio::sync::Semaphore>,
    pub metrics: Metrics,
    /// Parsed order rows of committed pushes (see [`crate::row_cache`]).
    pub rows: crate::row_cache::RowCache,
    /// What each device last reported it has not sent (see [`crate::unsent`]).
    pub unsent: crate::unsent::Ledger,
    /// When each device last pushed and pulled (see [`crate::fleet`]).
    pub fleet: crate::fleet::Ledger,
}

impl AppState {
    /// The storage quota for a request served with `protocol`.
    fn quota(&self, protocol: u32) -> attachments::Quota {
        attachments::Quota {
            bytes: self.cfg.attachment_quota_bytes,
            protocol,
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("db", &self.db).finish()
    }
}

type St = State<Arc<AppState>>;

/// The sync protocol a `/v1/` request is served with: the version the client announced
/// (`x-outpost-protocol`), or the oldest served when it announced none
/// (`outpost_protocol::compat::served_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientProtocol(pub u32);

fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => Error::store(format!("encoding a response: {e}")).into_response(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = json_response(status, &self.body);
        if let Some(secs) = self.body.retry_after_secs {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Api(e) => e.into_response(),
            Error::Store(detail) => {
                tracing::error!(%detail, "storage error");
                ApiError::new(
                    500,
                    ErrorCode::Internal,
                    "the server failed; try again later",
                )
                .into_response()
            }
            Error::Unavailable(detail) => {
                tracing::warn!(%detail, "storage unavailable");
                let mut e = ApiError::new(
                    503,
                    ErrorCode::Unavailable,
                    "the server's store is busy or unreachable; try again",
                );
                e.body.retry_after_secs = Some(1);
                e.into_response()
            }
            Error::DiskFull(detail) => {
                tracing::error!(
                    %detail,
                    "the database's disk is full: free space on its volume; every write fails until then"
                );
                let mut e = ApiError::new(
                    503,
                    ErrorCode::Unavailable,
                    "the server's disk is full: your work stays on this device and is sent once \
                     the administrator frees space",
                );
                e.body.retry_after_secs = Some(30);
                e.into_response()
            }
        }
    }
}

/// Parse a JSON body: invalid UTF-8, malformed JSON and a wrong shape each get their
/// own code.
///
/// Two readings follow the published document (JSON Schema) where serde alone would
/// not: a body is a JSON object (serde also reads a struct from an array of its fields),
/// and an integer may be written as a whole number with a fraction part (`2.0` is the
/// integer 2 in JSON Schema; Python writes floats that way). The second is tried only
/// when the first reading failed, so a well-formed body costs nothing more.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidUtf8,
            "the body is not valid UTF-8",
        ));
    }
    let not_an_object = || {
        ApiError::bad_request(
            ErrorCode::InvalidBody,
            "the body must be a JSON object ({…})",
        )
    };
    let first_error = match serde_json::from_slice(bytes) {
        Ok(value) => {
            return match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => Ok(value),
                _ => Err(not_an_object()),
            }
        }
        Err(e) => e,
    };
    if first_error.classify() == serde_json::error::Category::Data {
        if let Ok(mut tree) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if tree.is_object() && whole_floats_to_integers(&mut tree) {
                if let Ok(value) = serde_json::from_value(tree) {
                    return Ok(value);
                }
            }
        }
    }
    Err(refusal(&first_error))
}

/// The answer to a body serde could not read.
fn refusal(e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let msg = e.to_string();
    let code = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => ErrorCode::MalformedJson,
        Category::Data
            if msg.contains("invalid value: integer") || msg.contains("out of range") =>
        {
            ErrorCode::OutOfRange
        }
        Category::Data => ErrorCode::InvalidBody,
    };
    let what = match code {
        ErrorCode::MalformedJson => "the body is not well-formed JSON",
        ErrorCode::OutOfRange => "a value in the body is out of range",
        _ => "the body does not have the expected fields",
    };
    ApiError::bad_request(code, format!("{what}: {msg}"))
}

/// Rewrite every number with a zero fraction part (within the range a double holds
/// exactly) as an integer; whether any was.
fn whole_floats_to_integers(v: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    match v {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() <= EXACT => {
                *v = Value::from(f as i64);
                true
            }
            _ => false,
        },
        Value::Array(items) => {
            let mut any = false;
            for item in items {
                any |= whole_floats_to_integers(item);
            }
            any
        }
        Value::Object(map) => {
            let mut any = false;
            for item in map.values_mut() {
                any |= whole_floats_to_integers(item);
            }
            any
        }
        _ => false,
    }
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::new(
                413,
                ErrorCode::PayloadTooLarge,
                format!("the body is larger than {limit} bytes"),
            )
        } else {
            ApiError::bad_request(
                ErrorCode::MalformedJson,
                "the body could not be read completely",
            )
        }
    })
}

/// A JSON body with this server's limits and error codes.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req.into_body(), limits::JSON_BODY_BYTES_MAX).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

fn query_error<E: std::fmt::Display>(e: E) -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidBody, format!("bad query: {e}"))
}

// ---- middleware ----------------------------------------------------------------------

async fn observe(State(app): St, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    // A request that takes longer than the timeout (a body sent a byte at a time, or a
    // stuck store) is answered, not held for ever.
    let resp = match tokio::time::timeout(app.cfg.request_timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            503,
            ErrorCode::Unavailable,
            "the request took too long; try again",
        )
        .into_response(),
    };
    let micros = start.elapsed().as_micros() as u64;
    let status = resp.status().as_u16();
    app.metrics.request(method.as_str(), &route, status, micros);
    tracing::info!(method = %method, route = %route, status, micros, "request");
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The admission limit: a `/v1/` request past [`crate::ServerConfig::max_in_flight`]
/// handled at once is answered 503 `unavailable` with `Retry-After`, before its body
/// is read or its token checked. Health, metrics and the API document stay open, so
/// an administrator can see an overloaded server.
async fn admit(State(app): St, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/v1/") {
        return next.run(req).await;
    }
    let Ok(_permit) = app.admission.clone().try_acquire_owned() else {
        app.metrics
            .request(req.method().as_str(), "(shed: over max_in_flight)", 503, 0);
        tracing::debug!(
            path = req.uri().path(),
            "shed: more requests in flight than max_in_flight"
        );
        let mut e = ApiError::new(
            503,
            ErrorCode::Unavailable,
            "the server is busy; your work stays on this device and is sent on the retry",
        );
        e.body.retry_after_secs = Some(crate::config::SHED_RETRY_AFTER_SECS);
        return e.into_response();
    };
    next.run(req).await
}

/// For `/v1/…`: the protocol version (when announced) must be one this server serves,
/// and every route but the auth endpoints needs a valid access token. The device's
/// report of unsent work, when a request carries one, is kept ([`crate::unsent`]).
async fn guard(State(app): St, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !path.starts_with("/v1/") {
        return next.run(req).await;
    }
    let announced = req
        .headers()
        .get(PROTOCOL_HEADER)
        .map(|v| v.to_str().unwrap_or("?").to_owned());
    match compat::served_version(announced.as_deref(), app.cfg.min_protocol) {
        Ok(v) => {
            req.extensions_mut().insert(ClientProtocol(v));
        }
        Err(problem) => {
            return ApiError::bad_request(ErrorCode::UnsupportedProtocol, problem.to_string())
                .into_response();
        }
    }
    if path.starts_with("/v1/auth/") {
        return next.run(req).await;
    }
    let Some(token) = bearer(req.headers()).map(str::to_owned) else {
        return ApiError::unauthorized(ErrorCode::Unauthorized, "sign in first (no access token)")
            .into_response();
    };
    let state = app.clone();
    let principal = app
        .db
        .read(move |sql| auth::authenticate(sql, &state.keys, &state.cfg, &token))
        .await;
    match principal {
        Ok(p) => {
            crate::unsent::record(&app, &p, req.headers()).await;
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

// ---- handlers --------------------------------------------------------------------------

/// Whether the server and its store answer
#[utoipa::path(get, path = paths::HEALTH, tag = "service", operation_id = "health",
    responses(
        (status = 200, description = "The store answers.", body = Health),
        (status = 503, description = "The store does not answer (`unavailable`).", body = ErrorBody),
    ),
)]
async fn health(State(app): St) -> Response {
    match app
        .db
        .read(|sql| sql.query("SELECT 1", &[]).map(|_| ()))
        .await
    {
        Ok(()) => json_response(
            StatusCode::OK,
            &Health {
                status: "ok".into(),
                protocol_version: PROTOCOL_VERSION,
                server_time: app.cfg.now(),
            },
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            ApiError::new(503, ErrorCode::Unavailable, "the store does not answer").into_response()
        }
    }
}

/// Prometheus metrics
///
/// Only with the metrics token (`serve --metrics-token`, or `OUTPOST_METRICS_TOKEN`) as
/// a bearer token; a server started without one answers no one.
#[utoipa::path(get, path = paths::METRICS, tag = "service", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", body = String, content_type = "text/plain"),
        (status = 401, description = "No metrics token, a wrong one, or none configured on the server (`token_invalid`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn metrics(State(app): St, headers: axum::http::HeaderMap) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Compared as digests: equal lengths, and nothing about the token's length leaks.
    let allowed = match (&app.cfg.metrics_token, given) {
        (Some(want), Some(got)) => {
            auth::sha256_hex(want.as_bytes()) == auth::sha256_hex(got.as_bytes())
        }
        _ => false,
    };
    if !allowed {
        return ApiError::unauthorized(
            ErrorCode::TokenInvalid,
            "metrics need the server's metrics token (serve --metrics-token)",
        )
        .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        app.metrics.render(app.db.kind()),
    )
        .into_response()
}

/// This document
#[utoipa::path(get, path = paths::OPENAPI, tag = "service", operation_id = "openapi",
    responses(
        (status = 200, description = "The OpenAPI 3.1 description of this server.", body = Object),
    ),
)]
async fn openapi() -> Result<Response, Error> {
    let doc = crate::openapi::document().map_err(|e| Error::store(e.to_string()))?;
    Ok(json_response(StatusCode::OK, &doc))
}

/// The client's address for the sign-in limiter: from the configured trusted proxy's
/// header (its last entry, the one that proxy added) when there is one, else the
/// connection's. Without a configured header, no header is read: a client cannot pick
/// its own key.
fn client_addr(req: &Request, cfg: &crate::ServerConfig) -> String {
    let from_proxy = cfg.trusted_proxy_header.as_deref().and_then(|name| {
        let value = req.headers().get(name)?.to_str().ok()?;
        let last = value.rsplit(',').next()?.trim();
        last.parse::<std::net::IpAddr>().ok()
    });
    match from_proxy {
        Some(ip) => ip.to_string(),
        None => req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
    }
}

/// A 429 `rate_limited` answer with its `Retry-After`.
fn rate_limited(message: String, wait: u64) -> Error {
    let mut e = ApiError::new(429, ErrorCode::RateLimited, message);
    e.body.retry_after_secs = Some(wait);
    e.into()
}

/// Sign in on a device
///
/// Attempts are limited per username and per client address: after the free failures,
/// each further attempt waits a growing delay (never a lockout). A username no account
/// can have is refused first (400).
#[utoipa::path(post, path = paths::LOGIN, tag = "auth", operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in: a new access and refresh token for this device.", body = TokenResponse),
        (status = 400, description = "A username no account can have (1 to 64 of a-z, 0-9, '.', '_', '-'), or a malformed body (`invalid_body`, `malformed_json`).", body = ErrorBody),
        (status = 401, description = "Wrong username or password (`invalid_credentials`).", body = ErrorBody),
        (status = 403, description = "The account is disabled (`user_disabled`).", body = ErrorBody),
        (status = 429, description = "Too many sign-in attempts, or too many being checked at once (`rate_limited`); wait `retry_after_secs`.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ),
)]
async fn login(State(app): St, req: Request) -> Result<Response, Error> {
    let ip = client_addr(&req, &app.cfg);
    let JsonBody(body) = JsonBody::<LoginRequest>::from_request(req, &()).await?;
    // A name no account can have is refused before it becomes a limiter key or a log
    // field.
    crate::check_username(&body.username)?;
    let keys = vec![format!("u:{}", body.username), format!("ip:{ip}")];
    // The attempt is reserved before the password is checked, so concurrent attempts
    // count against each other.
    let policy = auth::LoginPolicy {
        free: app.cfg.login_max_failures,
        window: app.cfg.login_window,
        delay_max: app.cfg.login_delay_max,
    };
    if let Err(wait) = app.limiter.reserve(&keys, policy, app.cfg.now_us()) {
        return Err(rate_limited(
            format!("too many failed sign-ins; try again in {wait} s"),
            wait,
        ));
    }
    // At most `password_hashers` Argon2 checks at once (19 MiB each).
    let Ok(Ok(_permit)) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.hashers.clone().acquire_owned(),
    )
    .await
    else {
        return Err(rate_limited(
            "the server is checking many sign-ins; try again in a moment".into(),
            1,
        ));
    };
    let username = body.username.clone();
    let user = {
        let u = username.clone();
        app.db.read(move |sql| repo::get_user(sql, &u)).await?
    };
    // Verify on the blocking pool: Argon2 is deliberately slow. An unknown user still
    // costs one verification, so timing does not tell which usernames exist.
    let password = body.password;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let cost = app.cfg.password_cost;
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => auth::verify_password(&password, &h),
        None => {
            let _ = auth::hash_password(&password, cost);
            false
        }
    })
    .await
    .map_err(|e| Error::store(format!("password check task: {e}")))?;
    let Some(user) = user.filter(|_| ok) else {
        app.metrics.login_failure();
        tracing::info!(username = %username, "sign-in refused");
        return Err(ApiError::unauthorized(
            ErrorCode::InvalidCredentials,
            "wrong username or password",
        )
        .into());
    };
    if user.disabled {
        return Err(ApiError::new(
            403,
            ErrorCode::UserDisabled,
            "this account is disabled; ask an administrator",
        )
        .into());
    }
    app.limiter.succeeded(&keys, policy);
    let device = body.device_id;
    let state = app.clone();
    let resp = app
        .db
        .write(move |sql| {
            auth::issue(
                sql,
                &state.keys,
                &state.cfg,
                &user.username,
                user.role,
                device,
            )
            .map(|r| r.0)
        })
        .await?;
    tracing::info!(username = %username, device = %device, "signed in");
    Ok(json_response(StatusCode::OK, &resp))
}

/// Trade a refresh token for a new pair
///
/// The old refresh token stops working after a short grace period (for a lost reply);
/// using it after that revokes the device's sign-in.
#[utoipa::path(post, path = paths::REFRESH, tag = "auth", operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access and refresh token.", body = TokenResponse),
        (status = 401, description = "The refresh token is unknown or of another device (`token_invalid`), revoked (`token_revoked`), expired (`token_expired`) or was used twice (`refresh_reused`, the device's sign-in is revoked).", body = ErrorBody),
        (status = 403, description = "The account is disabled (`user_disabled`).", body = ErrorBody),
    ),
)]
async fn refresh(
    State(app): St,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Response, Error> {
    let state = app.clone();
    let resp = app
        .db
        .write(move |sql| {
            auth::refresh(
                sql,
                &state.keys,
                &state.cfg,
                &body.refresh_token,
                body.device_id,
            )
        })
        .await??;
    Ok(json_response(StatusCode::OK, &resp))
}

/// Sign out: the session ends
///
/// The refresh token and every access token of that sign-in (the device's, issued
/// until now) stop working. An unknown or already revoked token is signed out too.
#[utoipa::path(post, path = paths::LOGOUT, tag = "auth", operation_id = "logout",
    request_body = LogoutRequest,
    responses(
        (status = 204, description = "Signed out."),
    ),
)]
async fn logout(
    State(app): St,
    JsonBody(body): JsonBody<LogoutRequest>,
) -> Result<Response, Error> {
    let now_us = app.cfg.now_us();
    app.db
        .write(move |sql| auth::logout(sql, &body.refresh_token, now_us))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Apply a batch of mutations, in order
///
/// One result per mutation, in the order sent. A refused mutation is an outcome
/// (`rejected`), not an HTTP error.
#[utoipa::path(post, path = paths::PUSH, tag = "sync", operation_id = "push",
    request_body = PushRequest,
    responses(
        (status = 200, description = "One result per mutation.", body = PushResponse),
        (status = 413, description = "More mutations than a push may carry, a mutation with more operations (`ops` and `seen`) than one may carry, or more operations in all than a push may carry (`payload_too_large`; `outpost_protocol::limits`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn push_handler(
    State(app): St,
    Extension(who): Extension<Principal>,
    Extension(ClientProtocol(protocol)): Extension<ClientProtocol>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<PushRequest>,
) -> Result<Response, Error> {
    if body.mutations.len() > limits::PUSH_MUTATIONS_MAX {
        return Err(ApiError::new(
            413,
            ErrorCode::PayloadTooLarge,
            format!("at most {} mutations per push", limits::PUSH_MUTATIONS_MAX),
        )
        .into());
    }
    // Ops are counted before the write transaction, where the merge runs.
    let mut ops = 0;
    for m in &body.mutations {
        if m.op_count() > limits::OPS_PER_MUTATION_MAX {
            return Err(ApiError::new(
                413,
                ErrorCode::PayloadTooLarge,
                format!(
                    "mutation {} carries {} operations; at most {} per mutation",
                    m.mutation_id,
                    m.op_count(),
                    limits::OPS_PER_MUTATION_MAX
                ),
            )
            .into());
        }
        ops += m.op_count();
    }
    if ops > limits::OPS_PER_PUSH_MAX {
        return Err(ApiError::new(
            413,
            ErrorCode::PayloadTooLarge,
            format!(
                "the push carries {ops} operations; at most {} per push: send fewer mutations",
                limits::OPS_PER_PUSH_MAX
            ),
        )
        .into());
    }
    let now = app.cfg.now();
    let state = app.clone();
    let budget = app.cfg.failed_sync_budget_bytes;
    let pusher = who.clone();
    let batch = app
        .db
        .write(move |sql| {
            push::push_batch(
                sql,
                &who,
                protocol,
                &body.mutations,
                now,
                &state.rows,
                budget,
            )
        })
        .await?;
    crate::crash_point!("server:after-commit");
    // Committed: the rows it wrote may now serve the next push.
    app.rows.insert_committed(batch.written);
    app.metrics.push(batch.stats);
    crate::fleet::seen(&app, &pusher, repo::Activity::Push, &headers).await;
    let bytes = push::encode_response(&batch.results, now, batch.log_range.as_ref())?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

/// One page of changes
///
/// Without a cursor: a snapshot of everything in the caller's scope first (`priming`),
/// then the change log. Store the page's `cursor` with its rows and send it back.
#[utoipa::path(post, path = paths::PULL, tag = "sync", operation_id = "pull",
    request_body = PullRequest,
    responses(
        (status = 200, description = "One page; ask again while `has_more`.", body = PullResponse),
        (status = 400, description = "`limit` or `max_bytes` out of range, or more than 64 `confirmed` ranges (`out_of_range`), or a cursor this server did not make (`invalid_body`).", body = ErrorBody),
        (status = 409, description = "The cursor is of another epoch, older than the kept log or ahead of it (`resync_required`): pull again without one.", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn pull_handler(
    State(app): St,
    Extension(who): Extension<Principal>,
    Extension(ClientProtocol(protocol)): Extension<ClientProtocol>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<PullRequest>,
) -> Result<Response, Error> {
    let now = app.cfg.now();
    let puller = who.clone();
    let page = app
        .db
        .read(move |sql| {
            pull::pull_page(
                sql,
                &who,
                protocol,
                &pull::PageRequest {
                    cursor: body.cursor.as_deref(),
                    limit: body.limit,
                    max_bytes: body.max_bytes,
                    confirmed: &body.confirmed,
                },
                now,
            )
        })
        .await?;
    let bytes = serde_json::to_vec(&page)?;
    app.metrics
        .pull(page.changes.len() as u64, bytes.len() as u64);
    crate::fleet::seen(&app, &puller, repo::Activity::Pull, &headers).await;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response())
}

fn parse_uuid(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s)
        .map_err(|_| ApiError::bad_request(ErrorCode::InvalidBody, "the id is not a UUID"))
}

/// One work order the caller may see
#[utoipa::path(get, path = "/v1/orders/{id}", tag = "records", operation_id = "get_order",
    params(("id" = Uuid, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The order as the server holds it.", body = WorkOrder),
        (status = 400, description = "The id is not a UUID (`invalid_body`).", body = ErrorBody),
        (status = 404, description = "No such order, or not assigned to the calling technician (`not_found`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_order(
    State(app): St,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, Error> {
    let id = parse_uuid(&id)?;
    let order = app.db.read(move |sql| repo::get_order(sql, id)).await?;
    match order {
        // Not assigned to a technician: the same answer as a missing order, so nothing
        // leaks about other technicians' orders.
        Some((o, _)) if who.is_staff() || o.assignee.as_deref() == Some(who.username.as_str()) => {
            Ok(json_response(StatusCode::OK, &o))
        }
        _ => Err(ApiError::not_found("no such work order").into()),
    }
}

/// The most records one list returns.
pub(crate) const LIST_LIMIT_MAX: u32 = 5000;

/// Which records a list returns.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum ListStatus {
    Open,
    Resolved,
    All,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `open` (the default), `resolved` or `all`.
    #[serde(default)]
    #[param(inline)]
    status: Option<ListStatus>,
    /// How many records at most (default 500).
    #[serde(default)]
    limit: Option<u32>,
}

fn list_filter(q: &ListQuery) -> Result<(Option<RecordStatus>, u32), ApiError> {
    let status = match q.status {
        None | Some(ListStatus::Open) => Some(RecordStatus::Open),
        Some(ListStatus::Resolved) => Some(RecordStatus::Resolved),
        Some(ListStatus::All) => None,
    };
    let limit = q.limit.unwrap_or(500);
    if limit == 0 || limit > LIST_LIMIT_MAX {
        return Err(ApiError::bad_request(
            ErrorCode::OutOfRange,
            format!("limit must be between 1 and {LIST_LIMIT_MAX}"),
        ));
    }
    Ok((status, limit))
}

/// The records of a list answer that fit its byte budget as the client reads them
/// (`limits::LIST_BYTES_MAX`, at least one; the store's sizes were close, this is
/// exact), and whether any were left out: told only to a client that knows `more`.
fn within_list_budget<T: serde::Serialize>(
    mut items: Vec<T>,
    more: bool,
    protocol: u32,
) -> (Vec<T>, bool) {
    let mut bytes = 0usize;
    let mut fit = 0;
    for item in &items {
        bytes += serde_json::to_vec(item).map_or(0, |b| b.len() + 1);
        if fit > 0 && bytes > limits::LIST_BYTES_MAX - 64 {
            break;
        }
        fit += 1;
    }
    let more = more || fit < items.len();
    items.truncate(fit);
    (items, more && protocol >= compat::since::LIST_MORE)
}

/// Conflicts
///
/// Dispatchers see every conflict; technicians see those of their orders and devices.
#[utoipa::path(get, path = paths::CONFLICTS, tag = "records", operation_id = "list_conflicts",
    params(ListQuery),
    responses(
        (status = 200, description = "The conflicts, each with the mutation that caused it, newest first; at most `limit` and about 4 MiB of them (`limits::LIST_BYTES_MAX`; a single larger one travels alone), with `more` when older ones were left out.", body = ConflictList),
        (status = 400, description = "An unknown `status` or parameter (`invalid_body`), or `limit` out of range (`out_of_range`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_conflicts(
    State(app): St,
    Extension(who): Extension<Principal>,
    Extension(ClientProtocol(protocol)): Extension<ClientProtocol>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = q.map_err(query_error)?;
    let (status, limit) = list_filter(&q)?;
    let me = (!who.is_staff()).then(|| who.username.clone());
    let (rows, more) = app
        .db
        .read(move |sql| {
            repo::list_records(
                sql,
                "conflicts",
                status,
                me.as_deref(),
                (limit, limits::LIST_BYTES_MAX),
            )
        })
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            let mut c: ConflictRecord = serde_json::from_str(r)?;
            c.mutation = c.mutation.for_protocol(protocol).into_owned();
            Ok(crate::pull::conflict_as_seen_by(&who, c))
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    let (items, more) = within_list_budget(items, more, protocol);
    Ok(json_response(StatusCode::OK, &ConflictList { items, more }))
}

/// Failed syncs
///
/// Mutations the server refused, with their full payload. Dispatchers see all;
/// technicians see those of their orders and devices.
#[utoipa::path(get, path = paths::FAILED_SYNCS, tag = "records", operation_id = "list_failed_syncs",
    params(ListQuery),
    responses(
        (status = 200, description = "The failed syncs, newest first; at most `limit` and about 4 MiB of them (`limits::LIST_BYTES_MAX`; a single larger one travels alone), with `more` when older ones were left out.", body = FailedSyncList),
        (status = 400, description = "An unknown `status` or parameter (`invalid_body`), or `limit` out of range (`out_of_range`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn list_failed(
    State(app): St,
    Extension(who): Extension<Principal>,
    Extension(ClientProtocol(protocol)): Extension<ClientProtocol>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    let Query(q) = q.map_err(query_error)?;
    let (status, limit) = list_filter(&q)?;
    let me = (!who.is_staff()).then(|| who.username.clone());
    let (rows, more) = app
        .db
        .read(move |sql| {
            repo::list_records(
                sql,
                "failed_syncs",
                status,
                me.as_deref(),
                (limit, limits::LIST_BYTES_MAX),
            )
        })
        .await?;
    let items = rows
        .iter()
        .map(|r| {
            let mut f: FailedSyncRecord = serde_json::from_str(r)?;
            f.mutation = f.mutation.for_protocol(protocol).into_owned();
            Ok(f)
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    let (items, more) = within_list_budget(items, more, protocol);
    Ok(json_response(
        StatusCode::OK,
        &FailedSyncList { items, more },
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FleetQuery {
    /// Devices not seen for longer than this many seconds are `stale` (default: the
    /// server's `--fleet-stale-after-secs`, 24 hours).
    #[serde(default)]
    #[param(minimum = 1)]
    stale_after_secs: Option<u64>,
}

/// Fleet sync health
///
/// One row per user and device: the last push and pull the server answered, what the
/// device reported it has not sent, its open failed syncs and conflicts, its app
/// version, and whether it has gone unseen too long; worst first. Dispatchers only.
#[utoipa::path(get, path = paths::FLEET, tag = "records", operation_id = "fleet_health",
    params(FleetQuery),
    responses(
        (status = 200, description = "Every device of an enabled user, worst first.", body = FleetHealth),
        (status = 400, description = "An unknown or malformed parameter (`invalid_body`), or `stale_after_secs` of 0 (`out_of_range`).", body = ErrorBody),
        (status = 403, description = "The caller is a technician (`forbidden`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn fleet_health(
    State(app): St,
    Extension(who): Extension<Principal>,
    q: Result<Query<FleetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Error> {
    if !who.is_staff() {
        return Err(ApiError::forbidden("the fleet view is for dispatchers").into());
    }
    let Query(q) = q.map_err(query_error)?;
    let stale_after = match q.stale_after_secs {
        Some(0) => {
            return Err(ApiError::bad_request(
                ErrorCode::OutOfRange,
                "stale_after_secs must be at least 1",
            )
            .into())
        }
        Some(s) => s,
        None => app.cfg.fleet_stale_after.as_secs(),
    };
    let now = app.cfg.now();
    let table = app
        .db
        .read(move |sql| crate::fleet::health(sql, now, stale_after))
        .await?;
    Ok(json_response(StatusCode::OK, &table))
}

/// Inventory below zero
///
/// Parts used beyond what was booked, per item and location. Dispatchers only.
#[utoipa::path(get, path = paths::STOCK_ALERTS, tag = "records", operation_id = "stock_alerts",
    responses(
        (status = 200, description = "Every item and location whose stock is below zero.", body = StockAlertList),
        (status = 403, description = "The caller is a technician (`forbidden`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn stock_alerts(
    State(app): St,
    Extension(who): Extension<Principal>,
) -> Result<Response, Error> {
    if !who.is_staff() {
        return Err(ApiError::forbidden("stock alerts are for dispatchers").into());
    }
    let rows = app.db.read(repo::stock_alerts).await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(StockAlert {
                sku: r.text(0)?,
                location: r.text(1)?,
                name: r.text(2)?,
                quantity: Quantity(r.i64(3)?),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(json_response(StatusCode::OK, &StockAlertList { items }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ChunkQuery {
    /// Where this chunk starts in the file: the `received` of the upload's status.
    offset: u64,
    /// The whole file's size in bytes.
    total: u64,
}

/// Store one chunk of an attachment
///
/// Chunks go in order: send the bytes from `offset` (the `received` of the upload's
/// status). The file counts once all its bytes are stored and their SHA-256 is its name.
#[utoipa::path(put, path = "/v1/attachments/{hash}", tag = "attachments", operation_id = "put_attachment_chunk",
    params(("hash" = String, Path, description = "The lowercase hex SHA-256 of the whole file."), ChunkQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The chunk's bytes."),
    responses(
        (status = 200, description = "The caller's upload's state after this chunk (complete at once for a file the caller may already read).", body = AttachmentStatus),
        (status = 400, description = "The name is not a SHA-256 (`invalid_body`), a parameter is missing or malformed (`invalid_body`), the chunk is empty or goes past `total` (`out_of_range`), or the body could not be read (`malformed_json`).", body = ErrorBody),
        (status = 409, description = "`offset` is not where the caller's stored bytes end, or `total` differs from the caller's upload's (`offset_mismatch`). Each user's upload in progress is their own.", body = ErrorBody),
        (status = 413, description = "The chunk or the file is too large (`payload_too_large`), or the file would take the caller past their storage quota (`quota_exceeded`; a protocol 1 client gets `payload_too_large`). Checked when an upload starts, before any byte is stored.", body = ErrorBody),
        (status = 422, description = "The whole file's bytes do not match its name; the caller's upload is discarded, start again from byte 0 (`hash_mismatch`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn put_attachment(
    State(app): St,
    Extension(who): Extension<Principal>,
    Extension(ClientProtocol(protocol)): Extension<ClientProtocol>,
    Path(hash): Path<String>,
    q: Result<Query<ChunkQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, Error> {
    let Query(q) = q.map_err(query_error)?;
    attachments::check_hash(&hash)?;
    let data = read_body(body, limits::CHUNK_BYTES_MAX).await?.to_vec();
    let now_us = app.cfg.now_us();
    let quota = app.quota(protocol);
    let status = app
        .db
        .write(move |sql| {
            attachments::put_chunk(sql, &who, &hash, q.offset, (q.total, quota), data, now_us)
        })
        .await??;
    Ok(json_response(StatusCode::OK, &status))
}

/// The bytes of an attachment
#[utoipa::path(get, path = "/v1/attachments/{hash}", tag = "attachments", operation_id = "get_attachment",
    params(("hash" = String, Path, description = "The lowercase hex SHA-256 of the file.")),
    responses(
        (status = 200, description = "The file.", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "The name is not a SHA-256 (`invalid_body`).", body = ErrorBody),
        (status = 404, description = "No complete file of that name that the caller may read (`not_found`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn get_attachment(
    State(app): St,
    Extension(who): Extension<Principal>,
    Path(hash): Path<String>,
) -> Result<Response, Error> {
    let bytes = app
        .db
        .read(move |sql| attachments::read(sql, &who, &hash))
        .await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        bytes,
    )
        .into_response())
}

/// The state of an upload
///
/// Complete for a file the caller may read (they sent its bytes, an order in their
/// scope refers to it, or they are staff); else the caller's own upload in progress;
/// a file the caller may not read looks like one never uploaded, whoever stored it.
#[utoipa::path(get, path = "/v1/attachments/{hash}/status", tag = "attachments", operation_id = "attachment_status",
    params(("hash" = String, Path, description = "The lowercase hex SHA-256 of the file.")),
    responses(
        (status = 200, description = "How many bytes are stored; resume from `received`.", body = AttachmentStatus),
        (status = 400, description = "The name is not a SHA-256 (`invalid_body`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn attachment_status(
    State(app): St,
    Extension(who): Extension<Principal>,
    Path(hash): Path<String>,
) -> Result<Response, Error> {
    let s = app
        .db
        .read(move |sql| attachments::status(sql, &who, &hash))
        .await?;
    Ok(json_response(StatusCode::OK, &s))
}

/// Several small files in one request
///
/// Each file is stored whole or not at all; one result per file, in order.
#[utoipa::path(post, path = paths::ATTACHMENTS_BATCH, tag = "attachments", operation_id = "upload_batch",
    request_body = BatchUploadRequest,
    responses(
        (status = 200, description = "One result per file (a refused file carries its `error`: among others `quota_exceeded` for a file past the caller's storage quota, `payload_too_large` for a protocol 1 client).", body = BatchUploadResponse),
        (status = 413, description = "More files than a batch may carry (`payload_too_large`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn batch_upload(
    State(app): St,
    Extension(who): Extension<Principal>,
    Extension(ClientProtocol(protocol)): Extension<ClientProtocol>,
    JsonBody(body): JsonBody<BatchUploadRequest>,
) -> Result<Response, Error> {
    if body.files.len() > limits::BATCH_FILES_MAX {
        return Err(ApiError::new(
            413,
            ErrorCode::PayloadTooLarge,
            format!("at most {} files per batch", limits::BATCH_FILES_MAX),
        )
        .into());
    }
    let now_us = app.cfg.now_us();
    let quota = app.quota(protocol);
    let results = app
        .db
        .write(move |sql| attachments::put_batch(sql, &who, &body.files, quota, now_us))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &BatchUploadResponse { results },
    ))
}

/// The documents the caller's open orders need
///
/// Each document linked to one of the caller's open orders, directly or through the
/// order's equipment model or asset tag, in its current version, with those orders. A
/// device keeps its cache to this list: a new version (another `sha256`) is fetched, a
/// document no longer listed is deleted.
#[utoipa::path(get, path = paths::DOCUMENTS, tag = "documents", operation_id = "document_index",
    responses(
        (status = 200, description = "The documents, by id.", body = DocumentIndex),
    ),
    security(("bearer" = [])),
)]
async fn document_index(
    State(app): St,
    Extension(who): Extension<Principal>,
) -> Result<Response, Error> {
    let mut index = app
        .db
        .read(move |sql| crate::documents::index(sql, &who))
        .await?;
    index.budget_bytes = app.cfg.documents.device_budget;
    Ok(json_response(StatusCode::OK, &index))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AddDocumentQuery {
    /// The name devices show (e.g. `hx-200-service-manual.pdf`); not blank.
    #[param(min_length = 1, pattern = r"\S")]
    name: String,
    /// Link to an equipment model (an order's `equipment.model`, exactly).
    #[serde(default)]
    model: Option<String>,
    /// Link to an asset tag (an order's `equipment.asset_tag`, exactly).
    #[serde(default)]
    asset: Option<String>,
    /// Link to an order.
    #[serde(default)]
    order: Option<Uuid>,
    /// Default: from the name's extension.
    #[serde(default)]
    media_type: Option<String>,
    /// Make the file the new version of this document (its links become these).
    #[serde(default)]
    replace: Option<Uuid>,
}

/// Add a document (staff)
///
/// The body is the file. A file with the same name and links as a document already
/// there (or `replace`) is its new version, which devices fetch on their next sync.
/// More links, and files too large to send within the request timeout:
/// `outpost-server documents add` on the server's host.
#[utoipa::path(post, path = paths::DOCUMENTS, tag = "documents", operation_id = "add_document",
    params(AddDocumentQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file."),
    responses(
        (status = 200, description = "Added, or a new version.", body = DocumentAdded),
        (status = 400, description = "No link, or a malformed parameter (`invalid_body`).", body = ErrorBody),
        (status = 403, description = "The caller is a technician (`forbidden`).", body = ErrorBody),
        (status = 404, description = "`replace` names no document (`not_found`).", body = ErrorBody),
        (status = 413, description = "The file is larger than the server takes (`payload_too_large`; `serve --document-max-bytes`, 256 MiB by default).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn add_document(
    State(app): St,
    Extension(who): Extension<Principal>,
    q: Result<Query<AddDocumentQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Response, Error> {
    use futures_util::StreamExt as _;
    if !who.is_staff() {
        return Err(
            ApiError::forbidden("documents are added by dispatchers and administrators").into(),
        );
    }
    let Query(q) = q.map_err(query_error)?;
    use crate::documents::{Link, LinkKind, NewDocument};
    let links: Vec<Link> = [
        (LinkKind::Model, q.model),
        (LinkKind::Asset, q.asset),
        (LinkKind::Order, q.order.map(|o| o.to_string())),
    ]
    .into_iter()
    .filter_map(|(kind, t)| {
        t.map(|t| Link {
            kind,
            target: t.trim().to_owned(),
        })
    })
    .filter(|l| !l.target.is_empty())
    .collect();
    let name = q.name.trim().to_owned();
    if name.is_empty() || links.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "a document needs a name and a model, asset or order to link it to",
        )
        .into());
    }
    let new = NewDocument {
        media_type: q
            .media_type
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| crate::documents::media_type_of(&name).to_owned()),
        name,
        links,
        replace: q.replace,
    };
    let storage = &app.cfg.documents;
    let mut incoming = storage.begin()?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request(
                ErrorCode::MalformedJson,
                "the file could not be read completely",
            )
        })?;
        incoming.write(&chunk)?;
    }
    let received = incoming.finish()?;
    let (added, size, sha256) =
        crate::documents::store(&app.db, storage, new, received, app.cfg.now_us()).await?;
    tracing::info!(id = %added.id, version = added.version, by = %who.username, "document added");
    Ok(json_response(
        StatusCode::OK,
        &DocumentAdded {
            id: added.id,
            version: added.version,
            replaced: added.replaced,
            size,
            sha256,
        },
    ))
}

/// The bytes of a document
///
/// Staff read every document; anyone else those linked to an order assigned to them.
/// One byte range may be asked for (`Range: bytes=N-` to resume), with `If-Range`
/// naming the `ETag` the first part had: when the document changed since, the whole
/// new file is sent (200).
#[utoipa::path(get, path = "/v1/documents/{id}/content", tag = "documents", operation_id = "document_content",
    params(("id" = Uuid, Path, description = "The document's id.")),
    responses(
        (status = 200, description = "The whole document; `ETag` is its quoted SHA-256.", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 206, description = "The range asked for (`Content-Range`).", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 400, description = "The id is not a UUID (`invalid_body`).", body = ErrorBody),
        (status = 404, description = "No such document, removed, or not linked to an order of the caller (`not_found`): the same answer, so nothing leaks.", body = ErrorBody),
        (status = 416, description = "The range starts past the end (`out_of_range`).", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
async fn document_content(
    State(app): St,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let id = parse_uuid(&id)?;
    let (doc, inline) = app
        .db
        .read(move |sql| crate::documents::readable(sql, &who, id))
        .await?;
    let etag = format!("\"{}\"", doc.sha256);
    let wanted = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        // A range of another version is no use: send the whole file.
        .filter(|_| {
            headers
                .get(header::IF_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|v| v.trim() == etag)
        });
    let range = match wanted.map(|h| crate::documents::byte_range(h, doc.size)) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(r))) => Some(r),
        Some(Err(())) => {
            let mut resp = ApiError::new(
                416,
                ErrorCode::OutOfRange,
                format!("the document has {} bytes", doc.size),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", doc.size)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let (start, end) = range.unwrap_or((0, doc.size));
    let body = match inline {
        Some(bytes) => {
            let (s, e) = (start as usize, (end as usize).min(bytes.len()));
            Body::from(bytes.get(s..e).unwrap_or_default().to_vec())
        }
        None => {
            let path = app.cfg.documents.blob_path(&doc.sha256);
            file_body(&path, start, end - start).await?
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = resp.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    // Always bytes, never the document's own type: a document is untrusted input, and
    // nothing that reads this answer should render it (the devices take the type from
    // the index). `nosniff` keeps a browser from guessing one.
    set(header::CONTENT_TYPE, "application/octet-stream".into());
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff".into());
    set(header::CONTENT_LENGTH, (end - start).to_string());
    set(header::ETAG, etag);
    set(header::ACCEPT_RANGES, "bytes".into());
    // Never compressed on the way: a range is of the file's own bytes.
    set(header::CONTENT_ENCODING, "identity".into());
    if range.is_some() {
        set(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{}", end.saturating_sub(1), doc.size),
        );
    }
    Ok(resp)
}

/// `len` bytes of the file at `path` from `start`, streamed in 64 KiB reads.
async fn file_body(path: &std::path::Path, start: u64, len: u64) -> Result<Body, Error> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::store(format!("opening {}: {e}", path.display())))?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| Error::store(format!("reading {}: {e}", path.display())))?;
    let stream = futures_util::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; (64 * 1024).min(left as usize)];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the document's file is shorter than its size",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(Body::from_stream(stream))
}

async fn not_found() -> Response {
    ApiError::not_found("no such endpoint").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        405,
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take that method",
    )
    .into_response()
}

/// The application's router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(paths::HEALTH, get(health))
        .route(paths::METRICS, get(metrics))
        .route(paths::OPENAPI, get(openapi))
        .route(paths::LOGIN, post(login))
        .route(paths::REFRESH, post(refresh))
        .route(paths::LOGOUT, post(logout))
        .route(paths::PUSH, post(push_handler))
        .route(paths::PULL, post(pull_handler))
        .route("/v1/orders/{id}", get(get_order))
        .route(paths::CONFLICTS, get(list_conflicts))
        .route(paths::FAILED_SYNCS, get(list_failed))
        .route(paths::STOCK_ALERTS, get(stock_alerts))
        .route(paths::FLEET, get(fleet_health))
        .route(
            "/v1/attachments/{hash}",
            put(put_attachment).get(get_attachment),
        )
        .route("/v1/attachments/{hash}/status", get(attachment_status))
        .route(paths::ATTACHMENTS_BATCH, post(batch_upload))
        .route(paths::DOCUMENTS, get(document_index).post(add_document))
        .route("/v1/documents/{id}/content", get(document_content))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(CompressionLayer::new())
        .route_layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn_with_state(state.clone(), admit))
        .with_state(state)
}
