//! The data directory's sync lock: one process syncs a data directory at a time.
//!
//! Both the background task and `outpost sync` hold a [`SyncLock`] while they sync, so
//! two processes never push the same outbox at once. It is an operating-system file
//! lock (`File::try_lock`) on `sync.lock` in the data directory, so the system releases
//! it when the holder exits, however it exits; the file keeps the holder's process id
//! so that the refusal can name it. It does not guard the database itself (SQLite
//! does that), and it never waits: a second syncer is refused at once.

use std::path::{Path, PathBuf};

use crate::error::SyncError;

/// Exclusive right to sync one data directory, held for as long as this lives.
#[derive(Debug)]
pub struct SyncLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl SyncLock {
    pub fn acquire(data_dir: &Path) -> Result<SyncLock, SyncError> {
        use std::io::{Read, Seek, Write};
        let path = data_dir.join("sync.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| SyncError::Locked(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = file.rewind();
                let _ = write!(file, "{}", std::process::id());
                Ok(SyncLock { _file: file, path })
            }
            Err(_) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                Err(SyncError::Locked(format!(
                    "another Outpost process{} is already syncing {}: close it, or wait for it to finish",
                    if holder.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {})", holder.trim())
                    },
                    data_dir.display()
                )))
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
