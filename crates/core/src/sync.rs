//! Sign-in and sync use cases: what the shell's "Sign in", "Sync now" and status line,
//! and the CLI's `login`, `sync` and `status`, call.
//!
//! Tokens are kept inside the encrypted database (so a machine without a credential
//! store signs in like any other). One process syncs a data directory at a time: the
//! engine and `sync_once` both take the directory's lock.

use chrono::{DateTime, Utc};
use outpost_protocol::wire::{LoginRequest, TokenResponse};
use outpost_protocol::Role;
use outpost_store::{Session, SyncCounts};
use outpost_sync::{
    run_pass, ClientOptions, Connectivity, EngineConfig, EngineHandle, PassOptions, PassReport,
    Progress, SyncClient, SyncError, SyncLock,
};
use serde::Serialize;

use crate::{CoreError, Outpost};

/// Who is signed in, without the tokens.
#[derive(Debug, Clone, Serialize)]
pub struct LoginInfo {
    pub server_url: String,
    pub username: String,
    pub role: Role,
    pub device_id: uuid::Uuid,
    /// Seconds the device's clock is ahead of the server's (negative: behind).
    pub clock_skew_secs: i64,
}

/// What `outpost status` and the app's sync indicator show.
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub connectivity: String,
    pub pending: usize,
    pub failed: usize,
    pub conflicts: usize,
    /// Pulled changes of a kind this version does not know, skipped (update Outpost).
    pub skipped: usize,
    pub last_sync: Option<DateTime<Utc>>,
    pub signed_in_as: Option<String>,
    pub role: Option<Role>,
    pub server: Option<String>,
    pub reason: Option<String>,
}

impl From<SyncError> for CoreError {
    fn from(e: SyncError) -> Self {
        CoreError::Sync(e)
    }
}

/// A sign-in checked against this device and ready to be sent: [`LoginAttempt::send`]
/// needs no database, so the app's other commands go on while the server is asked.
/// From [`Outpost::prepare_login`]; the answer goes to [`Outpost::finish_login`].
#[derive(Debug)]
pub struct LoginAttempt {
    client: SyncClient,
    request: LoginRequest,
}

/// The server's answer to a [`LoginAttempt`], to be stored by [`Outpost::finish_login`].
#[derive(Debug)]
pub struct LoginAnswer {
    server_url: String,
    /// The user name as asked for (the rule about another user's unsynced work
    /// compares it).
    asked_as: String,
    tokens: TokenResponse,
}

impl LoginAttempt {
    /// Ask the server.
    pub async fn send(self) -> Result<LoginAnswer, CoreError> {
        let tokens = self.client.login(&self.request).await?;
        Ok(LoginAnswer {
            server_url: self.client.base_url().to_owned(),
            asked_as: self.request.username,
            tokens,
        })
    }
}

impl Outpost {
    /// Sign in to a server; the session is stored inside the encrypted database.
    pub async fn login(
        &mut self,
        server_url: &str,
        username: &str,
        password: &str,
        client: &ClientOptions,
    ) -> Result<LoginInfo, CoreError> {
        let answer = self
            .prepare_login(server_url, username, password, client)?
            .send()
            .await?;
        self.finish_login(answer)
    }

    /// Check a sign-in against this device (a user name; no other user's unsynced
    /// work here) and make its request.
    pub fn prepare_login(
        &self,
        server_url: &str,
        username: &str,
        password: &str,
        client: &ClientOptions,
    ) -> Result<LoginAttempt, CoreError> {
        let username = username.trim();
        if username.is_empty() {
            return Err(CoreError::BadInput(
                "the user name must not be empty".into(),
            ));
        }
        self.check_no_other_users_work(username)?;
        Ok(LoginAttempt {
            client: SyncClient::new(server_url, client)?,
            request: LoginRequest {
                username: username.to_owned(),
                password: password.to_owned(),
                device_id: self.device_id,
            },
        })
    }

    /// Store the session the server granted, after checking the device again (work
    /// may have been saved while the request was on its way).
    pub fn finish_login(&mut self, answer: LoginAnswer) -> Result<LoginInfo, CoreError> {
        self.check_no_other_users_work(&answer.asked_as)?;
        let t = answer.tokens;
        if t.device_id != self.device_id {
            return Err(CoreError::Sync(SyncError::BadAnswer(
                "the server signed in another device".into(),
            )));
        }
        let session = Session {
            server_url: answer.server_url,
            username: t.username.clone(),
            role: t.role,
            device_id: self.device_id,
            access_token: t.access_token,
            access_expires_at: t.access_expires_at,
            refresh_token: t.refresh_token,
            refresh_expires_at: t.refresh_expires_at,
            needs_sign_in: None,
        };
        self.store.set_session(&session)?;
        self.set_username(&t.username)?;
        Ok(LoginInfo {
            server_url: session.server_url,
            username: t.username,
            role: t.role,
            device_id: self.device_id,
            clock_skew_secs: (self.clock.now() - t.server_time).num_seconds(),
        })
    }

