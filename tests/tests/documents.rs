//! Technical manuals offline (issue 22): documents an administrator adds on the server
//! (`outpost-server documents add`), linked to an equipment model, an asset or an
//! order, reach the devices whose open orders need them, are kept encrypted within a
//! budget, and are read (`outpost documents export`) with the network cut.
//!
//! Everything here is real: the `outpost-server` binary on a loopback port with its
//! SQLite database and documents directory, the `outpost` binary on its own encrypted
//! data directory, HTTP in between.

#![allow(clippy::unwrap_used)]
// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

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
    let d = Device::primed(&server.url, user).await;
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
    let id = add_for_order(&server, &order, &file);

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
    let id = add_for_order(&server, &order, &file);
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

// ---- item 2, continued: versions, the budget, scope, resuming ----------------------

/// A signed-in, synced device of `user`.
async fn synced_device(server_url: &str, user: &str) -> Device {
    let d = Device::primed(server_url, user).await;
    d
}

/// `documents add` linking `file` to `order`; the document's id.
fn add_for_order(server: &Server, order: &str, file: &Path) -> String {
    added_id(&server.admin(
        &["documents", "add", "--order", order, file.to_str().unwrap()],
        None,
    ))
}

/// The document `id` as `dev` shows it on `order`.
fn shown(dev: &Device, order: &str, id: &str) -> outpost_core::documents::DocumentView {
    dev.app
        .order_documents(order)
        .unwrap()
        .into_iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("order {order} shows document {id}"))
}

/// Files under the device's documents directory (whole or partial).
fn document_files(dev: &Device) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dev.dir.path().join("documents")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

