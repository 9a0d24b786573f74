//! The re-key against what a real machine does to it: a disk too full for a second copy
//! of the database, another connection still open, a credential store that accepts a
//! write it does not keep. In each case the data directory must end up opening with
//! the key it had (or the new one) and every order must read back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use zeroize::Zeroizing;

use super::*;
use crate::credentials::CredentialError;
use crate::tests::{first_order, options};

/// A small filesystem (a tmpfs with `size=`) mounted on a fresh directory for one test,
/// unmounted when dropped. Mounting needs root: elsewhere [`SmallDisk::mount`] says the
/// test was skipped, on stderr, and the test returns.
pub(crate) struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub(crate) fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !mounted {
            eprintln!(
                "SKIPPED: cannot mount a {size} tmpfs on {} (this test needs root)",
                dir.path().display()
            );
            return None;
        }
        Some(SmallDisk { dir })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fill the disk with a ballast file so that only about `free` bytes stay free.
    pub(crate) fn fill_leaving(&self, free: u64) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("ballast");
        let mut f = std::fs::File::create(&path).expect("ballast");
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        let _ = f.flush();
        f.set_len(written.saturating_sub(free))
            .expect("shrink ballast");
        f.sync_all().expect("sync ballast");
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Every order's id and title, and the outbox's length: what must survive.
fn contents(app: &Outpost) -> (Vec<(String, String)>, usize) {
    let mut orders: Vec<(String, String)> = app
        .orders()
        .expect("every order reads")
        .into_iter()
        .map(|r| (r.order.id.to_string(), r.order.title))
        .collect();
    orders.sort();
    (orders, app.outbox().expect("outbox").len())
}

#[test]
fn a_rekey_on_a_nearly_full_disk_is_refused_with_the_space_it_needs_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount("12m") else {
        return;
    };
    let dir = disk.path().join("data");
    let creds = MemoryCredentialStore::default();
    let mut app = Outpost::init(options(&dir, &creds, None), None).expect("init");
    app.set_username("tech1").expect("username");
    // About the size of the data directory in the report (3.8 MB): the demo's orders
    // are smaller than real ones, so there are more of them.
    app.load_demo_fleet(1200).expect("orders");
    // Closed and opened again, as between two runs of `outpost`: the data is in the
    // database file, not in the WAL.
    drop(app);
    let mut app = Outpost::open(options(&dir, &creds, None)).expect("reopen");
    let id = first_order(&app);
    app.edit_order(
        &id,
        OrderEdit {
            notes: vec!["unsynced work".into()],
            ..OrderEdit::default()
        },
    )
    .expect("edit");
    let before = contents(&app);
    let paths = outpost_store::StorePaths::in_dir(&dir);
    let wal = paths.db.with_file_name(format!(
        "{}-wal",
        paths.db.file_name().expect("name").to_string_lossy()
    ));
    eprintln!(
        "database {} bytes, WAL {} bytes",
        file_size(&paths.db),
        file_size(&wal)
    );
    let ballast = disk.fill_leaving(600 * 1024);

    let result = app.rekey();
    drop(app);
    std::fs::remove_file(&ballast).expect("free the space");

    let app = Outpost::open(options(&dir, &creds, None))
        .unwrap_or_else(|e| panic!("the data directory opens after the re-key ({result:?}): {e}"));
    assert_eq!(
        contents(&app),
        before,
        "every order and the outbox read back"
    );
    let check = app.check().expect("check");
    assert!(check.store.sound, "{check:?}");
    let err = result.expect_err("a re-key without the space for a second copy is refused");
    assert_eq!(err.code(), "disk_full", "{err}");
    let message = err.to_string();
    eprintln!("refused: {message}");
    assert!(
        message.contains("needs") && message.contains("MB") && message.contains("free"),
        "the message says how much space is needed: {message}"
    );
}

#[test]
fn a_rekey_is_refused_while_another_connection_has_the_database_open() {
    let (tmp, creds, mut app) = crate::tests::fresh();
    let before = contents(&app);
    let other = app
        .connect()
        .expect("a second connection, as the sync engine has");
    let err = app
        .rekey()
        .expect_err("a re-key under another open connection is refused");
    assert!(
        err.to_string().contains("close Outpost"),
        "the message says what to do: {err}"
    );
    drop(other);
    drop(app);
    let mut app = Outpost::open(options(tmp.path(), &creds, None)).expect("opens as it was");
    assert_eq!(contents(&app), before);
    app.rekey().expect("alone, the re-key goes ahead");
    drop(app);
    let app = Outpost::open(options(tmp.path(), &creds, None)).expect("opens with the new key");
    assert_eq!(contents(&app), before);
}

/// A credential store that answers every write with success but, once armed, keeps
/// nothing: some Secret Service set-ups do this with a locked collection.
#[derive(Default, Clone)]
struct ForgetfulStore {
    inner: MemoryCredentialStore,
    armed: Arc<Mutex<bool>>,
}

impl CredentialStore for ForgetfulStore {
    fn get(&self, name: &str) -> Result<Option<Zeroizing<String>>, CredentialError> {
        self.inner.get(name)
    }
    fn set(&self, name: &str, secret: &str) -> Result<(), CredentialError> {
        if *self.armed.lock().expect("lock") {
            return Ok(());
        }
        self.inner.set(name, secret)
    }
    fn delete(&self, name: &str) -> Result<(), CredentialError> {
        self.inner.delete(name)
    }
    fn describe(&self) -> &'static str {
        "a forgetful credential store"
    }
}

#[test]
fn a_rekey_reads_back_what_the_credential_store_kept_before_relying_on_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let creds = ForgetfulStore::default();
    let opts = |c: &ForgetfulStore| OpenOptions {
        credentials: Arc::new(c.clone()),
        ..options(tmp.path(), &c.inner, None)
    };
    let mut app = Outpost::init(opts(&creds), None).expect("init");
    app.load_demo_data().expect("demo");
    let before = contents(&app);
    *creds.armed.lock().expect("lock") = true;
    let result = app.rekey();
    drop(app);
    let app = Outpost::open(opts(&creds))
        .unwrap_or_else(|e| panic!("opens after the re-key ({result:?}): {e}"));
    assert_eq!(contents(&app), before);
    let err = result.expect_err("a key the store did not keep is never used");
    assert_eq!(err.code(), "no_credential_store", "{err}");
}
