//! SQLCipher's page crypto is SQLCipher's own provider (OpenSSL): the store registers
//! none of its own. Databases written by the provider this crate once had
//! (`outpost-ring-aes`, ring and RustCrypto's AES behind `unsafe` C callbacks, removed)
//! are in the same format and keep opening: the fixture under `tests/fixtures/` was
//! written by it before its removal. A wrong key is still refused and tampering still
//! detected.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

use outpost_store::{DbKey, OpenError, Store};
use rusqlite::Connection;

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

fn integrity(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("PRAGMA cipher_integrity_check")
        .expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[test]
fn new_stores_use_sqlciphers_own_page_crypto() {
    let tmp = tempfile::tempdir().expect("tmp");
    let store = Store::create(tmp.path(), &key(7)).expect("create");
    let report = store.check().expect("check");
    assert_eq!(report.cipher_provider, "openssl", "{report:?}");
    assert!(report.sound, "{report:?}");
}

/// One flipped bit in an encrypted page is caught by the page HMAC.
#[test]
fn a_tampered_page_is_detected() {
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
    let tmp = tempfile::tempdir().expect("tmp");
    let fixture = std::path::PathBuf::from(
        &*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
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
