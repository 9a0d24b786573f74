//! The desktop's log files (issue 21 item 6): one file per day in the log folder,
//! `outpost-desktop.YYYY-MM-DD.log`, and only the last [`LOG_FILES_KEPT`] kept, so the
//! log never grows without bound on a laptop that runs for months. tracing-appender's
//! rolling appender does the rolling and the pruning (it prunes when it opens and at
//! each new day); the shell installs it as a layer (`src-tauri/src/logging.rs`) and
//! the About screen names the folder.
//!
//! A day's file is capped too ([`LOG_BYTES_PER_DAY`], [`capped_file`]): past the cap
//! one line says so and the rest of that day's lines are dropped, so that a fault
//! that logs in a loop cannot fill the disk. The cap counts what today's file already
//! holds, so restarts do not reset it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use tracing_appender::rolling::{RollingFileAppender, Rotation};

use crate::clock::Clock;
use crate::CoreError;

/// The most bytes one day's log file holds: 20 MB (a busy day at `info` is well under
/// 1 MB). With [`LOG_FILES_KEPT`] files the log stays under 140 MB.
pub const LOG_BYTES_PER_DAY: u64 = 20_000_000;

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

/// Today's log file in `dir` (as [`rolling_file`]), holding at most `cap` bytes a day
/// by `clock`'s date (UTC, the date the files are named by).
pub fn capped_file(dir: &Path, cap: u64, clock: Arc<dyn Clock>) -> Result<CappedLog, CoreError> {
    let inner = rolling_file(dir)?;
    Ok(CappedLog {
        inner,
        dir: dir.to_path_buf(),
        cap,
        clock,
        day: None,
        written: 0,
        noted: false,
    })
}

/// A log writer that stops at a daily size cap ([`capped_file`]).
pub struct CappedLog {
    inner: RollingFileAppender,
    dir: PathBuf,
    cap: u64,
    clock: Arc<dyn Clock>,
    day: Option<NaiveDate>,
    written: u64,
    noted: bool,
}

impl CappedLog {
    /// Start counting a new day from what its file already holds.
    fn roll_to(&mut self, day: NaiveDate) {
        let file = self
            .dir
            .join(format!("{LOG_PREFIX}.{}.log", day.format("%Y-%m-%d")));
        self.written = std::fs::metadata(file).map_or(0, |m| m.len());
        self.noted = self.written >= self.cap;
        self.day = Some(day);
    }
}

impl Write for CappedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let today = self.clock.now().date_naive();
        if self.day != Some(today) {
            self.roll_to(today);
        }
        if self.written.saturating_add(buf.len() as u64) > self.cap {
            if !self.noted {
                self.noted = true;
                let note = format!(
                    "the log reached its size cap of {} MB for today; later lines of this day are left out\n",
                    self.cap / 1_000_000
                );
                self.inner.write_all(note.as_bytes())?;
                self.written = self.written.saturating_add(note.len() as u64);
            }
            // Dropped on purpose: the caller's line counts as handled.
            return Ok(buf.len());
        }
        self.inner.write_all(buf)?;
        self.written = self.written.saturating_add(buf.len() as u64);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
