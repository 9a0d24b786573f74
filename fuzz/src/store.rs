//! The device's store opened over a database changed arbitrarily. A case is a schema
//! version to start from (an empty file up to the current schema, made by the store's
//! own migrations) and SQL run on it with the store's key (the fuzzer's bytes as text:
//! the committed corpus holds real statements, of rows the app writes and of schema
//! changes, for libFuzzer to vary). Then `Store::open` runs the migrations to the
//! latest version and the store reads what it holds: every outcome must be a working
//! store or a typed error (`OpenError`, `StoreError`), never a panic.
//!
//! Each case works in a fresh directory under the system's temporary directory
//! (`TMPDIR`; scripts/fuzz.sh points it at /dev/shm when it can, so that the
//! store's `synchronous=FULL` costs no disk flushes).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use outpost_store::{schema_version, DbKey, OrderQuery, Store, DB_FILE_NAME};

/// A fixed key: the cases are about content, not keys.
fn key() -> &'static DbKey {
    static KEY: OnceLock<DbKey> = OnceLock::new();
    KEY.get_or_init(|| DbKey::from_hex(&"42".repeat(32)).expect("a 64-hex-digit key"))
}

/// This process's scratch directory (removed and made again per case).
fn scratch() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed) % 2;
    std::env::temp_dir().join(format!("outpost-fuzz-store-{}-{n}", std::process::id()))
}

fn fresh(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("a scratch directory");
}

/// The fuzz target: the first byte picks the starting schema version, the rest is SQL.
pub fn open(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(sql) = std::str::from_utf8(rest) else {
        return;
    };
    let dir = scratch();
    fresh(&dir);
    let version = usize::from(first) % (schema_version() + 1);
    {
        let conn = Store::create_at_version_for_tests(&dir, key(), version)
            .expect("a database at a known schema version");
        // Statements the database refuses are part of the case: whatever ran, ran.
        let _ = conn.execute_batch(sql);
    }
    if dir.join(DB_FILE_NAME).is_file() {
        if let Ok(store) = Store::open(&dir, key()) {
            read_everything(&store);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the app reads from an open store, each read allowed to fail with its error.
fn read_everything(store: &Store) {
    let t0 = chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
    let _ = store.check();
    let _ = store.orders();
    let _ = store.order_page(&OrderQuery::all(t0, 50));
    let _ = store.outbox();
    let _ = store.conflicts();
    let _ = store.failed_syncs();
    let _ = store.sync_counts();
    let _ = store.unsent_report(t0);
    let _ = store.pull_cursor();
    let _ = store.session();
    let _ = store.attachments_pending_upload();
    let _ = store.inventory_count();
    let _ = store.next_push_batch(50, 1 << 20, t0, true);
}
