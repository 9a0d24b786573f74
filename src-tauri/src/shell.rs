//! The shell's state: the data directory, the open `Outpost` (none before first run or
//! while a passphrase is needed), and what the desktop offers (tray or not).
//!
//! Every command goes through [`Shell::with`], which locks, calls one `core` method and
//! maps its error to the UI's `AppError`. The database key and the passphrase pass
//! through here into `core` and are never returned, logged or stored.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use outpost_core::app::{EngineStatusView, SignInInput};
use outpost_core::first_run::DEMO_ORDERS;
use outpost_core::updates::{AppInfoView, UpdateChannel};
use outpost_core::views::{AppError, SessionInfo};
use outpost_core::{ClientOptions, CoreError, EngineConfig, EngineHandle, OpenOptions, Outpost};
use tauri::AppHandle;

use outpost_core::desktop::instance::InstanceLock;

/// The data directory: `OUTPOST_DATA_DIR`, else the platform's (the CLI's rule too).
pub fn data_dir() -> Result<PathBuf, String> {
    outpost_core::rules::data_dir(None).map_err(|e| e.to_string())
}

#[derive(Debug)]
pub struct Shell {
    data_dir: PathBuf,
    outpost: Mutex<Option<Outpost>>,
    /// The background sync task, while signed in.
    engine: Mutex<Option<EngineHandle>>,
    open_error: Mutex<Option<AppError>>,
    tray: AtomicBool,
    started: Instant,
    ui_ready: AtomicBool,
    log_file: Option<PathBuf>,
    _lock: InstanceLock,
}

impl Shell {
    /// Open the data directory if it holds a database; remember why not if it fails
    /// (a passphrase to ask for, a wrong key), so the first screen can say so.
    pub fn start(
        data_dir: PathBuf,
        log_file: Option<PathBuf>,
        lock: InstanceLock,
        started: Instant,
    ) -> Shell {
        let (outpost, open_error) = if Outpost::is_initialized(&data_dir) {
            match Outpost::open(OpenOptions::new(&data_dir)) {
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
        Shell {
            data_dir,
            outpost: Mutex::new(outpost),
            engine: Mutex::new(None),
            open_error: Mutex::new(open_error),
            tray: AtomicBool::new(false),
            started,
            ui_ready: AtomicBool::new(false),
            log_file,
            _lock: lock,
        }
    }

    pub fn set_tray(&self, has_tray: bool) {
        self.tray.store(has_tray, Ordering::SeqCst);
    }

    pub fn has_tray(&self) -> bool {
        self.tray.load(Ordering::SeqCst)
    }

    /// Run `f` on the open data directory.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Outpost) -> Result<T, CoreError>,
    ) -> Result<T, AppError> {
        let mut guard = self.outpost.lock().map_err(|_| {
            AppError::new(
                "internal",
                "an earlier action failed badly: restart Outpost",
            )
        })?;
        let o = guard.as_mut().ok_or_else(|| {
            AppError::new(
                "not_open",
                "no database is open yet: finish the first-run screen",
            )
        })?;
        f(o).map_err(AppError::from)
    }

    /// Replace the open data directory with the one `open` makes (first run, unlock).
    pub fn open_with(
        &self,
        open: impl FnOnce(OpenOptions) -> Result<Outpost, CoreError>,
    ) -> Result<SessionInfo, AppError> {
        let o = open(OpenOptions::new(&self.data_dir)).map_err(|e| {
            // E.g. no credential store without a session bus: the UI then asks for a
            // passphrase. The message never holds a secret.
            tracing::warn!(code = e.code(), "cannot open the data directory: {e}");
            AppError::from(e)
        })?;
        tracing::info!(
            key_source = o.key_info().key_source.describe(),
            "database opened"
        );
        if let Ok(mut g) = self.outpost.lock() {
            *g = Some(o);
        }
        if let Ok(mut e) = self.open_error.lock() {
            *e = None;
        }
        Ok(self.session_info())
    }

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
            open_error: self.open_error.lock().ok().and_then(|e| e.clone()),
            tray: self.has_tray(),
            default_server_url: std::env::var("OUTPOST_SERVER_URL")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }

    /// The About box: the version, where the data and the log are, the update channel.
    pub fn app_info(&self) -> AppInfoView {
        AppInfoView {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            data_dir: self.data_dir.display().to_string(),
            log_file: self.log_file.as_ref().map(|p| p.display().to_string()),
            update_channel: self.with(|o| o.update_channel()).ok(),
            channels: UpdateChannel::ALL.to_vec(),
        }
    }

