//! The HTTP side of the sync protocol: reqwest with rustls, one method per endpoint.
//!
//! Every answer is decoded into the `protocol::wire` types or turned into a
//! [`SyncError`] that says whether trying again can help. Push bodies are assembled
//! from the outbox's stored bytes, so a sealed mutation is resent byte for byte. Every
//! request carries the protocol version and, once a pass has set it, the device's
//! report of unsent work (`x-outpost-unsent`). Plain HTTP is refused to any host but
//! loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use outpost_protocol::limits;
use outpost_protocol::unsent::UnsentReport;
use outpost_protocol::wire::{
    paths, BatchFile, BatchUploadRequest, BatchUploadResponse, DocumentIndex, ErrorBody, ErrorCode,
    Health, LoginRequest, PullRequest, PullResponse, PushResponse, RefreshRequest, TokenResponse,
    PROTOCOL_HEADER, UNSENT_HEADER,
};
use outpost_protocol::PROTOCOL_VERSION;
use reqwest::header::HeaderValue;
use serde::de::DeserializeOwned;

use crate::error::SyncError;

/// Options for the connection to the server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// An extra root certificate (PEM) to trust: an administrator's pin for a server
    /// with a private CA or a self-signed certificate.
    pub ca_cert_pem: Option<Vec<u8>>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca_cert_pem: None,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SyncClient {
    http: reqwest::Client,
    base: String,
    /// The `x-outpost-unsent` value every request carries, once the pass has set one
    /// (shared by the clones of this client).
    unsent: Arc<Mutex<Option<HeaderValue>>>,
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Check a server URL: http(s), a host, and plain HTTP only to loopback.
pub fn check_server_url(url: &str) -> Result<String, SyncError> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        SyncError::BadServerUrl(format!(
            "{url:?} is not a URL: use https://server.example.com"
        ))
    })?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => authority,
    };
    if host.is_empty() {
        return Err(SyncError::BadServerUrl(format!("{url:?} has no host")));
    }
    match scheme {
        "https" => Ok(url.to_owned()),
        "http" if is_loopback(host) => Ok(url.to_owned()),
        "http" => Err(SyncError::BadServerUrl(format!(
            "plain HTTP to {host} would send passwords and work orders unencrypted: use https://"
        ))),
        other => Err(SyncError::BadServerUrl(format!(
            "{other}:// is not supported: use https://"
        ))),
    }
}

fn transport_error(e: reqwest::Error) -> SyncError {
    let text = format!("{e}");
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let full = format!("{text}{chain}");
    let lower = full.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        let clock = lower.contains("expired")
            || lower.contains("notvalidyet")
            || lower.contains("not valid yet");
        return SyncError::Certificate {
            detail: full,
            maybe_clock: clock,
        };
    }
    if e.is_decode() || e.is_body() && !e.is_timeout() {
        return SyncError::Offline(format!(
            "the connection broke while reading the answer ({full})"
        ));
    }
    SyncError::Offline(full)
}

