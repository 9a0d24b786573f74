//! The shell's state: `outpost-core`'s [`DesktopState`] (the open data directory, the
//! sync engine, sign-in and sign-out, all tested there) and what only the window knows
//! (a tray or not, the log file, when the UI first rendered).
//!
//! Every command goes through [`Shell::with`] (one `core` method, its error mapped to
//! the UI's `AppError`) or one other method here that calls `core` once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use outpost_core::app::{EngineStatusView, SignInInput};
use outpost_core::desktop::instance::InstanceLock;
use outpost_core::desktop::state::DesktopState;
use outpost_core::first_run::DEMO_ORDERS;
use outpost_core::updates::{AppInfoView, UpdateChannel};
use outpost_core::views::{AppError, SessionInfo};
use outpost_core::{ClientOptions, CoreError, EngineConfig, KeyEnv, OpenOptions, Outpost};
use tauri::AppHandle;

/// The data directory: `OUTPOST_DATA_DIR`, else the platform's (the CLI's rule too).
pub fn data_dir() -> Result<PathBuf, String> {
    outpost_core::rules::data_dir(None).map_err(|e| e.to_string())
}

#[derive(Debug)]
pub struct Shell {
    /// The open data directory, the sync engine, sign-in and sign-out (`outpost-core`).
    state: DesktopState,
    tray: AtomicBool,
    started: Instant,
    ui_ready: AtomicBool,
    log_file: Option<PathBuf>,
    _lock: InstanceLock,
}

impl Shell {
    /// Open the data directory if it holds a database; remember why not if it fails
    /// (a passphrase to ask for, a wrong key), so the first screen can say so. Every
    /// open and first run uses `key_env`, what `main` took from the process environment
    /// at start ([`KeyEnv::take_from_process_env`]).
    pub fn start(
        data_dir: PathBuf,
        key_env: KeyEnv,
        log_file: Option<PathBuf>,
        lock: InstanceLock,
        started: Instant,
    ) -> Shell {
        Shell {
            state: DesktopState::start(
                data_dir,
                move |dir: &std::path::Path| OpenOptions::new(dir, key_env.clone()),
                ClientOptions::default(),
                engine_config(),
            ),
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
        self.state.with(f)
    }

    /// Download a desk item's signature and photos (see `DesktopState`).
    pub async fn fetch_desk_evidence(&self, order_id: &str) -> Result<u32, AppError> {
        self.state.fetch_desk_evidence(order_id).await
    }

    /// Replace the open data directory with the one `open` makes (first run, unlock).
    pub fn open_with(
        &self,
        open: impl FnOnce(OpenOptions) -> Result<Outpost, CoreError>,
    ) -> Result<SessionInfo, AppError> {
        self.state.open_with(open)?;
        Ok(self.session_info())
    }

    pub fn session_info(&self) -> SessionInfo {
        SessionInfo {
            tray: self.has_tray(),
            default_server_url: std::env::var("OUTPOST_SERVER_URL")
                .ok()
                .filter(|s| !s.is_empty()),
            ..self.state.session_info()
        }
    }

    /// The About box: the version, where the data and the log are, the update channel.
    pub fn app_info(&self) -> AppInfoView {
        AppInfoView {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            data_dir: self.state.data_dir().display().to_string(),
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

    /// Sign in (`outpost-core` orchestrates it).
    pub async fn sign_in(&self, input: SignInInput) -> Result<SessionInfo, AppError> {
        self.state.sign_in(input).await?;
        Ok(self.session_info())
    }

    /// The fleet's sync health (dispatchers; the Fleet screen).
    pub async fn fleet(&self) -> Result<outpost_core::fleet::FleetView, AppError> {
        self.state.fleet().await
    }

    /// Sign out, refused while work is unsynced (the UI then lists it).
    pub async fn sign_out(&self) -> Result<SessionInfo, AppError> {
        self.state.sign_out().await?;
        Ok(self.session_info())
    }

    /// Forward every engine's status to the UI as `sync-status` events (and
    /// `orders-changed` after each pass that may have changed orders, and a
    /// notification for new failures), then start the engine if signed in. Called once
    /// the app exists.
    pub fn start_engine(&self, app: &AppHandle) {
        let app = app.clone();
        self.state.on_engine_started(move |rx| {
            tauri::async_runtime::spawn(crate::events::forward_status(app.clone(), rx));
        });
        // The engine spawns onto Tauri's tokio runtime.
        let rt = tauri::async_runtime::handle();
        let _enter = rt.inner().enter();
        self.state.start_engine();
    }

    /// The sync indicator's state: the engine's, or the local counts without one.
    pub fn sync_status(&self) -> Result<EngineStatusView, AppError> {
        self.state.sync_status()
    }

    /// "Sync now" (the button, the tray).
    pub fn sync_now(&self) -> Result<(), AppError> {
        self.state.sync_now()
    }

    /// A local write happened: the engine pushes it after its debounce; the indicator
    /// shows it at once.
    pub fn local_write(&self, app: &AppHandle) {
        self.state.local_write();
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
