//! Logging to stderr and to files in the platform's log directory (the same folder
//! Tauri's path resolver names: `~/.local/share/org.outpost.desktop/logs` on Linux):
//! one file a day, at most 20 MB each, the last seven kept (`outpost_core::desktop::log`).
//!
//! Nothing secret is logged: keys, passphrases and tokens never reach a log call.

use std::io::IsTerminal;
use std::path::PathBuf;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

/// The app's identifier in `tauri.conf.json`, which names its folders.
pub const IDENTIFIER: &str = "org.outpost.desktop";

/// The platform's log directory for Outpost, as Tauri's `app_log_dir` has it.
pub fn log_dir() -> Option<PathBuf> {
    let base = directories::BaseDirs::new()?;
    if cfg!(target_os = "macos") {
        Some(base.home_dir().join("Library/Logs").join(IDENTIFIER))
    } else {
        Some(base.data_local_dir().join(IDENTIFIER).join("logs"))
    }
}

/// Install the global subscriber; returns the log folder when a file in it could be
/// opened (without one, logging goes to stderr only, and says so).
pub fn init() -> Option<PathBuf> {
    let filter = EnvFilter::try_from_env("OUTPOST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let file = log_dir().and_then(|dir| {
        use outpost_core::desktop::log::{capped_file, LOG_BYTES_PER_DAY};
        let f = capped_file(
            &dir,
            LOG_BYTES_PER_DAY,
            std::sync::Arc::new(outpost_core::clock::SystemClock),
        )
        .ok()?;
        Some((dir, std::sync::Mutex::new(f)))
    });
    match file {
        Some((path, f)) => {
            let layer = fmt::layer()
                .with_writer(f)
                .with_ansi(false)
                .with_target(false);
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(stderr)
                .with(layer)
                .try_init();
            Some(path)
        }
        None => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(stderr)
                .try_init();
            tracing::warn!("no log directory could be opened: logging to stderr only");
            None
        }
    }
}