/// Export `id` from `dev` and read it back.
fn exported(dev: &mut Device, id: &str) -> Vec<u8> {
    let out = dev
        .dir
        .path()
        .join(format!("export-{}", uuid::Uuid::new_v4()));
    dev.app.export_document(id, &out).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_version_on_the_server_replaces_the_old_one_on_the_device() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let mut dev = synced_device(&server.url, "tech1").await;
    let order = dev.order_id(|o| !o.status.is_terminal());
    let first = document_bytes("VERSION-ONE", 1_500_000);
    let dir1 = tmp.path().join("v1");
    std::fs::create_dir_all(&dir1).unwrap();
    let id = add_for_order(&server, &order, &file_in(&dir1, "manual.pdf", &first));
    dev.sync().await.unwrap();
    assert_eq!(exported(&mut dev, &id), first);
    assert_eq!(shown(&dev, &order, &id).version, 1);

    // The same name and links: a new version of the same document.
    let second = document_bytes("VERSION-TWO", 900_000);
    let dir2 = tmp.path().join("v2");
    std::fs::create_dir_all(&dir2).unwrap();
    let out = server.admin(
        &[
            "documents",
            "add",
            "--order",
            &order,
            file_in(&dir2, "manual.pdf", &second).to_str().unwrap(),
        ],
        None,
    );
    assert!(out.contains("version 2") && out.contains(&id), "{out}");
    dev.sync().await.unwrap();
    let doc = shown(&dev, &order, &id);
    assert_eq!(
        (doc.version, doc.size, doc.available_offline),
        (2, 900_000, true)
    );
    assert_eq!(exported(&mut dev, &id), second);
    assert_eq!(
        document_files(&dev).len(),
        1,
        "the old version's file is gone"
    );
    assert!(files_holding(dev.dir.path(), b"VERSION-").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_budget_evicts_the_least_recently_needed_documents_but_never_todays() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let mut dev = synced_device(&server.url, "tech1").await;
    let now = chrono::Utc::now();
    let today = dev.order_id(|o| {
        !o.status.is_terminal()
            && o.scheduled
                .as_ref()
                .is_some_and(|w| w.start < now + chrono::Duration::hours(20))
    });
    let later: Vec<String> = dev
        .app
        .orders()
        .unwrap()
        .into_iter()
        .filter(|r| {
            !r.order.status.is_terminal()
                && r.order
                    .scheduled
                    .as_ref()
                    .is_some_and(|w| w.start > now + chrono::Duration::days(2))
        })
        .map(|r| r.order.id.to_string())
        .take(2)
        .collect();
    assert_eq!(later.len(), 2, "two orders of later days");
    let mut ids = Vec::new();
    for (i, order) in [&today, &later[0], &later[1]].into_iter().enumerate() {
        let d = tmp.path().join(format!("d{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let bytes = document_bytes(&format!("BUDGET-{i}"), 300_000);
        ids.push(add_for_order(
            &server,
            order,
            &file_in(&d, "manual.pdf", &bytes),
        ));
    }
    dev.sync().await.unwrap();
    for (i, order) in [&today, &later[0], &later[1]].into_iter().enumerate() {
        assert!(
            shown(&dev, order, &ids[i]).available_offline,
            "all fit 500 MB"
        );
    }
    // The first later one was opened more recently than the second.
    exported(&mut dev, &ids[2]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    exported(&mut dev, &ids[1]);

    // Room for two: today's, and the most recently needed of the others.
    dev.app.set_documents_budget(Some(700_000)).unwrap();
    dev.sync().await.unwrap();
    assert!(shown(&dev, &today, &ids[0]).available_offline);
    assert!(shown(&dev, &later[0], &ids[1]).available_offline);
    let evicted = shown(&dev, &later[1], &ids[2]);
    assert!(
        !evicted.available_offline && evicted.over_budget,
        "{evicted:?}"
    );
    assert_eq!(document_files(&dev).len(), 2, "the evicted file is deleted");
    assert!(dev.app.local_status().unwrap().documents_note.is_some());

    // Today's alone exceed the budget: kept, with a warning.
    dev.app.set_documents_budget(Some(100_000)).unwrap();
    dev.sync().await.unwrap();
    assert!(
        shown(&dev, &today, &ids[0]).available_offline,
        "today's stays"
    );
    assert!(!shown(&dev, &later[0], &ids[1]).available_offline);
    let note = dev.app.local_status().unwrap().documents_note.unwrap();
    assert!(note.contains("today's orders"), "{note}");
    assert_eq!(document_files(&dev).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_of_an_order_reassigned_to_someone_else_leave_the_device() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let mut tech1 = synced_device(&server.url, "tech1").await;
    let order = tech1.order_id(|o| !o.status.is_terminal());
    let bytes = document_bytes("REASSIGNED-MARKER", 200_000);
    let id = add_for_order(&server, &order, &file_in(tmp.path(), "r.pdf", &bytes));
    tech1.sync().await.unwrap();
    assert!(shown(&tech1, &order, &id).available_offline);

    let mut dispatcher = synced_device(&server.url, "dispatcher").await;
    dispatcher.app.assign_order(&order, "tech2").unwrap();
    dispatcher.sync().await.unwrap();
    tech1.sync().await.unwrap();
    assert!(tech1.app.store().all_documents().unwrap().is_empty());
    assert!(document_files(&tech1).is_empty(), "its file is deleted");
    // The new assignee gets it.
    let tech2 = synced_device(&server.url, "tech2").await;
    assert!(shown(&tech2, &order, &id).available_offline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_midway_resumes_where_it_stopped() {
    use outpost_tests::http_faults::{Action, Endpoint, HttpProxy, Rule};
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let proxy = HttpProxy::start(server.addr).await;
    let mut dev = synced_device(&proxy.url(), "tech1").await;
    let order = dev.order_id(|o| !o.status.is_terminal());
    // Four ranges of 1 MiB (the last shorter).
    let bytes = document_bytes("RESUMED-MARKER", 3_500_000);
    let id = add_for_order(&server, &order, &file_in(tmp.path(), "big.pdf", &bytes));

    // The index, the first range, then the second range's answer is cut.
    proxy.reset_counts();
    proxy.rule(Rule::once(
        Endpoint::Documents,
        3,
        Action::ResetMidResponse { after: 4096 },
    ));
    dev.sync().await.unwrap();
    let doc = shown(&dev, &order, &id);
    assert!(!doc.available_offline);
    assert_eq!(doc.received, 1024 * 1024, "the first range is kept");
    assert!(files_holding(dev.dir.path(), b"RESUMED-MARKER").is_empty());

    // The next sync asks only for the rest: the index and three ranges.
    proxy.reset_counts();
    dev.sync().await.unwrap();
    assert_eq!(proxy.count(Endpoint::Documents), 4, "{:?}", proxy.seen());
    assert!(shown(&dev, &order, &id).available_offline);
    assert_eq!(exported(&mut dev, &id), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_sync_fetches_the_documents_after_the_orders_and_before_the_inventory_catalogue() {
    use outpost_tests::http_faults::{Endpoint, HttpProxy};
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let order = open_order_of(&server, "tech1").await;
    let bytes = document_bytes("PRIMING-MARKER", 50_000);
    let id = add_for_order(&server, &order, &file_in(tmp.path(), "p.pdf", &bytes));
    let proxy = HttpProxy::start(server.addr).await;
    let mut dev = Device::new();
    dev.login(&proxy.url(), "tech1").await;
    // Small pages: the inventory (200 items) takes several.
    dev.sync_with(outpost_core::PassOptions {
        pull_limit: Some(50),
        ..outpost_core::PassOptions::default()
    })
    .await
    .unwrap();
    let seen = proxy.seen();
    let first_document = seen
        .iter()
        .position(|s| s.endpoint == Endpoint::Documents)
        .expect("documents were asked for");
    let pulls_after = seen[first_document..]
        .iter()
        .filter(|s| s.endpoint == Endpoint::Pull)
        .count();
    assert!(
        pulls_after >= 2,
        "the inventory's pages come after the documents: {seen:?}"
    );
    assert!(shown(&dev, &order, &id).available_offline);
    assert_eq!(dev.app.inventory_count().unwrap(), 200);
}

// ---- item 3's first step: the bytes for the viewer ---------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_gets_a_cached_documents_bytes_with_the_network_cut_and_a_clear_error_otherwise()
{
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&small_fleet(tmp.path()), &[]);
    let mut dev = synced_device(&server.url, "tech1").await;
    let order = dev.order_id(|o| !o.status.is_terminal());
    let bytes = document_bytes("VIEWER-MARKER", 1_200_000);
    let id = add_for_order(&server, &order, &file_in(tmp.path(), "view.pdf", &bytes));
    let missing = dev.app.document_content(&id).unwrap_err();
    assert_eq!(missing.code(), "not_found", "{missing}");
    assert!(
        missing.to_string().contains("not on this device"),
        "{missing}"
    );
    dev.sync().await.unwrap();
    server.kill();
    let content = dev.app.document_content(&id).unwrap();
    assert_eq!(
        (
            content.name.as_str(),
            content.media_type.as_str(),
            content.size
        ),
        ("view.pdf", "application/pdf", bytes.len() as u64)
    );
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&content.data_base64)
        .unwrap();
    assert!(decoded == bytes, "the viewer gets the document's own bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_wait_for_a_better_connection_when_the_bandwidth_setting_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let mut dev = synced_device(&server.url, "tech1").await;
    let order = dev.order_id(|o| !o.status.is_terminal());
    let bytes = document_bytes("METERED-MARKER", 100_000);
    let id = add_for_order(&server, &order, &file_in(tmp.path(), "m.pdf", &bytes));
    // The setting that keeps photos for a better link (a metered connection).
    dev.app.set_defer_photos(true).unwrap();
    dev.sync().await.unwrap();
    let doc = shown(&dev, &order, &id);
    assert!(!doc.available_offline && doc.received == 0, "{doc:?}");
    let note = dev.app.local_status().unwrap().documents_note.unwrap();
    assert!(note.contains("wait for a better connection"), "{note}");
    assert!(document_files(&dev).is_empty());

    dev.app.set_defer_photos(false).unwrap();
    dev.sync().await.unwrap();
    assert!(shown(&dev, &order, &id).available_offline);
    assert_eq!(dev.app.local_status().unwrap().documents_note, None);
}
