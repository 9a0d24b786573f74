//! The desktop's log files (issue 21 item 6): one file per day in the log folder,
//! `outpost-desktop.YYYY-MM-DD.log`, and only the last [`LOG_FILES_KEPT`] kept, so the
//! log never grows without bound on a laptop that runs for months. tracing-appender's
//! rolling appender does the rolling and the pruning (it prunes when it opens and at
//! each new day); the shell installs it as a layer (`src-tauri/src/logging.rs`) and
//! the About screen names the folder.
//!
//! Left out: a size cap within a day. A day's file is bounded by what one day of the
//! app logs at `info` (a line per sync pass and per request that failed).

use std::path::Path;

use tracing_appender::rolling::{RollingFileAppender, Rotation};

use crate::CoreError;

/// The log files' names start with this.
pub const LOG_PREFIX: &str = "outpost-desktop";

/// How many daily files are kept (the oldest are deleted).
pub const LOG_FILES_KEPT: usize = 7;

/// A writer to today's file in `dir` (made if missing), older files beyond
/// [`LOG_FILES_KEPT`] removed.
pub fn rolling_file(dir: &Path) -> Result<RollingFileAppender, CoreError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CoreError::Io(format!("cannot make the log folder {}: {e}", dir.display())))?;
    RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(LOG_PREFIX)
        .filename_suffix("log")
        .max_log_files(LOG_FILES_KEPT)
        .build(dir)
        .map_err(|e| CoreError::Io(format!("cannot open a log file in {}: {e}", dir.display())))
}
