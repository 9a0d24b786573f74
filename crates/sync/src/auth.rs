//! Access tokens: refreshed before they expire, and once more when the server refuses
//! one.
//!
//! [`access_token`] hands out the session's token, refreshing it first when it is
//! about to expire (or when the server refused it), and marks the session "sign in
//! again" when the server says the refresh token will never work again. [`authed!`]
//! wraps one request: on a 401 it gets a new token once and retries once; a second 401
//! means signing in again. Signing in itself (user name and password) is not here: that
//! is `outpost-core`.
//!
//! Refreshes never race. The server rotates the refresh token: each works once, the
//! previous one again only within a short grace period (a lost reply), and using it
//! then supersedes the successor. Two refreshes with the same token at once would leave
//! whichever answer is stored last, possibly the superseded one, and the device's next
//! refresh would sign it out. So every token is handed out under one guard per device
//! in this process ([`refresh_guard`]), whoever asks (the engine's passes, `outpost
//! sync`, a download for the app), and the session is read again under it: a caller
//! that waited takes the token the first one stored. Across processes the data
//! directory's sync lock keeps a second syncer out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use chrono::{DateTime, Utc};
use outpost_protocol::wire::RefreshRequest;
use outpost_store::{Session, Store};
use uuid::Uuid;

use crate::error::SyncError;
use crate::transport::Transport;

/// Tokens are renewed this long before they expire.
const RENEW_BEFORE_SECS: i64 = 30;

/// The refresh guard of `device` in this process (one per device, made on first use).
fn refresh_guard(device: Uuid) -> Arc<tokio::sync::Mutex<()>> {
    static GUARDS: OnceLock<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut guards = GUARDS
        .get_or_init(Mutex::default)
        .lock()
        // The map only ever gains entries: a panic elsewhere leaves it whole.
        .unwrap_or_else(PoisonError::into_inner);
    guards.entry(device).or_default().clone()
}

/// A valid access token, under the device's refresh guard: the stored one while it is
/// fresh, else a refreshed one. `refused`: the token the server just refused; the
/// stored token is taken if another caller has replaced that one meanwhile, else it is
/// refreshed.
pub(crate) async fn access_token(
    store: &mut Store,
    client: &impl Transport,
    now: DateTime<Utc>,
    refused: Option<&str>,
) -> Result<String, SyncError> {
    let device = store.session()?.ok_or(SyncError::NotSignedIn)?.device_id;
    let guard = refresh_guard(device);
    let _held = guard.lock().await;
    // Read again under the guard: whoever held it may have stored new tokens.
    let session = store.session()?.ok_or(SyncError::NotSignedIn)?;
    if let Some(reason) = &session.needs_sign_in {
        return Err(SyncError::SignInRequired(reason.clone()));
    }
    let usable = match refused {
        None => session.access_expires_at > now + chrono::Duration::seconds(RENEW_BEFORE_SECS),
        Some(refused) => session.access_token != refused,
    };
    if usable {
        return Ok(session.access_token);
    }
    let req = RefreshRequest {
        refresh_token: session.refresh_token.clone(),
        device_id: session.device_id,
    };
    match client.refresh(&req).await {
        Ok(t) => {
            let updated = Session {
                access_token: t.access_token.clone(),
                access_expires_at: t.access_expires_at,
                refresh_token: t.refresh_token,
                refresh_expires_at: t.refresh_expires_at,
                ..session
            };
            store.set_session(&updated)?;
            Ok(t.access_token)
        }
        Err(SyncError::SignInRequired(reason)) | Err(SyncError::Unauthorized(reason)) => {
            // Mark the session that was refused, not one a sign-in stored meanwhile
            // (signing in does not wait for this guard): that one is used instead.
            match store.session()? {
                Some(now_stored) if now_stored.refresh_token != session.refresh_token => {
                    match now_stored.needs_sign_in {
                        Some(r) => Err(SyncError::SignInRequired(r)),
                        None => Ok(now_stored.access_token),
                    }
                }
                _ => {
                    let mut marked = session;
                    marked.needs_sign_in = Some(reason.clone());
                    store.set_session(&marked)?;
                    Err(SyncError::SignInRequired(reason))
                }
            }
        }
        Err(e) => Err(e),
    }
}

