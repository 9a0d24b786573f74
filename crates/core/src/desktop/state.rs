//! The desktop app's state: the data directory, the open [`Outpost`] (none before first
//! run or while a passphrase is needed), and the background sync engine while signed
//! in, with sign-in and sign-out orchestrated over them. Here rather than in the shell
//! so that tests drive it without a window; the shell's commands call one method each.
//!
//! Every use of the open data directory goes through [`DesktopState::with`], which
//! locks, calls one `core` method and maps its error to the UI's [`AppError`]; nothing
//! holds that lock across a network request (a sign-in's request is sent between two
//! short uses), so no command waits for the server. The
//! engine needs a tokio runtime: the methods that may start one
//! ([`DesktopState::start_engine`], [`DesktopState::sign_in`],
//! [`DesktopState::sign_out`]) must run inside one. Whenever an engine starts, the
//! listener set with [`DesktopState::on_engine_started`] gets its status channel (the
//! shell forwards it to the window). The database key and the passphrase pass through
//! here into `core` and are never returned, logged or stored.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::app::{EngineStatusView, SignInInput};
use crate::views::{AppError, SessionInfo};
use crate::{
    ClientOptions, CoreError, EngineConfig, EngineHandle, KeySource, OpenOptions, Outpost,
};

/// The engine's status channel, as the shell forwards it.
pub type StatusReceiver = outpost_sync::StatusReceiver;

/// How long sign-out waits for a running pass before cancelling it.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

type OpenOptionsFn = Box<dyn Fn(&Path) -> OpenOptions + Send + Sync>;
type EngineListener = Box<dyn Fn(StatusReceiver) + Send + Sync>;

/// The open data directory and its engine, shared by every command.
pub struct DesktopState {
    data_dir: PathBuf,
    open_options: OpenOptionsFn,
    client: ClientOptions,
    engine_config: EngineConfig,
    outpost: Mutex<Option<Outpost>>,
    /// The background sync task, while signed in.
    engine: Mutex<Option<EngineHandle>>,
    open_error: Mutex<Option<AppError>>,
    on_engine: Mutex<Option<EngineListener>>,
    /// A sign-in or sign-out is running.
    busy: AtomicBool,
}

/// Clears [`DesktopState`]'s busy flag when dropped, however the sign-in ends.
struct BusyGuard<'a>(&'a AtomicBool);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for DesktopState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DesktopState")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

