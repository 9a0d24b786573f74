//! Access tokens: refreshed before they expire, and once more when the server refuses
//! one.
//!
//! [`access_token`] hands out the session's token, refreshing it first when it is
//! about to expire (or when asked to), and marks the session "sign in again" when the
//! server says the refresh token will never work again. [`authed!`] wraps one request:
//! on a 401 it refreshes once and retries once; a second 401 means signing in again.
//! Signing in itself (user name and password) is not here: that is `outpost-core`.

use chrono::{DateTime, Utc};
use outpost_protocol::wire::RefreshRequest;
use outpost_store::{Session, Store};

use crate::error::SyncError;
use crate::transport::Transport;

/// A valid access token, refreshed (once, here: the engine is the only user of the
/// session in this process) when it is about to expire or `force` says so.
pub(crate) async fn access_token(
    store: &mut Store,
    client: &impl Transport,
    now: DateTime<Utc>,
    force: bool,
) -> Result<String, SyncError> {
    let session = store.session()?.ok_or(SyncError::NotSignedIn)?;
    if let Some(reason) = &session.needs_sign_in {
        return Err(SyncError::SignInRequired(reason.clone()));
    }
    let fresh = session.access_expires_at > now + chrono::Duration::seconds(30);
    if fresh && !force {
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
            let mut marked = session;
            marked.needs_sign_in = Some(reason.clone());
            store.set_session(&marked)?;
            Err(SyncError::SignInRequired(reason))
        }
        Err(e) => Err(e),
    }
}

/// Run `$call` with a token; on `Unauthorized`, refresh once and run it again. Counts
/// each request in `$report.requests`.
macro_rules! authed {
    ($store:expr, $client:expr, $now:expr, $report:expr, |$tok:ident| $call:expr) => {{
        let $tok = $crate::auth::access_token($store, $client, $now, false).await?;
        $report.requests += 1;
        match $call.await {
            Err($crate::error::SyncError::Unauthorized(_)) => {
                let $tok = $crate::auth::access_token($store, $client, $now, true).await?;
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
    use std::collections::{HashMap, HashSet};
    use std::future::Future;
    use std::pin::{pin, Pin};
    use std::sync::Mutex;
    use std::task::Poll;

    use outpost_protocol::wire::{BatchUploadResponse, PullRequest, PullResponse, PushResponse};
    use outpost_protocol::Role;
    use outpost_store::{random_bytes, DbKey};
    use outpost_protocol::wire::TokenResponse;
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
    }

    fn not_here<T>() -> Result<T, SyncError> {
        Err(SyncError::BadAnswer("not served in this test".into()))
    }

    impl Transport for RotatingServer {
        async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, SyncError> {
            let (first, answer) = {
                let mut s = self.state.lock().unwrap();
                s.arrived += 1;
                let token = &req.refresh_token;
                if !s.accepts(token) {
                    return Err(SyncError::SignInRequired(
                        "this sign-in was revoked; sign in again".into(),
                    ));
                }
                if let Some(successor) = s.replaced.get(token).cloned() {
                    s.revoked.insert(successor);
                }
                s.issued += 1;
                let new = format!("refresh-{}", s.issued);
                s.replaced.insert(token.clone(), new.clone());
                s.current = new.clone();
                let now = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
                let answer = TokenResponse {
                    access_token: format!("access-{}", s.issued),
                    access_expires_at: now + chrono::Duration::hours(1),
                    refresh_token: new,
                    refresh_expires_at: now + chrono::Duration::days(30),
                    username: "tech1".into(),
                    role: Role::Technician,
                    device_id: req.device_id,
                    server_time: now,
                };
                (s.arrived == 1, answer)
            };
            if first {
                self.first_answer.acquire().await.unwrap().forget();
            }
            Ok(answer)
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
        let now = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let server = RotatingServer::new("refresh-0");
        let dir = tempfile::tempdir().unwrap();
        let key = random_bytes::<32>().unwrap();
        let mut engine_store = Store::create(dir.path(), &DbKey::from_bytes(key)).unwrap();
        let device_id = engine_store.device_id(now).unwrap();
        engine_store
            .set_session(&Session {
                server_url: "http://127.0.0.1:9".into(),
                username: "tech1".into(),
                role: Role::Technician,
                device_id,
                access_token: "access-0".into(),
                access_expires_at: now,
                refresh_token: "refresh-0".into(),
                refresh_expires_at: now + chrono::Duration::days(30),
                needs_sign_in: None,
            })
            .unwrap();
        // The app's own connection, as `download_attachment` uses it.
        let mut app_store = Store::open(dir.path(), &DbKey::from_bytes(key)).unwrap();

        let (engine_token, download_token) = {
            let mut engine = pin!(access_token(&mut engine_store, &server, now, false));
            assert!(poll_once(&mut engine).await.is_pending());
            assert_eq!(server.arrived(), 1, "the engine's refresh is on its way");
            let mut download = pin!(access_token(&mut app_store, &server, now, false));
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
}
