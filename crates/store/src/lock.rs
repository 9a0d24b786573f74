//! The open lock: who may have the database open while it is replaced.
//!
//! A re-key writes a new file and renames it over the old one; a connection that another
//! process (or another part of this one) still has open would keep writing to the old,
//! unlinked file, and its work would be lost. So every [`crate::Store`] holds a *shared*
//! operating-system lock on `db.lock` in the data directory for as long as it lives, and
//! a re-key needs it *exclusive*: with any other store open anywhere, it is refused
//! with "close Outpost first" before anything is written; while a re-key runs, opening
//! is refused the same way.
//!
//! Going from shared to exclusive releases the shared lock and takes the exclusive one
//! (no platform converts a lock atomically), so two re-keys could each let the other
//! in. A second lock, `rekey.lock`, taken exclusive first, admits one re-key at a time;
//! then only shared holders can be met in between, and taking the shared lock back
//! always succeeds. The locks are the standard library's (`flock` on Unix, `LockFileEx`
//! on Windows): the system drops them when the process ends, however it ends.

use std::fs::{File, TryLockError};
use std::path::Path;
use std::sync::Arc;

use crate::error::StoreError;

/// The file every open store holds a shared lock on.
pub const OPEN_LOCK_FILE: &str = "db.lock";
/// The file a re-key holds exclusive so that only one re-key converts at a time.
const REKEY_LOCK_FILE: &str = "rekey.lock";

fn open_file(path: &Path) -> Result<File, StoreError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| {
            StoreError::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        })
}

fn lock_error(path: &Path, e: TryLockError) -> StoreError {
    match e {
        TryLockError::WouldBlock => StoreError::InUse(
            "Outpost is re-encrypting this database under a new key (`outpost db rekey`): \
             wait for it to finish, then try again"
                .into(),
        ),
        TryLockError::Error(e) => StoreError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot lock {}: {e}", path.display()),
        )),
    }
}

/// A shared lock on the data directory's database, held by one open store.
#[derive(Debug)]
pub(crate) struct OpenLock {
    file: Arc<File>,
}

impl OpenLock {
    /// Take the shared lock; refused at once while a re-key holds it exclusive.
    pub(crate) fn shared(dir: &Path) -> Result<OpenLock, StoreError> {
        let path = dir.join(OPEN_LOCK_FILE);
        let file = open_file(&path)?;
        file.try_lock_shared().map_err(|e| lock_error(&path, e))?;
        Ok(OpenLock {
            file: Arc::new(file),
        })
    }

    /// Make this lock exclusive for as long as the returned guard lives, or refuse
    /// because another store (in this process or another) has the database open.
    pub(crate) fn exclusive(&self, dir: &Path) -> Result<Exclusive, StoreError> {
        let gate_path = dir.join(REKEY_LOCK_FILE);
        let gate = open_file(&gate_path)?;
        gate.try_lock().map_err(|e| match e {
            TryLockError::WouldBlock => StoreError::InUse(
                "another Outpost process is already re-keying this database: wait for it to finish"
                    .into(),
            ),
            other => lock_error(&gate_path, other),
        })?;
        self.file.unlock()?;
        match self.file.try_lock() {
            Ok(()) => Ok(Exclusive {
                file: Arc::clone(&self.file),
                _gate: gate,
            }),
            Err(e) => {
                // Only shared holders can be here (the gate keeps other re-keys out),
                // so the shared lock comes straight back.
                self.file.lock_shared()?;
                Err(match e {
                    TryLockError::WouldBlock => StoreError::InUse(
                        "the database is open in another Outpost window or command (or its sync): \
                         close Outpost first, then try again; nothing was changed"
                            .into(),
                    ),
                    TryLockError::Error(e) => StoreError::Io(e),
                })
            }
        }
    }
}

/// The open lock made exclusive; shared again when dropped.
#[derive(Debug)]
pub(crate) struct Exclusive {
    file: Arc<File>,
    _gate: File,
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        // Exclusive → shared: release, then take shared, which nobody can be holding
        // against us (we held it exclusive until now, and the gate is still ours).
        let _ = self.file.unlock();
        let _ = self.file.lock_shared();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_is_refused_while_another_holder_shares_and_opening_is_refused_while_exclusive() {
        let tmp = tempfile::tempdir().expect("tmp");
        let a = OpenLock::shared(tmp.path()).expect("first");
        let b = OpenLock::shared(tmp.path()).expect("shared locks coexist");
        let err = a.exclusive(tmp.path()).expect_err("b still has it open");
        assert!(err.to_string().contains("close Outpost first"), "{err}");
        drop(b);
        let guard = a.exclusive(tmp.path()).expect("alone");
        let err = OpenLock::shared(tmp.path()).expect_err("refused during a re-key");
        assert!(err.to_string().contains("re-encrypting"), "{err}");
        drop(guard);
        OpenLock::shared(tmp.path()).expect("shared again after the re-key");
    }
}
