//! The fuzz targets' seed corpus (fuzz/corpus/, issue 17 item 2) is real wire traffic:
//! each file decodes as the type its name says. If the wire format changes, this test
//! says which seeds to record again (the corpus is only useful while libFuzzer starts
//! from documents the decoders accept).

use std::path::{Path, PathBuf};

use outpost_protocol::wire::{
    AttachmentStatus, BatchUploadRequest, BatchUploadResponse, PullRequest, PullResponse,
    PushRequest, PushResponse,
};
use serde::de::DeserializeOwned;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../fuzz/corpus")
    .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} has no seeds", dir.display());
    files
}

fn decodes<T: DeserializeOwned>(path: &Path) {
    let bytes = std::fs::read(path).expect("a seed file");
    if let Err(e) = serde_json::from_slice::<T>(&bytes) {
        panic!(
            "{} does not decode as {}: {e}",
            path.display(),
            std::any::type_name::<T>()
        );
    }
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn every_push_seed_is_a_push_request_or_its_answer() {
    for f in corpus("push_request") {
        if name(&f).starts_with("answer-") {
            decodes::<PushResponse>(&f);
        } else {
            decodes::<PushRequest>(&f);
        }
    }
}

#[test]
fn every_pull_seed_is_a_pull_request_or_a_page() {
    for f in corpus("pull") {
        if name(&f).starts_with("answer-") {
            decodes::<PullResponse>(&f);
        } else {
            decodes::<PullRequest>(&f);
        }
    }
}

#[test]
fn every_attachment_seed_is_an_upload_or_its_answer() {
    for f in corpus("attachments") {
        match name(&f).as_str() {
            "answer-status.json" => decodes::<AttachmentStatus>(&f),
            n if n.starts_with("answer-") => decodes::<BatchUploadResponse>(&f),
            _ => decodes::<BatchUploadRequest>(&f),
        }
    }
}