/// Read an answer's body, refusing it as soon as it is known to pass `cap` bytes (its
/// announced length, or the bytes read so far; after decompression): what a broken
/// server or proxy sends cannot make the device hold more than `cap`.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, SyncError> {
    let too_large = || {
        SyncError::BadAnswer(format!(
            "the server's answer is larger than {} MiB, more than any answer of this protocol, \
             and was not read; nothing was changed (the server, or a proxy in front of it, \
             is misbehaving)",
            cap >> 20
        ))
    };
    let announced = resp.content_length().unwrap_or(0);
    if announced > cap as u64 {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(announced as usize);
    while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl SyncClient {
    pub fn new(server_url: &str, opts: &ClientOptions) -> Result<SyncClient, SyncError> {
        let base = check_server_url(server_url)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .user_agent(concat!("outpost/", env!("CARGO_PKG_VERSION")))
            .https_only(!base.starts_with("http://"));
        if let Some(pem) = &opts.ca_cert_pem {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
                SyncError::BadServerUrl(format!("the pinned certificate is not PEM: {e}"))
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| SyncError::BadServerUrl(format!("cannot set up HTTPS: {e}")))?;
        Ok(SyncClient {
            http,
            base,
            unsent: Arc::new(Mutex::new(None)),
        })
    }

    /// Report `report` on every request from now on (`x-outpost-unsent`).
    pub fn report_unsent(&self, report: &UnsentReport) {
        let value = HeaderValue::from_str(&report.to_header()).ok();
        if let Ok(mut slot) = self.unsent.lock() {
            *slot = value;
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut rb = self
            .http
            .request(method, self.url(path))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string());
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(unsent) = self.unsent.lock().ok().and_then(|v| v.clone()) {
            rb = rb.header(UNSENT_HEADER, unsent);
        }
        rb
    }

    /// Send a request; a success gives the body's bytes, anything else the
    /// [`SyncError`] its status and error body mean. The one place answers are mapped.
    /// At most `cap` bytes of the answer are read ([`read_capped`]).
    async fn send_raw(
        &self,
        rb: reqwest::RequestBuilder,
        cap: usize,
    ) -> Result<Vec<u8>, SyncError> {
        Ok(self.send_with_headers(rb, cap).await?.1)
    }

    /// [`Self::send_raw`], with the answer's status and headers.
    async fn send_with_headers(
        &self,
        rb: reqwest::RequestBuilder,
        cap: usize,
    ) -> Result<((u16, reqwest::header::HeaderMap), Vec<u8>), SyncError> {
        let resp = rb.send().await.map_err(transport_error)?;
        #[cfg(feature = "test-support")]
        if resp.url().path().ends_with(paths::PUSH) {
            crate::crash_point!("client:after-request-sent");
        }
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let headers = resp.headers().clone();
        let bytes = read_capped(resp, cap).await?;
        if status.is_success() {
            return Ok(((status.as_u16(), headers), bytes));
        }
        let body: Option<ErrorBody> = serde_json::from_slice(&bytes).ok();
        Err(match body {
            Some(b) if b.code.needs_sign_in() => SyncError::SignInRequired(b.message),
            Some(b)
                if matches!(
                    b.code,
                    ErrorCode::TokenExpired | ErrorCode::Unauthorized | ErrorCode::TokenInvalid
                ) =>
            {
                SyncError::Unauthorized(b.message)
            }
            Some(b) if b.code == ErrorCode::ResyncRequired => SyncError::ResyncRequired,
            Some(b) if b.code == ErrorCode::InvalidCredentials => {
                SyncError::InvalidCredentials(b.message)
            }
            Some(b) => SyncError::Server {
                status: status.as_u16(),
                code: b.code,
                message: b.message,
                retry_after: retry_after.or(b.retry_after_secs.map(Duration::from_secs)),
            },
            None => SyncError::Server {
                status: status.as_u16(),
                code: if status.is_server_error() {
                    ErrorCode::Unavailable
                } else {
                    ErrorCode::Unknown
                },
                message: format!("the server answered {status}"),
                retry_after,
            },
        })
    }

    /// [`SyncClient::send_raw`] and decode the JSON answer; also returns its size.
    async fn send<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<(T, usize), SyncError> {
        let bytes = self.send_raw(rb, limits::ANSWER_BYTES_MAX).await?;
        let value = serde_json::from_slice(&bytes).map_err(|e| {
            SyncError::BadAnswer(format!(
                "the server's answer could not be read ({e}); nothing was changed"
            ))
        })?;
        Ok((value, bytes.len()))
    }

    /// Online means this answers.
    pub async fn health(&self) -> Result<Health, SyncError> {
        let rb = self
            .request(reqwest::Method::GET, paths::HEALTH, None)
            .timeout(Duration::from_secs(5));
        Ok(self.send(rb).await?.0)
    }

    pub async fn login(&self, req: &LoginRequest) -> Result<TokenResponse, SyncError> {
        let rb = self
            .request(reqwest::Method::POST, paths::LOGIN, None)
            .json(req);
        Ok(self.send(rb).await?.0)
    }

    pub async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, SyncError> {
        let rb = self
            .request(reqwest::Method::POST, paths::REFRESH, None)
            .json(req);
        Ok(self.send(rb).await?.0)
    }

    /// The fleet's sync health (dispatchers; a technician is answered 403 `forbidden`).
    pub async fn fleet(
        &self,
        token: &str,
        stale_after_secs: Option<u64>,
    ) -> Result<outpost_protocol::fleet::FleetHealth, SyncError> {
        let path = match stale_after_secs {
            Some(s) => format!("{}?stale_after_secs={s}", paths::FLEET),
            None => paths::FLEET.to_owned(),
        };
        let rb = self.request(reqwest::Method::GET, &path, Some(token));
        Ok(self.send(rb).await?.0)
    }

    /// Push mutations given as their stored JSON bodies (sent byte for byte).
    pub async fn push(
        &self,
        token: &str,
        bodies: &[&str],
    ) -> Result<(PushResponse, usize), SyncError> {
        let mut json =
            String::with_capacity(bodies.iter().map(|b| b.len() + 1).sum::<usize>() + 16);
        json.push_str("{\"mutations\":[");
        for (i, b) in bodies.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(b);
        }
        json.push_str("]}");
        let sent = json.len();
        let rb = self
            .request(reqwest::Method::POST, paths::PUSH, Some(token))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json);
        let (resp, _) = self.send(rb).await?;
        Ok((resp, sent))
    }

    /// One pull page; returns the page and the bytes received.
    pub async fn pull(
        &self,
        token: &str,
        req: &PullRequest,
    ) -> Result<(PullResponse, usize), SyncError> {
        let rb = self
            .request(reqwest::Method::POST, paths::PULL, Some(token))
            .json(req);
        self.send(rb).await
    }

    /// Download an attachment the caller may see.
    pub async fn download(&self, token: &str, hash: &str) -> Result<Vec<u8>, SyncError> {
        let path = format!("{}/{hash}", paths::ATTACHMENTS);
        let cap = usize::try_from(limits::ATTACHMENT_BYTES_MAX).unwrap_or(usize::MAX);
        self.send_raw(self.request(reqwest::Method::GET, &path, Some(token)), cap)
            .await
    }

    /// The documents this user's open orders need. A server older than documents
    /// (404 for the path) has none.
    pub async fn document_index(&self, token: &str) -> Result<DocumentIndex, SyncError> {
        let rb = self.request(reqwest::Method::GET, paths::DOCUMENTS, Some(token));
        match self.send(rb).await {
            Ok((index, _)) => Ok(index),
            Err(SyncError::Server {
                status: 404,
                code: ErrorCode::NotFound,
                ..
            }) => Ok(DocumentIndex::default()),
            Err(e) => Err(e),
        }
    }

    /// Bytes `start..end` of a document, only if its content is still `sha256` (its
    /// `ETag`): another version answers with another tag, which is refused here
    /// without keeping anything (the next index names the new version).
    pub async fn document_range(
        &self,
        token: &str,
        id: &str,
        sha256: &str,
        (start, end): (u64, u64),
    ) -> Result<Vec<u8>, SyncError> {
        let path = format!("{}/{id}/content", paths::DOCUMENTS);
        let tag = format!("\"{sha256}\"");
        let rb = self
            .request(reqwest::Method::GET, &path, Some(token))
            .header(
                reqwest::header::RANGE,
                format!("bytes={start}-{}", end.saturating_sub(1)),
            )
            .header(reqwest::header::IF_RANGE, &tag);
        let cap = usize::try_from(end.saturating_sub(start)).unwrap_or(usize::MAX);
        let ((status, headers), bytes) = self.send_with_headers(rb, cap).await?;
        let etag = headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if etag != tag {
            return Err(SyncError::BadAnswer(format!(
                "document {id} changed on the server while it was downloaded; the new version is fetched on the next sync"
            )));
        }
        let whole_file = status == 200 && start == 0;
        if (status != 206 && !whole_file) || bytes.len() as u64 != end - start {
            return Err(SyncError::BadAnswer(format!(
                "the server sent {} bytes of document {id} for the range {start}-{end} (status {status})",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Upload small files in one request.
    pub async fn upload_batch(
        &self,
        token: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<BatchUploadResponse, SyncError> {
        let req = BatchUploadRequest {
            files: files
                .iter()
                .map(|(hash, data)| BatchFile {
                    hash: hash.clone(),
                    data_base64: base64::engine::general_purpose::STANDARD.encode(data),
                })
                .collect(),
        };
        let rb = self
            .request(reqwest::Method::POST, paths::ATTACHMENTS_BATCH, Some(token))
            .json(&req);
        Ok(self.send(rb).await?.0)
    }

    /// Upload one file in chunks, resuming from what the server already has; returns
    /// the bytes sent.
    pub async fn upload_resumable(
        &self,
        token: &str,
        hash: &str,
        data: &[u8],
        chunk: usize,
    ) -> Result<usize, SyncError> {
        let status_path = format!("{}/{hash}/status", paths::ATTACHMENTS);
        let status: outpost_protocol::wire::AttachmentStatus = match self
            .send(self.request(reqwest::Method::GET, &status_path, Some(token)))
            .await
        {
            Ok((s, _)) => s,
            Err(SyncError::Server { status: 404, .. }) => {
                outpost_protocol::wire::AttachmentStatus {
                    hash: hash.to_owned(),
                    received: 0,
                    total: None,
                    complete: false,
                }
            }
            Err(e) => return Err(e),
        };
        if status.complete {
            return Ok(0);
        }
        let total = data.len() as u64;
        let mut sent = 0usize;
        let mut offset = status.received.min(total);
        let chunk = chunk.clamp(1, outpost_protocol::wire::limits::CHUNK_BYTES_MAX);
        loop {
            let end = (offset as usize + chunk).min(data.len());
            let path = format!(
                "{}/{hash}?offset={offset}&total={total}",
                paths::ATTACHMENTS
            );
            let rb = self
                .request(reqwest::Method::PUT, &path, Some(token))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(data[offset as usize..end].to_vec());
            sent += end - offset as usize;
            let (st, _): (outpost_protocol::wire::AttachmentStatus, usize) = self.send(rb).await?;
            if st.complete {
                return Ok(sent);
            }
            if st.received <= offset && end < data.len() {
                return Err(SyncError::BadAnswer(format!(
                    "the server did not store the chunk at {offset} of attachment {hash}"
                )));
            }
            offset = st.received;
            if offset >= total {
                return Ok(sent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_only_for_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://[::1]:9",
            "https://sync.example.com",
            "https://sync.example.com:8443/",
        ] {
            assert!(check_server_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://sync.example.com",
            "http://10.0.0.5",
            "ftp://x",
            "sync.example.com",
            "https://",
        ] {
            assert!(check_server_url(bad).is_err(), "{bad}");
        }
    }
}