fn poisoned() -> AppError {
    AppError::new(
        "internal",
        "an earlier action failed badly: restart Outpost",
    )
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, AppError> {
    m.lock().map_err(|_| poisoned())
}

impl DesktopState {
    /// Open `data_dir` if it holds a database (with the options `open_options` makes
    /// for it: the OS credential store and the system clock in the app); remember why
    /// not if that fails (a passphrase to ask for, a wrong key), so the first screen
    /// can say so.
    pub fn start(
        data_dir: PathBuf,
        open_options: impl Fn(&Path) -> OpenOptions + Send + Sync + 'static,
        client: ClientOptions,
        engine_config: EngineConfig,
    ) -> DesktopState {
        let (outpost, open_error) = if Outpost::is_initialized(&data_dir) {
            match Outpost::open(open_options(&data_dir)) {
                Ok(o) => {
                    tracing::info!(
                        key_source = o.key_info().key_source.describe(),
                        "database opened"
                    );
                    (Some(o), None)
                }
                Err(e) => {
                    tracing::warn!(code = e.code(), "database not opened: {e}");
                    (None, Some(AppError::from(e)))
                }
            }
        } else {
            tracing::info!("no database yet: first run");
            (None, None)
        };
        DesktopState {
            data_dir,
            open_options: Box::new(open_options),
            client,
            engine_config,
            outpost: Mutex::new(outpost),
            engine: Mutex::new(None),
            open_error: Mutex::new(open_error),
            on_engine: Mutex::new(None),
            busy: AtomicBool::new(false),
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Call `listener` with the status channel of every engine started from now on.
    pub fn on_engine_started(&self, listener: impl Fn(StatusReceiver) + Send + Sync + 'static) {
        if let Ok(mut l) = self.on_engine.lock() {
            *l = Some(Box::new(listener));
        }
    }

    /// Run `f` on the open data directory.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Outpost) -> Result<T, CoreError>,
    ) -> Result<T, AppError> {
        let mut guard = lock(&self.outpost)?;
        let o = guard.as_mut().ok_or_else(|| {
            AppError::new(
                "not_open",
                "no database is open yet: finish the first-run screen",
            )
        })?;
        f(o).map_err(AppError::from)
    }

    /// Fetch a desk item's signature and photos on a connection of their own, so the
    /// window's other commands are not held while they download.
    pub async fn fetch_desk_evidence(&self, order_id: &str) -> Result<u32, AppError> {
        let fetch = self.with(|o| o.prepare_evidence_fetch(order_id, &self.client))?;
        let n = fetch.run().await.map_err(AppError::from)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Replace the open data directory with the one `open` makes (first run, unlock).
    pub fn open_with(
        &self,
        open: impl FnOnce(OpenOptions) -> Result<Outpost, CoreError>,
    ) -> Result<SessionInfo, AppError> {
        let o = open((self.open_options)(&self.data_dir)).map_err(|e| {
            // E.g. no credential store without a session bus: the UI then asks for a
            // passphrase. The message never holds a secret.
            tracing::warn!(code = e.code(), "cannot open the data directory: {e}");
            AppError::from(e)
        })?;
        tracing::info!(
            key_source = o.key_info().key_source.describe(),
            "database opened"
        );
        *lock(&self.outpost)? = Some(o);
        *lock(&self.open_error)? = None;
        Ok(self.session_info())
    }

    /// What is open and who is signed in. `tray` and `default_server_url` are the
    /// shell's to fill in.
    pub fn session_info(&self) -> SessionInfo {
        let guard = self.outpost.lock().ok();
        let open = guard.as_ref().and_then(|g| g.as_ref());
        let session = open.and_then(|o| o.session().ok().flatten());
        SessionInfo {
            data_dir: self.data_dir.display().to_string(),
            initialized: Outpost::is_initialized(&self.data_dir),
            open: open.is_some(),
            username: open.and_then(|o| o.username().ok()),
            signed_in: session.is_some(),
            role: session.as_ref().map(|s| s.role.into()),
            server_url: session.map(|s| s.server_url),
            key_source: open.map(|o| o.key_info().key_source.describe().to_owned()),
            passphrase: open.is_some_and(|o| o.key_info().key_source == KeySource::Passphrase),
            open_error: self.open_error.lock().ok().and_then(|e| e.clone()),
            tray: false,
            default_server_url: None,
        }
    }

    /// Sign in: on first run the form's fields are checked and the data directory is
    /// made (and opened) first; then the server is asked. The database is locked only
    /// to check the device before the request and to store the session after it
    /// (checked again), so every other command keeps working while the server is asked.
    /// One sign-in or sign-out at a time: another meanwhile is refused.
    pub async fn sign_in(&self, input: SignInInput) -> Result<SessionInfo, AppError> {
        let _busy = self.busy()?;
        let attempt = {
            let mut slot = lock(&self.outpost)?;
            let o = match slot.take() {
                Some(o) => o,
                None if Outpost::is_initialized(&self.data_dir) => {
                    return Err(AppError::new("not_open", "unlock this device's data first"))
                }
                None => Outpost::init_for_sign_in((self.open_options)(&self.data_dir), &input)
                    .map_err(|e| {
                        tracing::warn!(
                            code = e.code(),
                            "first run: cannot make the data directory: {e}"
                        );
                        AppError::from(e)
                    })?,
            };
            let o = slot.insert(o);
            *lock(&self.open_error)? = None;
            o.prepare_sign_in(&input, &self.client)
        };
        let signed_in = match attempt {
            Ok(attempt) => match attempt.send().await {
                Ok(answer) => self.with(|o| o.finish_login(answer)),
                Err(e) => Err(AppError::from(e)),
            },
            Err(e) => Err(AppError::from(e)),
        };
        match signed_in {
            Ok(info) => {
                tracing::info!(user = %info.username, server = %info.server_url, "signed in");
                self.engine_after_sign_in();
                Ok(self.session_info())
            }
            Err(e) => {
                tracing::warn!(code = %e.code, "sign-in failed: {}", e.message);
                Err(e)
            }
        }
    }

    /// The fleet's sync health for the dispatcher's Fleet screen: asked of the server on
    /// a connection of its own, so the shared database is not held meanwhile.
    pub async fn fleet(&self) -> Result<crate::fleet::FleetView, AppError> {
        let request = self.with(|o| o.fleet_request())?;
        let table = request.send(&self.client, None).await?;
        Ok(crate::fleet::FleetView::from(&table))
    }

    /// Sign out, refused while work is unsynced (the UI then lists it). The engine
    /// stops first, and its task has ended (its pass finished or cancelled) before the
    /// session is removed; it starts again if sign-out is refused.
    pub async fn sign_out(&self) -> Result<SessionInfo, AppError> {
        let _busy = self.busy()?;
        self.with(|o| {
            let n = o.pending_changes()?.len();
            if n > 0 {
                return Err(CoreError::UnsyncedWork(n));
            }
            Ok(())
        })?;
        let engine = lock(&self.engine)?.take();
        if let Some(e) = engine {
            e.stop(STOP_TIMEOUT).await;
        }
        match self.with(|o| o.sign_out()) {
            Ok(()) => {
                tracing::info!("signed out");
                Ok(self.session_info())
            }
            Err(e) => {
                self.start_engine();
                Err(e)
            }
        }
    }

    /// Mark a sign-in or sign-out as running until the guard is dropped; refused while
    /// one already runs (a second click, or a sign-out during a sign-in).
    fn busy(&self) -> Result<BusyGuard<'_>, AppError> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err(AppError::new(
                "busy",
                "a sign-in or sign-out is already under way: wait for it to finish",
            ));
        }
        Ok(BusyGuard(&self.busy))
    }

    /// After a sign-in: a running engine (it may have stopped its passes on "sign in
    /// required") is told, and resumes at once; else one starts.
    fn engine_after_sign_in(&self) {
        if let Some(e) = self.engine.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            e.signed_in();
            tracing::info!("sync engine told of the new sign-in");
            return;
        }
        self.start_engine();
    }

    /// Start the background sync task if signed in and not running (inside a tokio
    /// runtime); the listener gets its status channel.
    pub fn start_engine(&self) {
        let Ok(mut slot) = self.engine.lock() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let config = self.engine_config.clone();
        let started = self.with(|o| {
            if o.session()?.is_none() {
                return Ok(None);
            }
            o.start_engine(config).map(Some)
        });
        match started {
            Ok(Some(handle)) => {
                let rx = handle.subscribe();
                *slot = Some(handle);
                if let Ok(listener) = self.on_engine.lock() {
                    if let Some(l) = listener.as_ref() {
                        l(rx);
                    }
                }
                tracing::info!("sync engine started");
            }
            // Not signed in, or nothing open yet (first run): sign-in starts it.
            Ok(None) => {}
            Err(e) if e.code == "not_open" => {}
            Err(e) => tracing::warn!(code = %e.code, "sync engine not started: {}", e.message),
        }
    }

    /// The sync indicator's state: the engine's, or the local counts without one.
    pub fn sync_status(&self) -> Result<EngineStatusView, AppError> {
        if let Some(e) = self.engine.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            let mut view = EngineStatusView::from(&e.status());
            // The engine counts at the end of a pass; a local write since shows at once.
            if let Ok(local) = self.with(|o| o.local_status()) {
                view.pending = local.pending;
            }
            return Ok(view);
        }
        self.with(|o| o.local_status())
    }

    /// "Sync now" (the button, the tray).
    pub fn sync_now(&self) -> Result<(), AppError> {
        match self.engine.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            Some(e) => {
                e.sync_now();
                Ok(())
            }
            None => Err(AppError::new(
                "not_signed_in",
                "sign in to a server to sync: your changes stay saved on this device",
            )),
        }
    }

    /// A local write happened: the engine pushes it after its debounce.
    pub fn local_write(&self) {
        if let Some(e) = self.engine.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            e.local_write();
        }
    }
}
