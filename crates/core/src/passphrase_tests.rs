//! The passphrase: a memory-hard key-encryption key (Argon2id, its parameters in the
//! key file) that wraps a random database key; earlier PBKDF2 key files keep opening
//! and are converted once; changing the passphrase only rewraps.

use std::path::Path;

use zeroize::Zeroizing;

use super::*;
use crate::tests::{options, snapshot};

const PASS: &str = "correct horse battery";

fn with_passphrase(dir: &Path, creds: &MemoryCredentialStore, pass: &str) -> OpenOptions {
    let mut opts = options(dir, creds, None);
    opts.env.passphrase = Some(Zeroizing::new(pass.to_owned()));
    opts
}

fn key_file(dir: &Path) -> serde_json::Value {
    let bytes = std::fs::read(dir.join(keys::KEY_FILE_NAME)).expect("key file");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[test]
fn a_passphrase_wraps_a_random_key_under_an_argon2id_key_with_its_parameters_recorded() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let creds = MemoryCredentialStore::unavailable();
    drop(Outpost::init(options(tmp.path(), &creds, None), Some(PASS)).expect("init"));
    let kf = key_file(tmp.path());
    let kdf = &kf["kdf"];
    assert_eq!(kdf["algorithm"], "argon2id", "{kf}");
    for field in ["memory_kib", "time_cost", "parallelism"] {
        assert!(
            kdf[field].as_u64().unwrap_or(0) > 0,
            "{field} recorded: {kf}"
        );
    }
    assert!(
        kdf["memory_kib"].as_u64().unwrap_or(0) >= 19 * 1024,
        "at least OWASP's 19 MiB: {kf}"
    );
    assert_eq!(kf["wrapped_key"]["algorithm"], "aes-256-gcm", "{kf}");
    // The database key is random, not the passphrase's derivation: the PBKDF2 key of
    // the same passphrase and salt does not open it.
    let salt = hex::decode(kdf["salt"].as_str().expect("salt")).expect("hex");
    let derived = outpost_store::DbKey::from_passphrase(PASS, &salt, 600_000);
    assert!(matches!(
        outpost_store::Store::open(tmp.path(), &derived),
        Err(outpost_store::OpenError::CannotDecrypt)
    ));
    Outpost::open(with_passphrase(tmp.path(), &creds, PASS)).expect("opens");
    let err = Outpost::open(with_passphrase(tmp.path(), &creds, "not the passphrase"))
        .expect_err("wrong");
    assert_eq!(err.code(), "wrong_key", "{err}");
}

#[test]
fn an_earlier_pbkdf2_key_file_keeps_opening_and_is_converted_once() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let creds = MemoryCredentialStore::unavailable();
    // A data directory as the earlier version made it: the database key is PBKDF2 of
    // the passphrase (1,000 iterations here, to keep the test fast).
    let salt = [9u8; 16];
    let key = outpost_store::DbKey::from_passphrase(PASS, &salt, 1000);
    let mut store = outpost_store::Store::create(tmp.path(), &key).expect("create");
    store.set_setting("made_by", "pbkdf2").expect("write");
    drop(store);
    let legacy = serde_json::json!({
        "format": 1,
        "db_id": "5b0c1f8e-0000-4000-8000-000000000001",
        "key_source": "passphrase",
        "key_check": outpost_store::key_check_value(&key),
        "staged_key_check": null,
        "kdf": {"algorithm": "pbkdf2-hmac-sha256", "salt": hex::encode(salt), "iterations": 1000},
    });
    std::fs::write(
        tmp.path().join(keys::KEY_FILE_NAME),
        serde_json::to_vec_pretty(&legacy).expect("json"),
    )
    .expect("write key file");

    let err = Outpost::open(with_passphrase(tmp.path(), &creds, "not the passphrase"))
        .expect_err("a wrong passphrase is refused before any conversion");
    assert_eq!(err.code(), "wrong_key");
    assert_eq!(
        key_file(tmp.path())["kdf"]["algorithm"],
        "pbkdf2-hmac-sha256"
    );

    let mut app = Outpost::open(with_passphrase(tmp.path(), &creds, PASS)).expect("opens");
    assert_eq!(
        app.store().get_setting("made_by").expect("read").as_deref(),
        Some("pbkdf2")
    );
    drop(app);
    let kf = key_file(tmp.path());
    assert_eq!(kf["kdf"]["algorithm"], "argon2id", "converted: {kf}");
    assert_eq!(kf["format"], 2, "{kf}");
    let converted = kf.clone();
    let app = Outpost::open(with_passphrase(tmp.path(), &creds, PASS)).expect("opens again");
    drop(app);
    assert_eq!(key_file(tmp.path()), converted, "converted once, not again");
    let err = Outpost::open(with_passphrase(tmp.path(), &creds, "not the passphrase"))
        .expect_err("wrong");
    assert_eq!(err.code(), "wrong_key");
}

#[test]
fn changing_the_passphrase_rewraps_the_key_and_leaves_the_database_file_untouched() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let creds = MemoryCredentialStore::unavailable();
    let mut app = Outpost::init(options(tmp.path(), &creds, None), Some(PASS)).expect("init");
    app.load_demo_data().expect("demo");
    drop(app);
    let db = outpost_store::StorePaths::in_dir(tmp.path()).db;
    let before = std::fs::read(&db).expect("db");

    let mut app = Outpost::open(with_passphrase(tmp.path(), &creds, PASS)).expect("opens");
    let err = app
        .change_passphrase(Some("not the passphrase"), "a new passphrase here")
        .expect_err("the current passphrase must be right");
    assert_eq!(err.code(), "wrong_key", "{err}");
    let err = app
        .change_passphrase(Some(PASS), "short")
        .expect_err("too short");
    assert_eq!(err.code(), "bad_input", "{err}");
    let unchanged = snapshot(tmp.path());
    app.change_passphrase(Some(PASS), "a new passphrase here")
        .expect("change");
    assert_eq!(app.orders().expect("still open").len(), 5);
    drop(app);
    assert_eq!(
        std::fs::read(&db).expect("db"),
        before,
        "only the key file changed: the database was not rewritten"
    );
    let changed: Vec<String> = snapshot(tmp.path())
        .into_iter()
        .filter(|(name, bytes)| unchanged.get(name) != Some(bytes))
        .map(|(name, _)| name)
        .filter(|name| !name.ends_with("-wal") && !name.ends_with("-shm"))
        .collect();
    assert_eq!(changed, [keys::KEY_FILE_NAME]);

    let err = Outpost::open(with_passphrase(tmp.path(), &creds, PASS)).expect_err("old");
    assert_eq!(err.code(), "wrong_key");
    let app = Outpost::open(with_passphrase(tmp.path(), &creds, "a new passphrase here"))
        .expect("the new passphrase opens it");
    assert_eq!(app.orders().expect("orders").len(), 5);
}

#[test]
fn a_database_without_a_passphrase_has_none_to_change() {
    let (_tmp, _creds, mut app) = crate::tests::fresh();
    let err = app
        .change_passphrase(None, "a new passphrase here")
        .expect_err("credential-store key");
    assert_eq!(err.code(), "bad_input", "{err}");
}