/// Run `$call` with a token; on `Unauthorized`, get a new one once (refreshed, or the
/// one another caller stored since) and run it again. Counts each request in
/// `$report.requests`.
macro_rules! authed {
    ($store:expr, $client:expr, $now:expr, $report:expr, |$tok:ident| $call:expr) => {{
        let $tok = $crate::auth::access_token($store, $client, $now, None).await?;
        $report.requests += 1;
        match $call.await {
            Err($crate::error::SyncError::Unauthorized(_)) => {
                let $tok = $crate::auth::access_token($store, $client, $now, Some(&$tok)).await?;
                $report.requests += 1;
                match $call.await {
                    Err($crate::error::SyncError::Unauthorized(reason)) => {
                        Err($crate::error::SyncError::SignInRequired(reason))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }};
}
pub(crate) use authed;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashSet;
    use std::future::Future;
    use std::pin::{pin, Pin};
    use std::task::Poll;

    use outpost_protocol::wire::{
        BatchUploadResponse, PullRequest, PullResponse, PushResponse, TokenResponse,
    };
    use outpost_protocol::Role;
    use outpost_store::{random_bytes, DbKey};
    use tokio::sync::Semaphore;

    use super::*;

    /// The server's refresh rule (`crates/server/src/auth.rs`): each refresh token
    /// works once; the previous one again within the grace period (a lost reply), which
    /// supersedes the successor issued for it. Nothing else is served. The answer to
    /// the first refresh waits until the test releases it: a slow link.
    struct RotatingServer {
        state: Mutex<Rotation>,
        first_answer: Semaphore,
    }

    #[derive(Default)]
    struct Rotation {
        current: String,
        /// Old token -> the successor issued for it.
        replaced: HashMap<String, String>,
        revoked: HashSet<String>,
        issued: usize,
        arrived: usize,
    }

    impl RotatingServer {
        fn new(first: &str) -> RotatingServer {
            RotatingServer {
                state: Mutex::new(Rotation {
                    current: first.into(),
                    ..Rotation::default()
                }),
                first_answer: Semaphore::new(0),
            }
        }

        fn arrived(&self) -> usize {
            self.state.lock().unwrap().arrived
        }

        fn issued(&self) -> usize {
            self.state.lock().unwrap().issued
        }

        /// Whether a refresh with `token` would be accepted now.
        fn accepts(&self, token: &str) -> bool {
            self.state.lock().unwrap().accepts(token)
        }
    }

    impl Rotation {
        fn accepts(&self, token: &str) -> bool {
            !self.revoked.contains(token)
                && (self.current == token || self.replaced.contains_key(token))
        }

        fn refresh(&mut self, req: &RefreshRequest) -> Result<TokenResponse, SyncError> {
            let token = &req.refresh_token;
            if !self.accepts(token) {
                return Err(SyncError::SignInRequired(
                    "this sign-in was revoked; sign in again".into(),
                ));
            }
            if let Some(successor) = self.replaced.get(token).cloned() {
                self.revoked.insert(successor);
            }
            self.issued += 1;
            let new = format!("refresh-{}", self.issued);
            self.replaced.insert(token.clone(), new.clone());
            self.current = new.clone();
            Ok(TokenResponse {
                access_token: format!("access-{}", self.issued),
                access_expires_at: now() + chrono::Duration::hours(1),
                refresh_token: new,
                refresh_expires_at: now() + chrono::Duration::days(30),
                username: "tech1".into(),
                role: Role::Technician,
                device_id: req.device_id,
                server_time: now(),
            })
        }
    }

    /// The tests' fixed time.
    fn now() -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + chrono::Duration::days(20_000)
    }

    /// A signed-in data directory whose access token `access` expires at
    /// `access_expires_at`, with the refresh token `refresh`; its key to open it again.
    fn signed_in(
        access: &str,
        access_expires_at: DateTime<Utc>,
        refresh: &str,
    ) -> (tempfile::TempDir, [u8; 32], Store) {
        let dir = tempfile::tempdir().unwrap();
        let key = random_bytes::<32>().unwrap();
        let mut store = Store::create(dir.path(), &DbKey::from_bytes(key)).unwrap();
        let device_id = store.device_id(now()).unwrap();
        store
            .set_session(&Session {
                server_url: "http://127.0.0.1:9".into(),
                username: "tech1".into(),
                role: Role::Technician,
                device_id,
                access_token: access.into(),
                access_expires_at,
                refresh_token: refresh.into(),
                refresh_expires_at: now() + chrono::Duration::days(30),
                needs_sign_in: None,
            })
            .unwrap();
        (dir, key, store)
    }

    fn not_here<T>() -> Result<T, SyncError> {
        Err(SyncError::BadAnswer("not served in this test".into()))
    }

    impl Transport for RotatingServer {
        async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, SyncError> {
            let (first, answer) = {
                let mut s = self.state.lock().unwrap();
                s.arrived += 1;
                (s.arrived == 1, s.refresh(req))
            };
            if first {
                self.first_answer.acquire().await.unwrap().forget();
            }
            answer
        }

        async fn push(&self, _: &str, _: &[&str]) -> Result<(PushResponse, usize), SyncError> {
            not_here()
        }

        async fn pull(&self, _: &str, _: &PullRequest) -> Result<(PullResponse, usize), SyncError> {
            not_here()
        }

        async fn download(&self, _: &str, _: &str) -> Result<Vec<u8>, SyncError> {
            not_here()
        }

        async fn upload_batch(
            &self,
            _: &str,
            _: &[(String, Vec<u8>)],
        ) -> Result<BatchUploadResponse, SyncError> {
            not_here()
        }

        async fn upload_resumable(
            &self,
            _: &str,
            _: &str,
            _: &[u8],
            _: usize,
        ) -> Result<usize, SyncError> {
            not_here()
        }
    }

    /// Poll `f` once: whether it finished, without waiting for it.
    async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
    }

    #[tokio::test]
    async fn the_engine_and_a_download_needing_a_fresh_token_at_once_refresh_it_once() {
        let now = now();
        let server = RotatingServer::new("refresh-0");
        let (dir, key, mut engine_store) = signed_in("access-0", now, "refresh-0");
        // The app's own connection, as `download_attachment` uses it.
        let mut app_store = Store::open(dir.path(), &DbKey::from_bytes(key)).unwrap();

        let (engine_token, download_token) = {
            let mut engine = pin!(access_token(&mut engine_store, &server, now, None));
            assert!(poll_once(&mut engine).await.is_pending());
            assert_eq!(server.arrived(), 1, "the engine's refresh is on its way");
            let mut download = pin!(access_token(&mut app_store, &server, now, None));
            let early = poll_once(&mut download).await;
            server.first_answer.add_permits(1);
            let engine_token = engine.await.unwrap();
            match early {
                Poll::Ready(t) => (engine_token, t.unwrap()),
                Poll::Pending => (engine_token, download.await.unwrap()),
            }
        };

        let stored = engine_store.session().unwrap().unwrap();
        assert!(
            server.accepts(&stored.refresh_token),
            "the stored refresh token ({}) was superseded: the next refresh signs the device out",
            stored.refresh_token
        );
        assert_eq!(server.issued(), 1, "one refresh serves both");
        assert_eq!(download_token, engine_token);
    }

    #[tokio::test]
    async fn after_a_401_the_token_another_caller_stored_since_is_taken_without_a_refresh() {
        let server = RotatingServer::new("refresh-0");
        let (_dir, _key, mut store) = signed_in(
            "access-new",
            now() + chrono::Duration::hours(1),
            "refresh-0",
        );

        let token = access_token(&mut store, &server, now(), Some("access-old"))
            .await
            .unwrap();
        assert_eq!(token, "access-new");
        assert_eq!(
            server.arrived(),
            0,
            "no refresh: the refused token was replaced"
        );

        server.first_answer.add_permits(1);
        let token = access_token(&mut store, &server, now(), Some("access-new"))
            .await
            .unwrap();
        assert_eq!(
            token, "access-1",
            "the stored token itself was refused: refreshed"
        );
        assert_eq!(server.issued(), 1);
    }

    #[tokio::test]
    async fn a_refused_refresh_does_not_mark_a_sign_in_stored_meanwhile() {
        // The refresh token was revoked on the server; while the refused refresh is on
        // its way, the person signs in again (the app's connection stores a session).
        let server = RotatingServer::new("refresh-other");
        let (dir, key, mut engine_store) = signed_in("access-0", now(), "refresh-revoked");
        let mut app_store = Store::open(dir.path(), &DbKey::from_bytes(key)).unwrap();

        let token = {
            let mut engine = pin!(access_token(&mut engine_store, &server, now(), None));
            assert!(poll_once(&mut engine).await.is_pending());
            assert_eq!(server.arrived(), 1, "the refresh is on its way");
            let mut signed_in_again = app_store.session().unwrap().unwrap();
            signed_in_again.access_token = "access-signin".into();
            signed_in_again.access_expires_at = now() + chrono::Duration::hours(1);
            signed_in_again.refresh_token = "refresh-signin".into();
            app_store.set_session(&signed_in_again).unwrap();
            server.first_answer.add_permits(1);
            engine.await
        };

        let stored = app_store.session().unwrap().unwrap();
        assert_eq!(
            stored.needs_sign_in, None,
            "the new sign-in stays signed in"
        );
        assert_eq!(stored.refresh_token, "refresh-signin");
        assert_eq!(token.unwrap(), "access-signin");
    }
}
