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
