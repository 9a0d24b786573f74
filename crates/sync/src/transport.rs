//! What a sync pass needs from the server, as a trait: the seam between the pass's
//! logic and HTTP.
//!
//! [`SyncClient`] (reqwest, rustls) is the only implementation the product uses. The
//! engine's unit tests (`races.rs`) drive [`crate::run_pass`] through a scripted
//! in-memory server instead, so that each race (a lost reply, a token that expires
//! mid-batch, an edit made while its order's mutation is in flight) is a deterministic,
//! named test. The end-to-end tests (`tests/tests/sync.rs`) run the real client against
//! the real server over loopback.

use std::future::Future;
use std::pin::Pin;

use outpost_protocol::unsent::UnsentReport;
use outpost_protocol::wire::{
    BatchUploadResponse, DocumentIndex, PullRequest, PullResponse, PushResponse, RefreshRequest,
    TokenResponse,
};

use crate::client::SyncClient;
use crate::error::SyncError;

/// The calls of one sync pass. Every method maps the server's answer, or its absence,
/// to a [`SyncError`] that says whether trying again can help.
pub trait Transport: Sync {
    /// Trade the refresh token for new tokens.
    fn refresh(
        &self,
        req: &RefreshRequest,
    ) -> impl Future<Output = Result<TokenResponse, SyncError>> + Send;

    /// Push mutations given as their stored JSON bodies (sent byte for byte); returns
    /// the answer and the bytes sent.
    fn push(
        &self,
        token: &str,
        bodies: &[&str],
    ) -> impl Future<Output = Result<(PushResponse, usize), SyncError>> + Send;

    /// One pull page and the bytes received.
    fn pull(
        &self,
        token: &str,
        req: &PullRequest,
    ) -> impl Future<Output = Result<(PullResponse, usize), SyncError>> + Send;

    /// Download an attachment the caller may see.
    fn download(
        &self,
        token: &str,
        hash: &str,
    ) -> impl Future<Output = Result<Vec<u8>, SyncError>> + Send;

    /// Upload small files in one request.
    fn upload_batch(
        &self,
        token: &str,
        files: &[(String, Vec<u8>)],
    ) -> impl Future<Output = Result<BatchUploadResponse, SyncError>> + Send;

    /// Upload one file in chunks, resuming from what the server already has; returns
    /// the bytes sent.
    fn upload_resumable(
        &self,
        token: &str,
        hash: &str,
        data: &[u8],
        chunk: usize,
    ) -> impl Future<Output = Result<usize, SyncError>> + Send;

    /// The documents the user's open orders need (issue 22). By default none: an
    /// implementation without documents (the engine's scripted test servers) has none.
    fn document_index(
        &self,
        _token: &str,
    ) -> impl Future<Output = Result<DocumentIndex, SyncError>> + Send {
        async { Ok(DocumentIndex::default()) }
    }

    /// Bytes `range.0..range.1` of a document whose content is `sha256`.
    fn document_range(
        &self,
        _token: &str,
        id: &str,
        _sha256: &str,
        _range: (u64, u64),
    ) -> impl Future<Output = Result<Vec<u8>, SyncError>> + Send {
        let id = id.to_owned();
        async move { Err(SyncError::BadAnswer(format!("no document {id} here"))) }
    }

    /// A pull page asked for now and awaited later: the pass asks for the next page
    /// before it applies the current one, so that the server's work, the transfer and
    /// the decoding overlap the device's writes. By default the request starts only
    /// when awaited (no overlap: the engine's scripted test servers); the HTTP client
    /// runs it as a task of its own.
    fn pull_ahead(&self, token: String, req: PullRequest) -> PullAhead<'_> {
        Ahead(Box::pin(async move { self.pull(&token, &req).await }))
    }

    /// A push sent now and awaited later: the pass records the previous push's answer
    /// while the server applies this one. By default the request starts only when
    /// awaited (no overlap: the engine's scripted test servers); the HTTP client runs
    /// it as a task of its own.
    fn push_ahead(&self, token: String, bodies: Vec<String>) -> PushAhead<'_> {
        Ahead(Box::pin(async move {
            let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
            self.push(&token, &bodies).await
        }))
    }

    /// What the device has not sent, to report on every request from now on (the
    /// `x-outpost-unsent` header). Reporting is best effort: an implementation may
    /// ignore it.
    fn report_unsent(&self, _report: &UnsentReport) {}
}

