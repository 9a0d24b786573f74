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

use outpost_core::first_run::DEMO_ORDERS;
use outpost_core::views::{AppError, SessionInfo};
use outpost_core::{CoreError, OpenOptions, Outpost};

use crate::instance::InstanceLock;

/// The data directory: `OUTPOST_DATA_DIR`, else the platform's (the CLI's default too).
pub fn data_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("OUTPOST_DATA_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "Outpost")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| "no home directory to keep the data in: set OUTPOST_DATA_DIR".into())
}

#[derive(Debug)]
pub struct Shell {
    data_dir: PathBuf,
    outpost: Mutex<Option<Outpost>>,
    open_error: Mutex<Option<AppError>>,
    tray: AtomicBool,
    started: Instant,
    ui_ready: AtomicBool,
    _lock: InstanceLock,
}

impl Shell {
    /// Open the data directory if it holds a database; remember why not if it fails
    /// (a passphrase to ask for, a wrong key), so the first screen can say so.
    pub fn start(data_dir: PathBuf, lock: InstanceLock, started: Instant) -> Shell {
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
            open_error: Mutex::new(open_error),
            tray: AtomicBool::new(false),
            started,
            ui_ready: AtomicBool::new(false),
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
        SessionInfo {
            data_dir: self.data_dir.display().to_string(),
            initialized: Outpost::is_initialized(&self.data_dir),
            open: open.is_some(),
            username: open.and_then(|o| o.username().ok()),
            key_source: open.map(|o| o.key_info().key_source.describe().to_owned()),
            open_error: self.open_error.lock().ok().and_then(|e| e.clone()),
            tray: self.has_tray(),
            default_server_url: std::env::var("OUTPOST_SERVER_URL")
                .ok()
                .filter(|s| !s.is_empty()),
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
}
