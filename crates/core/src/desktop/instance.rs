//! One instance per data directory: an exclusive lock on `outpost-desktop.lock` in it,
//! held for the life of the process and released by the OS when it ends (also after a
//! crash). Two windows on one database would both write and, later, both sync. The
//! lock is the standard library's (`File::try_lock`: `flock` on Unix, `LockFileEx` on
//! Windows).
//!
//! Left out: bringing the running instance's window to the front (that needs an IPC
//! channel to it; the second instance says where the first one is and exits).

use std::fs::{File, OpenOptions};
use std::path::Path;

pub const LOCK_FILE: &str = "outpost-desktop.lock";

#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

impl InstanceLock {
    /// Take the lock, creating the data directory if needed.
    pub fn acquire(data_dir: &Path) -> Result<InstanceLock, String> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            format!(
                "cannot create the data directory {}: {e}",
                data_dir.display()
            )
        })?;
        let path = data_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        file.try_lock().map_err(|_| {
            format!(
                "Outpost is already open on {}: use that window (look in the tray), or \
                 set OUTPOST_DATA_DIR to open another data directory",
                data_dir.display()
            )
        })?;
        Ok(InstanceLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_on_the_same_data_directory_is_refused_until_the_first_ends() {
        let base = tempfile::tempdir().expect("temp dir");
        let (dir, other) = (base.path().join("a"), base.path().join("b"));
        let first = InstanceLock::acquire(&dir).expect("first instance");
        let second = InstanceLock::acquire(&dir).expect_err("second is refused");
        assert!(second.contains("already open"), "{second}");
        InstanceLock::acquire(&other).expect("another data directory is fine");
        drop(first);
        InstanceLock::acquire(&dir).expect("free again once the first ends");
    }
}
