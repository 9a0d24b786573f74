//! The store's page crypto (`src/crypto.rs`) against SQLCipher's built-in OpenSSL
//! provider: the same file format both ways, a wrong key still refused, tampering still
//! detected. Its own test binary because the provider is chosen per process; the tests
//! run one after the other under a lock.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::sync::Mutex;

use outpost_store::{use_page_crypto, DbKey, OpenError, PageCrypto, Store, PROVIDER_NAME};
use rusqlite::Connection;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn key(byte: u8) -> DbKey {
    DbKey::from_hex(&hex::encode([byte; 32])).expect("key")
}

/// A raw SQLCipher connection keyed the way the store keys new databases.
fn raw(db: &Path, hex_key: &str) -> Connection {
    let conn = Connection::open(db).expect("open");
    conn.execute_batch(&format!(
        "PRAGMA key = \"x'{hex_key}'\"; PRAGMA cipher_hmac_algorithm = HMAC_SHA256;"
    ))
    .expect("key");
    conn
}

fn provider(conn: &Connection) -> String {
    conn.query_row("PRAGMA cipher_provider", [], |r| r.get(0))
        .expect("cipher_provider")
}

fn integrity(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("PRAGMA cipher_integrity_check")
        .expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// Write rows big enough to span many pages (and overflow pages), with each provider in
/// turn, and read everything back with the other.
#[test]
fn both_providers_read_and_write_the_same_format() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("compat.db");
    let hex_key = "ab".repeat(32);
    let text = |i: usize| format!("row {i} {}", "x".repeat(i * 37 % 5000));

    use_page_crypto(PageCrypto::Builtin).expect("built-in provider");
    {
        let conn = raw(&db, &hex_key);
        assert_eq!(provider(&conn), "openssl");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (i INTEGER PRIMARY KEY, v TEXT NOT NULL);",
        )
        .expect("schema");
        for i in 0..300 {
            conn.execute(
                "INSERT INTO t (i, v) VALUES (?1, ?2)",
                rusqlite::params![i as i64, text(i)],
            )
            .expect("insert");
        }
    }

    use_page_crypto(PageCrypto::Outpost).expect("outpost provider");
    {
        let conn = raw(&db, &hex_key);
        assert_eq!(provider(&conn), PROVIDER_NAME);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 300);
        let v: String = conn
            .query_row("SELECT v FROM t WHERE i = 271", [], |r| r.get(0))
            .expect("row");
        assert_eq!(v, text(271));
        assert!(integrity(&conn).is_empty(), "{:?}", integrity(&conn));
        for i in 300..600 {
            conn.execute(
                "INSERT INTO t (i, v) VALUES (?1, ?2)",
                rusqlite::params![i as i64, text(i)],
            )
            .expect("insert");
        }
        conn.execute("UPDATE t SET v = v || '!' WHERE i % 7 = 0", [])
            .expect("update");
        // Some pages reach the main file, some stay in the WAL: both are read below.
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .expect("checkpoint");
        conn.execute("DELETE FROM t WHERE i % 11 = 0", [])
            .expect("delete");
    }

    use_page_crypto(PageCrypto::Builtin).expect("built-in provider");
    {
        let conn = raw(&db, &hex_key);
        assert_eq!(provider(&conn), "openssl");
        assert!(integrity(&conn).is_empty(), "{:?}", integrity(&conn));
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 600 - (0..600).filter(|i| i % 11 == 0).count() as i64);
        let v: String = conn
            .query_row("SELECT v FROM t WHERE i = 497", [], |r| r.get(0))
            .expect("row");
        assert_eq!(v, format!("{}!", text(497)));
        let ok: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        assert_eq!(ok, "ok");
    }
    use_page_crypto(PageCrypto::Outpost).expect("outpost provider");
}

/// A whole store made with SQLCipher's provider opens through the application's path,
/// which uses this one, and a wrong key is still refused as a wrong key.
#[test]
fn a_store_made_with_openssl_opens_and_wrong_keys_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tmp");
    use_page_crypto(PageCrypto::Builtin).expect("built-in provider");
    let now = chrono::Utc::now();
    let device = {
        let mut store = Store::create(tmp.path(), &key(7)).expect("create");
        assert_eq!(store.check().expect("check").cipher_provider, "openssl");
        store.device_id(now).expect("device id")
    };
    use_page_crypto(PageCrypto::Outpost).expect("outpost provider");
    let mut store = Store::open(tmp.path(), &key(7)).expect("open with the same key");
    assert_eq!(store.device_id(now).expect("device id"), device);
    let report = store.check().expect("check");
    assert_eq!(report.cipher_provider, PROVIDER_NAME);
    assert!(report.sound, "{report:?}");
    drop(store);
    match Store::open(tmp.path(), &key(8)) {
        Err(OpenError::CannotDecrypt) => {}
        other => panic!("expected a wrong-key error, got {:?}", other.err()),
    }
}

/// One flipped bit in an encrypted page is caught by the page HMAC computed here.
#[test]
fn a_tampered_page_is_detected() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    use_page_crypto(PageCrypto::Outpost).expect("outpost provider");
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("tamper.db");
    let hex_key = "cd".repeat(32);
    {
        let conn = raw(&db, &hex_key);
        conn.execute_batch("CREATE TABLE t (v TEXT);")
            .expect("schema");
        for _ in 0..40 {
            conn.execute("INSERT INTO t VALUES (hex(randomblob(500)))", [])
                .expect("row");
        }
    }
    let mut bytes = std::fs::read(&db).expect("read");
    assert!(bytes.len() >= 3 * 4096, "{} bytes", bytes.len());
    bytes[2 * 4096 + 100] ^= 0x01;
    std::fs::write(&db, &bytes).expect("write");
    let conn = raw(&db, &hex_key);
    let found = integrity(&conn);
    assert!(!found.is_empty(), "the flipped bit went unnoticed");
}

/// The fixture data directory was written by the page-crypto provider this crate had
/// before (`outpost-ring-aes`, removed): it must keep opening, read and write, on
/// SQLCipher's own provider, with its HMAC-SHA256 page layout.
#[test]
fn a_database_written_by_the_removed_provider_opens_with_sqlciphers_own() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tmp");
    let fixture = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/written-by-outpost-ring-aes");
    copy_dir(&fixture, tmp.path());
    let now = chrono::Utc::now();
    let mut store = Store::open(tmp.path(), &key(0x5a)).expect("opens");
    assert_eq!(
        store.get_setting("made_by").expect("read").as_deref(),
        Some("the outpost-ring-aes page-crypto provider")
    );
    store.set_setting("written", "now").expect("write");
    let report = store.check().expect("check");
    assert_eq!(report.cipher_provider, "openssl", "{report:?}");
    assert_eq!(report.cipher_hmac, "HMAC_SHA256", "{report:?}");
    assert!(report.sound, "{report:?}");
    let device = store.device_id(now).expect("device");
    drop(store);
    let store = Store::open(tmp.path(), &key(0x5a)).expect("reopens");
    assert_eq!(
        store.get_setting("written").expect("read").as_deref(),
        Some("now")
    );
    drop(store);
    let mut store = Store::open(tmp.path(), &key(0x5a)).expect("reopens");
    assert_eq!(store.device_id(now).expect("device"), device);
    match Store::open(tmp.path(), &key(0x5b)) {
        Err(OpenError::CannotDecrypt) => {}
        other => panic!("expected a wrong-key error, got {:?}", other.err()),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