/// A request on its way ([`Transport::pull_ahead`], [`Transport::push_ahead`]).
/// Dropped unawaited, the request is abandoned: a pull changes nothing on the server; a
/// push may have been applied there, and its rows, still sealed on the device, are sent
/// again (the server answers them as duplicates), as after a lost reply.
pub struct Ahead<'a, T>(Pin<Box<dyn Future<Output = T> + Send + 'a>>);

/// A pull page on its way.
pub type PullAhead<'a> = Ahead<'a, PullResult>;

/// A push on its way.
pub type PushAhead<'a> = Ahead<'a, PushResult>;

/// A pull page and the bytes received, or why not.
type PullResult = Result<(PullResponse, usize), SyncError>;

/// A push's answer and the bytes sent, or why not.
type PushResult = Result<(PushResponse, usize), SyncError>;

impl<'a, T> Ahead<'a, T> {
    pub async fn wait(self) -> T {
        self.0.await
    }

    /// The request `answer` makes, or has made, on its way.
    pub fn new(answer: impl Future<Output = T> + Send + 'a) -> Self {
        Ahead(Box::pin(answer))
    }
}

/// Aborts its task when dropped: an abandoned page is not fetched to the end.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Transport for SyncClient {
    fn pull_ahead(&self, token: String, req: PullRequest) -> PullAhead<'_> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Ahead(Box::pin(async move { self.pull(&token, &req).await }));
        };
        let client = self.clone();
        let mut task = AbortOnDrop(runtime.spawn(async move { client.pull(&token, &req).await }));
        Ahead(Box::pin(async move {
            (&mut task.0).await.unwrap_or_else(|e| {
                Err(SyncError::Offline(format!(
                    "the request for the next page stopped ({e})"
                )))
            })
        }))
    }

    fn push_ahead(&self, token: String, bodies: Vec<String>) -> PushAhead<'_> {
        let client = self.clone();
        let push = async move {
            let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
            client.push(&token, &bodies).await
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Ahead(Box::pin(push));
        };
        let mut task = AbortOnDrop(runtime.spawn(push));
        Ahead(Box::pin(async move {
            // A push whose task stopped may have been applied: the caller treats it
            // as a lost reply (the rows stay sealed and go again).
            (&mut task.0)
                .await
                .unwrap_or_else(|e| Err(SyncError::Offline(format!("the push stopped ({e})"))))
        }))
    }

    async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, SyncError> {
        SyncClient::refresh(self, req).await
    }

    async fn push(&self, token: &str, bodies: &[&str]) -> Result<(PushResponse, usize), SyncError> {
        SyncClient::push(self, token, bodies).await
    }

    async fn pull(
        &self,
        token: &str,
        req: &PullRequest,
    ) -> Result<(PullResponse, usize), SyncError> {
        SyncClient::pull(self, token, req).await
    }

    async fn download(&self, token: &str, hash: &str) -> Result<Vec<u8>, SyncError> {
        SyncClient::download(self, token, hash).await
    }

    async fn upload_batch(
        &self,
        token: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<BatchUploadResponse, SyncError> {
        SyncClient::upload_batch(self, token, files).await
    }

    async fn upload_resumable(
        &self,
        token: &str,
        hash: &str,
        data: &[u8],
        chunk: usize,
    ) -> Result<usize, SyncError> {
        SyncClient::upload_resumable(self, token, hash, data, chunk).await
    }

    async fn document_index(&self, token: &str) -> Result<DocumentIndex, SyncError> {
        SyncClient::document_index(self, token).await
    }

    async fn document_range(
        &self,
        token: &str,
        id: &str,
        sha256: &str,
        range: (u64, u64),
    ) -> Result<Vec<u8>, SyncError> {
        SyncClient::document_range(self, token, id, sha256, range).await
    }

    fn report_unsent(&self, report: &UnsentReport) {
        SyncClient::report_unsent(self, report)
    }
}
