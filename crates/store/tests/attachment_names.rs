//! Attachment files on disk are named by a keyed hash (HMAC-SHA256 under a key kept
//! inside the encrypted database), not by the SHA-256 of their content: someone holding
//! the disk cannot confirm that a known photo is there. Files of earlier versions,
//! named by the plain hash, are renamed at the first open, crash-safely.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use outpost_store::{DbKey, Store};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn names(dir: &Path) -> Vec<String> {
    files_under(dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect()
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

#[test]
fn no_file_name_reveals_the_content_hash_of_an_attachment() {
    let tmp = tempfile::tempdir().expect("tmp");
    let key = DbKey::generate().expect("key");
    let mut store = Store::create(tmp.path(), &key).expect("create");
    let photo = b"\x89PNG\r\n\x1a\na photo anyone could have a copy of".to_vec();
    let meta = store
        .put_attachment(&photo, "image/png", chrono::Utc::now())
        .expect("put");
    let all = names(tmp.path());
    assert!(
        all.iter().all(|n| !n.contains(&meta.hash)),
        "the SHA-256 {} is readable in {all:?}",
        meta.hash
    );
    assert!(
        all.iter().all(|n| !n.contains(&meta.hash[..16])),
        "not even a prefix of it: {all:?}"
    );
    assert_eq!(store.attachment(&meta.hash).expect("reads back"), photo);
    // Another data directory names the same content differently (its own key).
    let other = tempfile::tempdir().expect("tmp");
    let mut second = Store::create(other.path(), &key).expect("create");
    second
        .put_attachment(&photo, "image/png", chrono::Utc::now())
        .expect("put");
    let first_files = files_under(&store.paths().attachments);
    let second_files = files_under(&second.paths().attachments);
    assert_eq!((first_files.len(), second_files.len()), (1, 1));
    assert_ne!(
        first_files[0].file_name(),
        second_files[0].file_name(),
        "the name depends on the data directory's own key"
    );
}

/// The fixture was written by an earlier version: its one attachment is named by the
/// plain SHA-256 of its content.
const FIXTURE_HASH: &str = "d3c920b063c89cb153c694e2eecdda8f89c101c487da9420ae984520f0df6ad7";

fn fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let fixture = PathBuf::from(
        &*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/fixtures/written-by-outpost-ring-aes");
    copy_dir(&fixture, tmp.path());
    tmp
}

#[test]
fn files_named_by_the_plain_hash_are_renamed_at_the_first_open_and_read_back() {
    let tmp = fixture();
    let key = DbKey::from_bytes([0x5a; 32]);
    let old = tmp
        .path()
        .join("attachments")
        .join(&FIXTURE_HASH[..2])
        .join(FIXTURE_HASH);
    assert!(old.is_file(), "the fixture has the earlier name");
    let store = Store::open(tmp.path(), &key).expect("opens");
    assert!(!old.exists(), "renamed: {:?}", names(tmp.path()));
    let all = names(tmp.path());
    assert!(all.iter().all(|n| !n.contains(FIXTURE_HASH)), "{all:?}");
    let bytes = store.attachment(FIXTURE_HASH).expect("reads back");
    assert!(bytes.starts_with(b"\x89PNG"));
    drop(store);
    // Opening again renames nothing more.
    let attachments = tmp.path().join("attachments");
    let before = files_under(&attachments);
    let store = Store::open(tmp.path(), &key).expect("opens again");
    assert_eq!(files_under(&attachments), before);
    assert!(store.attachment(FIXTURE_HASH).is_ok());
}

#[test]
fn a_rename_interrupted_by_a_crash_is_finished_at_the_next_open() {
    let tmp = fixture();
    let key = DbKey::from_bytes([0x5a; 32]);
    let old = tmp
        .path()
        .join("attachments")
        .join(&FIXTURE_HASH[..2])
        .join(FIXTURE_HASH);
    let mut store = Store::open(tmp.path(), &key).expect("opens");
    let renamed = files_under(&store.paths().attachments);
    assert_eq!(renamed.len(), 1);
    // As if the process died after the files were renamed but before the database
    // recorded it, with one file still under its earlier name.
    store
        .execute_batch_for_tests("DELETE FROM kv WHERE key = 'attachment_names'")
        .expect("forget that the rename finished");
    drop(store);
    std::fs::create_dir_all(old.parent().expect("parent")).expect("mkdir");
    std::fs::rename(&renamed[0], &old).expect("move back");
    let store = Store::open(tmp.path(), &key).expect("opens");
    assert!(!old.exists());
    assert_eq!(files_under(&store.paths().attachments), renamed);
    assert!(store.attachment(FIXTURE_HASH).is_ok());
}
