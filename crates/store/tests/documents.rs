//! Cached technical documents (issue 22) at rest: encrypted range by range under a
//! keyed name, resumed after a torn write, checked before they count, and refused
//! when damaged or swapped for another document's file.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

use std::io::Write;
use std::path::{Path, PathBuf};

use outpost_protocol::limits::DOCUMENT_CHUNK_BYTES;
use outpost_protocol::wire::{DocumentIndex, DocumentInfo};
use outpost_store::{DbKey, DocumentWork, Store, StoreError};
use uuid::Uuid;

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
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

fn bytes_with(marker: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(format!("{marker} {i}\n").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

fn info(id: Uuid, bytes: &[u8]) -> DocumentInfo {
    DocumentInfo {
        id,
        version: 1,
        name: format!("{id}.pdf"),
        media_type: "application/pdf".into(),
        size: bytes.len() as u64,
        sha256: outpost_protocol::attachment_hash(bytes),
        orders: Vec::new(),
    }
}

fn work(d: &DocumentInfo) -> DocumentWork {
    DocumentWork {
        id: d.id.to_string(),
        sha256: d.sha256.clone(),
        size: d.size,
        received: 0,
    }
}

/// Keep every range of `bytes` as document `d`, and finish it.
fn cache(store: &mut Store, d: &DocumentInfo, bytes: &[u8]) {
    let w = work(d);
    for (i, chunk) in bytes.chunks(DOCUMENT_CHUNK_BYTES as usize).enumerate() {
        store
            .append_document_range(&w, i as u64 * DOCUMENT_CHUNK_BYTES, chunk)
            .expect("range kept");
    }
    store.finish_document(&w).expect("finished");
}

fn new_store(dir: &Path) -> Store {
    Store::create(dir, &DbKey::generate().expect("key")).expect("create")
}

#[test]
fn a_document_is_kept_encrypted_range_by_range_resumes_after_a_torn_write_and_exports_whole() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut store = new_store(tmp.path());
    let bytes = bytes_with("AT-REST-MARKER", 2 * DOCUMENT_CHUNK_BYTES as usize + 4321);
    let d = info(Uuid::new_v4(), &bytes);
    let index = DocumentIndex {
        items: vec![d.clone()],
        budget_bytes: None,
    };
    store
        .set_document_index(&index, chrono::Utc::now())
        .expect("index");
    let w = work(&d);
    let chunk = DOCUMENT_CHUNK_BYTES as usize;
    store
        .append_document_range(&w, 0, &bytes[..chunk])
        .expect("first range");
    // A range that does not follow the last one kept is refused.
    assert!(store
        .append_document_range(&w, 2 * DOCUMENT_CHUNK_BYTES, &bytes[2 * chunk..])
        .is_err());
    // A write torn by a crash leaves a partial record: it does not count.
    let files = files_under(&tmp.path().join("documents"));
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".part"));
    assert!(
        !files[0].to_string_lossy().contains(&d.sha256),
        "the file name does not tell the content's hash"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&files[0])
        .expect("open")
        .write_all(&[0u8; 100])
        .expect("torn");
    let row = store
        .document(&d.id.to_string())
        .expect("read")
        .expect("listed");
    assert_eq!(
        (row.received, row.available_offline),
        (DOCUMENT_CHUNK_BYTES, false)
    );
    let out = tmp.path().join("early.pdf");
    assert!(matches!(
        store.export_document(&w.id, &out, chrono::Utc::now()),
        Err(StoreError::DocumentNotCached(_))
    ));
    assert!(!out.exists());
    // Resume at the next range.
    store
        .append_document_range(&w, DOCUMENT_CHUNK_BYTES, &bytes[chunk..2 * chunk])
        .expect("second range");
    store
        .append_document_range(&w, 2 * DOCUMENT_CHUNK_BYTES, &bytes[2 * chunk..])
        .expect("last range");
    store.finish_document(&w).expect("finished");
    for f in files_under(tmp.path()) {
        let on_disk = std::fs::read(&f).expect("read");
        assert!(
            !on_disk.windows(14).any(|x| x == b"AT-REST-MARKER"),
            "plaintext in {}",
            f.display()
        );
    }
    store
        .export_document(&w.id, &out, chrono::Utc::now())
        .expect("export");
    assert!(std::fs::read(&out).expect("exported") == bytes);
}

#[test]
fn a_damaged_or_swapped_document_file_is_refused_and_no_longer_counts_as_here() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut store = new_store(tmp.path());
    let (a, b) = (bytes_with("A", 5000), bytes_with("B", 5000));
    let (da, db) = (info(Uuid::new_v4(), &a), info(Uuid::new_v4(), &b));
    let index = DocumentIndex {
        items: vec![da.clone(), db.clone()],
        budget_bytes: None,
    };
    store
        .set_document_index(&index, chrono::Utc::now())
        .expect("index");
    cache(&mut store, &da, &a);
    let before = files_under(&tmp.path().join("documents"));
    cache(&mut store, &db, &b);
    let after = files_under(&tmp.path().join("documents"));
    let file_a = before[0].clone();
    let file_b = after
        .iter()
        .find(|p| **p != file_a)
        .expect("b's file")
        .clone();

    // B's file replaced by A's (same size): its records do not decrypt as B's.
    std::fs::copy(&file_a, &file_b).expect("swap");
    let out = tmp.path().join("b.pdf");
    let id_b = db.id.to_string();
    assert!(matches!(
        store.export_document(&id_b, &out, chrono::Utc::now()),
        Err(StoreError::DocumentDamaged(_))
    ));
    assert!(!out.exists(), "nothing written");
    let row = store.document(&id_b).expect("read").expect("listed");
    assert!(!row.available_offline, "fetched again on the next sync");
    assert!(!file_b.exists(), "the damaged file is deleted");

    // One flipped byte in A's file.
    let mut raw = std::fs::read(&file_a).expect("read");
    raw[40] ^= 1;
    std::fs::write(&file_a, raw).expect("write");
    assert!(matches!(
        store.document_bytes(&da.id.to_string(), chrono::Utc::now()),
        Err(StoreError::DocumentDamaged(_))
    ));
}

#[test]
fn documents_no_longer_in_the_index_are_deleted_with_their_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut store = new_store(tmp.path());
    let bytes = bytes_with("GONE", 3000);
    let d = info(Uuid::new_v4(), &bytes);
    let index = DocumentIndex {
        items: vec![d.clone()],
        budget_bytes: None,
    };
    store
        .set_document_index(&index, chrono::Utc::now())
        .expect("index");
    cache(&mut store, &d, &bytes);
    assert_eq!(files_under(&tmp.path().join("documents")).len(), 1);
    let deleted = store
        .set_document_index(&DocumentIndex::default(), chrono::Utc::now())
        .expect("empty index");
    assert_eq!(deleted, 1);
    assert!(store.all_documents().expect("list").is_empty());
    assert!(files_under(&tmp.path().join("documents")).is_empty());
}