    /// Refused while another user's changes wait on this device.
    fn check_no_other_users_work(&self, username: &str) -> Result<(), CoreError> {
        if let Some(existing) = self.store.session()? {
            let unsynced = self.store.outbox_len()?;
            if existing.username != username && unsynced > 0 {
                return Err(CoreError::BadInput(format!(
                    "this device holds {unsynced} unsynced change(s) of {}: sync them (or have a dispatcher resolve them) before another user signs in",
                    existing.username
                )));
            }
        }
        Ok(())
    }

    pub fn session(&self) -> Result<Option<LoginInfo>, CoreError> {
        Ok(self.store.session()?.map(|s| LoginInfo {
            server_url: s.server_url,
            username: s.username,
            role: s.role,
            device_id: s.device_id,
            clock_skew_secs: 0,
        }))
    }

    pub fn sync_counts(&self) -> Result<SyncCounts, CoreError> {
        Ok(self.store.sync_counts()?)
    }

    /// One full pass now (push, then pull), ignoring any backoff: the CLI's `sync` and
    /// the app's "Sync now" when no engine runs.
    pub async fn sync_once(
        &mut self,
        client: &ClientOptions,
        pass: PassOptions,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<PassReport, CoreError> {
        let _lock = SyncLock::acquire(&self.data_dir)?;
        let session = self.store.session()?.ok_or(SyncError::NotSignedIn)?;
        let c = SyncClient::new(&session.server_url, client)?;
        let clock = self.clock.clone();
        let now = move || clock.now();
        Ok(run_pass(&mut self.store, &c, &now, &pass, progress).await?)
    }

    /// Fetch an attachment from the server (verified against its hash).
    pub async fn download_attachment(
        &mut self,
        hash: &str,
        client: &ClientOptions,
    ) -> Result<Vec<u8>, CoreError> {
        let session = self.store.session()?.ok_or(SyncError::NotSignedIn)?;
        let c = SyncClient::new(&session.server_url, client)?;
        let now = self.clock.now();
        Ok(outpost_sync::fetch_attachment(&mut self.store, &c, now, hash).await?)
    }

    /// Start the background engine on its own connection. Must be called inside a
    /// tokio runtime; fails with a clear message if another process syncs this data
    /// directory.
    pub fn start_engine(&self, config: EngineConfig) -> Result<EngineHandle, CoreError> {
        let lock = SyncLock::acquire(&self.data_dir)?;
        let store = self.connect()?;
        Ok(outpost_sync::spawn(
            store,
            lock,
            config,
            self.clock.clone(),
        )?)
    }

    /// The status line, probing the server's health when signed in.
    pub async fn status(&self, client: &ClientOptions) -> Result<StatusView, CoreError> {
        let counts = self.store.sync_counts()?;
        let session = self.store.session()?;
        let (connectivity, reason) = match &session {
            None => ("not_signed_in".to_owned(), None),
            Some(s) if s.needs_sign_in.is_some() => {
                ("sign_in_required".to_owned(), s.needs_sign_in.clone())
            }
            Some(s) => match SyncClient::new(&s.server_url, client) {
                Ok(c) => match c.health().await {
                    Ok(_) => ("online".to_owned(), None),
                    Err(e) => ("offline".to_owned(), Some(e.to_string())),
                },
                Err(e) => ("error".to_owned(), Some(e.to_string())),
            },
        };
        Ok(StatusView {
            connectivity,
            pending: counts.pending,
            failed: counts.failed,
            conflicts: counts.conflicts,
            skipped: counts.skipped,
            last_sync: self.store.last_sync_at()?,
            signed_in_as: session.as_ref().map(|s| s.username.clone()),
            role: session.as_ref().map(|s| s.role),
            server: session.as_ref().map(|s| s.server_url.clone()),
            reason,
        })
    }
}

/// The connectivity names used in status output.
pub fn connectivity_name(c: &Connectivity) -> &'static str {
    match c {
        Connectivity::Offline => "offline",
        Connectivity::Online => "online",
        Connectivity::Syncing => "syncing",
        Connectivity::Error(_) => "error",
        Connectivity::SignInRequired(_) => "sign_in_required",
    }
}