    /// How many orders "work offline with a local demo" loads: `OUTPOST_DEMO_ORDERS`
    /// (benchmarks ask for 10,000), else the small demo.
    pub fn demo_orders(&self) -> usize {
        std::env::var("OUTPOST_DEMO_ORDERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEMO_ORDERS)
    }

    /// Log `ui-ready` once, when the UI says its first screen has rendered.
    pub fn ui_ready(&self, screen: &str) {
        let screen: String = screen.chars().take(32).collect();
        if !self.ui_ready.swap(true, Ordering::SeqCst) {
            let ms = self.started.elapsed().as_millis();
            tracing::info!(screen = %screen, elapsed_ms = ms as u64, "ui-ready");
        }
    }

    /// Sign in: on first run the form's fields are checked and the data directory is
    /// made first; then the server is asked. The `Outpost` is taken out of the lock
    /// while the request runs (other commands answer "not open" meanwhile) and always
    /// put back, signed in or not.
    pub async fn sign_in(
        &self,
        app: &AppHandle,
        input: SignInInput,
    ) -> Result<SessionInfo, AppError> {
        let taken = self.outpost.lock().ok().and_then(|mut g| g.take());
        let mut o = match taken {
            Some(o) => o,
            None if Outpost::is_initialized(&self.data_dir) => {
                return Err(AppError::new("not_open", "unlock this device's data first"))
            }
            None => Outpost::init_for_sign_in(OpenOptions::new(&self.data_dir), &input).map_err(
                |e| {
                    tracing::warn!(
                        code = e.code(),
                        "first run: cannot make the data directory: {e}"
                    );
                    AppError::from(e)
                },
            )?,
        };
        let result = o.sign_in(&input, &ClientOptions::default()).await;
        if let Ok(mut g) = self.outpost.lock() {
            *g = Some(o);
        }
        if let Ok(mut e) = self.open_error.lock() {
            *e = None;
        }
        match result {
            Ok(info) => {
                tracing::info!(user = %info.username, server = %info.server_url, "signed in");
                self.start_engine(app);
                Ok(self.session_info())
            }
            Err(e) => {
                tracing::warn!(code = e.code(), "sign-in failed: {e}");
                Err(AppError::from(e))
            }
        }
    }

    /// Sign out, refused while work is unsynced (the UI then lists it). The engine
    /// stops first so that no pass runs on a session being removed; it starts again if
    /// sign-out is refused.
    pub async fn sign_out(&self, app: &AppHandle) -> Result<SessionInfo, AppError> {
        self.with(|o| {
            let n = o.pending_changes()?.len();
            if n > 0 {
                return Err(CoreError::UnsyncedWork(n));
            }
            Ok(())
        })?;
        let engine = self.engine.lock().ok().and_then(|mut g| g.take());
        if let Some(e) = engine {
            e.stop(std::time::Duration::from_secs(5)).await;
        }
        match self.with(|o| o.sign_out()) {
            Ok(()) => {
                tracing::info!("signed out");
                Ok(self.session_info())
            }
            Err(e) => {
                self.start_engine(app);
                Err(e)
            }
        }
    }

    /// Start the background sync task if signed in and not running; its status
    /// reaches the UI as `sync-status` events (and `orders-changed` after each pass
    /// that may have changed orders, and a notification for new failures).
    pub fn start_engine(&self, app: &AppHandle) {
        let Ok(mut slot) = self.engine.lock() else {
            return;
        };
        if slot.is_some() {
            return;
        }
        let started = self.with(|o| {
            if o.session()?.is_none() {
                return Ok(None);
            }
            // The engine spawns onto Tauri's tokio runtime.
            let rt = tauri::async_runtime::handle();
            let _enter = rt.inner().enter();
            o.start_engine(engine_config()).map(Some)
        });
        match started {
            Ok(Some(handle)) => {
                let rx = handle.subscribe();
                *slot = Some(handle);
                tauri::async_runtime::spawn(crate::events::forward_status(app.clone(), rx));
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
    pub fn local_write(&self, app: &AppHandle) {
        if let Some(e) = self.engine.lock().ok().as_ref().and_then(|g| g.as_ref()) {
            e.local_write();
        }
        if let Ok(v) = self.sync_status() {
            if let Err(e) = crate::events::SYNC_STATUS.emit(app, &v) {
                tracing::warn!("cannot emit sync status: {e}");
            }
        }
    }
}

/// The engine's timers: the defaults, unless `OUTPOST_SYNC_PERIOD_MS` or
/// `OUTPOST_PROBE_MAX_MS` say otherwise (tests and administrators on slow links).
fn engine_config() -> EngineConfig {
    let mut c = EngineConfig::default();
    let ms = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v >= 100)
    };
    if let Some(v) = ms("OUTPOST_SYNC_PERIOD_MS") {
        c.timing.periodic_ms = v;
    }
    if let Some(v) = ms("OUTPOST_PROBE_MAX_MS") {
        c.timing.probe_backoff_max_ms = v;
        c.timing.probe_backoff_min_ms = c.timing.probe_backoff_min_ms.min(v);
    }
    c
}
