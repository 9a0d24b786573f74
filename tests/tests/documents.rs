//! Technical manuals offline (issue 22): documents an administrator adds on the server
//! (`outpost-server documents add`), linked to an equipment model, an asset or an
//! order, reach the devices whose open orders need them, are kept encrypted within a
//! budget, and are read (`outpost documents export`) with the network cut.
//!
//! Everything here is real: the `outpost-server` binary on a loopback port with its
//! SQLite database and documents directory, the `outpost` binary on its own encrypted
//! data directory, HTTP in between.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use outpost_protocol::wire::{paths, LoginRequest, TokenResponse, PROTOCOL_HEADER};
use outpost_protocol::PROTOCOL_VERSION;
use outpost_tests::cli::CliDevice;
use outpost_tests::{bin, small_fleet, Device, Server, DEMO_PASSWORD};

/// A document's bytes: `marker` in plain text, padded to `len` bytes, so that a grep of
/// a data directory for the marker finds any plaintext copy.
fn document_bytes(marker: &str, len: usize) -> Vec<u8> {
    let mut out = format!("%PDF-1.4\n% {marker}\n").into_bytes();
    let mut i = 0u32;
    while out.len() < len {
        out.extend_from_slice(format!("{marker} line {i}\n").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// Write `bytes` as `name` in `dir`.
fn file_in(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Sign in over HTTP as `user`; the access token.
async fn token(url: &str, user: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{url}{}", paths::LOGIN))
        .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
        .json(&LoginRequest {
            username: user.into(),
            password: DEMO_PASSWORD.into(),
            device_id: uuid::Uuid::new_v4(),
        })
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{user} signs in");
    resp.json::<TokenResponse>().await.unwrap().access_token
}

/// `GET path` as the holder of `token`, with extra headers.
async fn get(url: &str, path: &str, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut rb = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
        .bearer_auth(token);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

/// An open order of `user` (its id), read by a device of theirs.
async fn open_order_of(server: &Server, user: &str) -> String {
    let mut d = Device::new();
    d.login(&server.url, user).await;
    d.sync().await.unwrap();
    d.order_id(|o| !o.status.is_terminal())
}

/// The id `documents add` printed (its last word that parses as a UUID).
fn added_id(out: &str) -> String {
    out.split_whitespace()
        .rev()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-'))
        .find(|w| uuid::Uuid::parse_str(w).is_ok())
        .unwrap_or_else(|| panic!("documents add printed no id: {out}"))
        .to_owned()
}

// ---- item 1: documents on the server ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_added_on_the_server_is_served_to_the_technician_whose_order_needs_it_and_to_no_one_else(
) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let order = open_order_of(&server, "tech1").await;
    let bytes = document_bytes("SERVER-MANUAL-MARKER", 300_000);
    let file = file_in(tmp.path(), "pump-manual.pdf", &bytes);

    let out = server.admin(
        &[
            "documents",
            "add",
            "--order",
            &order,
            file.to_str().unwrap(),
        ],
        None,
    );
    let id = added_id(&out);
    let listed = server.admin(&["documents", "list"], None);
    assert!(
        listed.contains(&id) && listed.contains("pump-manual.pdf"),
        "documents list names it: {listed}"
    );

    // The technician's index names it, for that order.
    let tech1 = token(&server.url, "tech1").await;
    let index: serde_json::Value = get(&server.url, "/v1/documents", &tech1, &[])
        .await
        .json()
        .await
        .unwrap();
    let entry = index["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == id.as_str())
        .unwrap_or_else(|| panic!("tech1's index lists the document: {index}"));
    assert_eq!(entry["size"], bytes.len() as u64);
    assert_eq!(entry["sha256"], outpost_protocol::attachment_hash(&bytes));
    assert!(entry["orders"].to_string().contains(&order), "{entry}");

    // The bytes, whole and by range (a resumed download), with the SHA-256 as ETag.
    let content = format!("/v1/documents/{id}/content");
    let whole = get(&server.url, &content, &tech1, &[]).await;
    assert_eq!(whole.status(), 200);
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        etag,
        format!("\"{}\"", outpost_protocol::attachment_hash(&bytes))
    );
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &bytes[..]);
    let part = get(
        &server.url,
        &content,
        &tech1,
        &[("range", "bytes=100000-"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[100_000..]);

    // Another technician learns nothing of it: not in their index, 404 for the bytes.
    let tech2 = token(&server.url, "tech2").await;
    let theirs = get(&server.url, "/v1/documents", &tech2, &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!theirs.contains(&id), "tech2's index: {theirs}");
    assert_eq!(get(&server.url, &content, &tech2, &[]).await.status(), 404);
    // Staff read every document.
    let dispatcher = token(&server.url, "dispatcher").await;
    assert_eq!(
        get(&server.url, &content, &dispatcher, &[]).await.status(),
        200
    );

    // Removed: gone from the index and the bytes are 404.
    server.admin(&["documents", "remove", &id], None);
    let after = get(&server.url, "/v1/documents", &tech1, &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!after.contains(&id), "removed: {after}");
    assert_eq!(get(&server.url, &content, &tech1, &[]).await.status(), 404);
}

// ---- item 2: cached for the device's orders ----------------------------------------

/// `outpost documents list ORDER --json` on `dev`.
fn listed(dev: &CliDevice, order: &str) -> Vec<serde_json::Value> {
    dev.json(&["documents", "list", order])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_of_an_order_is_cached_on_the_device_encrypted_and_exported_with_the_network_cut(
) {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&small_fleet(tmp.path()), &[]);
    let order = open_order_of(&server, "tech1").await;
    let marker = "CACHED-MANUAL-MARKER";
    // Larger than a download chunk, so that it arrives in several ranges.
    let bytes = document_bytes(marker, 2_500_000);
    let file = file_in(tmp.path(), "hx-200.pdf", &bytes);
    let id = added_id(&server.admin(
        &[
            "documents",
            "add",
            "--order",
            &order,
            file.to_str().unwrap(),
        ],
        None,
    ));

    let dev = CliDevice::new("tech1", &bin("outpost"));
    dev.login(&server.url, "tech1");
    dev.ok(&["sync"]);
    let docs = listed(&dev, &order);
    let doc = docs
        .iter()
        .find(|d| d["id"] == id.as_str())
        .unwrap_or_else(|| panic!("the order lists the document: {docs:?}"));
    assert_eq!(doc["available_offline"], true, "{doc}");
    assert_eq!(doc["size"], bytes.len() as u64);

    // The bytes on disk are not the document's.
    let plain = files_holding(dev.dir.path(), marker.as_bytes());
    assert!(plain.is_empty(), "plaintext on disk: {plain:?}");

    // The network cut: the server is gone, the document still reads.
    server.kill();
    let out = tmp.path().join("exported.pdf");
    dev.ok(&[
        "documents",
        "export",
        &id,
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(std::fs::read(&out).unwrap() == bytes, "byte-identical");
}

// ---- item 4: the CLI ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_an_orders_documents_and_refuses_to_export_one_not_yet_on_the_device() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let order = open_order_of(&server, "tech1").await;
    let dev = CliDevice::new("tech1", &bin("outpost"));
    dev.login(&server.url, "tech1");
    dev.ok(&["sync"]);
    // Added after the device's last sync: known to no one on the device yet.
    let bytes = document_bytes("LATE-MARKER", 10_000);
    let file = file_in(tmp.path(), "late.txt", &bytes);
    let id = added_id(&server.admin(
        &[
            "documents",
            "add",
            "--order",
            &order,
            file.to_str().unwrap(),
        ],
        None,
    ));
    let out = tmp.path().join("late-exported.txt");
    let refused = dev.run(&[
        "documents",
        "export",
        &id,
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("not on this device"), "a clear reason: {why}");
    assert!(!out.exists(), "nothing written");

    dev.ok(&["sync"]);
    let text = dev.ok(&["documents", "list", &order]);
    assert!(
        text.contains("late.txt") && text.contains("available offline"),
        "{text}"
    );
    dev.ok(&[
        "documents",
        "export",
        &id,
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}
