//! Technical documents (issue 22) on both backends: `outpost-server documents add`,
//! `list` and `remove` run as real processes on the test server's database, and the
//! index and bytes read over HTTP: who may read what (404 for everyone else, so a
//! document's existence does not leak), byte ranges with the SHA-256 as `ETag`, new
//! versions, the size limit.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)]

mod common;

use common::process::{run, run_ok};
use common::*;
use outpost_protocol::wire::*;
use outpost_protocol::*;

both!(
    a_document_is_read_by_those_whose_orders_it_is_linked_to_and_staff_and_is_404_for_anyone_else,
    document_bytes_come_by_range_with_their_sha256_as_etag_from_the_row_or_the_file,
    a_file_with_the_same_name_and_links_is_a_new_version_and_a_removed_document_is_gone,
    a_document_past_the_size_limit_is_refused_with_a_clear_message_and_nothing_kept,
    staff_add_documents_over_http_within_the_size_limit,
);

/// A server whose documents live in its own directory (for the in-process server and
/// the `documents` commands alike), with `inline_max` as the row threshold.
async fn server(kind: Kind, inline_max: u64) -> (TestServer, tempfile::TempDir) {
    let docs = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.documents = outpost_server::documents::Storage {
        dir: docs.path().to_path_buf(),
        inline_max,
        ..outpost_server::documents::Storage::default()
    };
    (TestServer::start_with(kind, cfg).await, docs)
}

/// `documents add` on `s`'s database with `links` (`--model X`, …); the new id.
fn add(s: &TestServer, docs: &tempfile::TempDir, file: &std::path::Path, links: &[&str]) -> String {
    let dir = docs.path().to_str().unwrap();
    let inline = s.cfg.documents.inline_max.to_string();
    let mut args = vec![
        "documents",
        "add",
        "--db",
        &s.url,
        "--documents-dir",
        dir,
        "--inline-max-bytes",
        &inline,
    ];
    args.extend_from_slice(links);
    args.push(file.to_str().unwrap());
    let out = run_ok(&args, "");
    out.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-'))
        .find(|w| w.len() == 36 && uuid::Uuid::parse_str(w).is_ok())
        .unwrap_or_else(|| panic!("no id in {out}"))
        .to_owned()
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The ids in `who`'s index.
async fn index_of(who: &Session) -> DocumentIndex {
    let resp = who.get(paths::DOCUMENTS).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn content(who: &Session, id: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut rb = who.get(&format!("{}/{id}/content", paths::DOCUMENTS));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

/// An order assigned to `assignee` with `equipment`.
async fn order_with(dispatcher: &Session, assignee: &str, equipment: Equipment) -> WorkOrder {
    let o = dispatcher.create_order(Some(assignee)).await;
    let m = dispatcher.mutation(
        o.id,
        MutationKind::Update,
        o.version,
        vec![Op::Set(SetOp::Equipment(equipment))],
    );
    match dispatcher.push1(m).await {
        PushOutcome::Applied(a) => a.order.expect("the order"),
        other => panic!("{other:?}"),
    }
}

fn hx200(asset: &str) -> Equipment {
    Equipment {
        model: "HX-200".into(),
        asset_tag: asset.into(),
        serial: String::new(),
    }
}

async fn a_document_is_read_by_those_whose_orders_it_is_linked_to_and_staff_and_is_404_for_anyone_else(
    kind: Kind,
) {
    let (s, docs) = server(kind, 1024 * 1024).await;
    let dispatcher = s.login("dispatcher").await;
    let (tech1, tech2) = (s.login("tech1").await, s.login("tech2").await);
    let a = order_with(&dispatcher, "tech1", hx200("AT-1")).await;
    let b = order_with(&dispatcher, "tech2", Equipment::default()).await;
    let files = tempfile::tempdir().unwrap();
    let by_model = add(
        &s,
        &docs,
        &write(files.path(), "model.pdf", b"model"),
        &["--model", "HX-200"],
    );
    let by_asset = add(
        &s,
        &docs,
        &write(files.path(), "asset.txt", b"asset"),
        &["--asset", "AT-1"],
    );
    let b_id = b.id.to_string();
    let by_order = add(
        &s,
        &docs,
        &write(files.path(), "order.png", b"order"),
        &["--order", &b_id],
    );

    let mine = index_of(&tech1).await;
    let ids: Vec<String> = mine.items.iter().map(|d| d.id.to_string()).collect();
    assert!(
        ids.contains(&by_model) && ids.contains(&by_asset),
        "{mine:?}"
    );
    assert!(!ids.contains(&by_order), "{mine:?}");
    assert!(
        mine.items.iter().all(|d| d.orders == vec![a.id]),
        "{mine:?}"
    );
    let model = mine
        .items
        .iter()
        .find(|d| d.id.to_string() == by_model)
        .unwrap();
    assert_eq!(
        (model.media_type.as_str(), model.size, model.version),
        ("application/pdf", 5, 1)
    );
    let theirs = index_of(&tech2).await;
    assert_eq!(
        theirs
            .items
            .iter()
            .map(|d| d.id.to_string())
            .collect::<Vec<_>>(),
        vec![by_order.clone()]
    );

    let ok = content(&tech1, &by_asset, &[]).await;
    assert_eq!(ok.status(), 200);
    // Bytes, never the document's own type (a document is untrusted input).
    assert_eq!(ok.headers()["content-type"], "application/octet-stream");
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    assert_eq!(ok.bytes().await.unwrap().as_ref(), b"asset");
    // Not linked to any of their orders, or no such document: the same 404.
    for (who, id) in [(&tech1, by_order.as_str()), (&tech2, by_model.as_str())] {
        let (status, body) = error_of(content(who, id, &[]).await).await;
        assert_eq!((status, body.code), (404, ErrorCode::NotFound));
        assert_eq!(body.message, "no such document");
    }
    let (status, body) =
        error_of(content(&tech1, &uuid::Uuid::new_v4().to_string(), &[]).await).await;
    assert_eq!((status, body.message.as_str()), (404, "no such document"));
    // Staff read them all.
    assert_eq!(content(&dispatcher, &by_order, &[]).await.status(), 200);
    assert_eq!(
        content(&s.login("admin").await, &by_model, &[])
            .await
            .status(),
        200
    );
    // A completed order's documents leave the index (devices drop them).
    let done = dispatcher.mutation(
        a.id,
        MutationKind::Cancel,
        a.version + 1,
        vec![Op::Set(SetOp::Status(Status::Cancelled))],
    );
    let _ = dispatcher.push1(done).await;
    let after: Vec<String> = index_of(&tech1)
        .await
        .items
        .iter()
        .map(|d| d.id.to_string())
        .collect();
    assert!(after.is_empty(), "{after:?}");
}

async fn document_bytes_come_by_range_with_their_sha256_as_etag_from_the_row_or_the_file(
    kind: Kind,
) {
    // Files over 1 000 bytes go to the documents directory.
    let (s, docs) = server(kind, 1000).await;
    let dispatcher = s.login("dispatcher").await;
    let tech1 = s.login("tech1").await;
    order_with(&dispatcher, "tech1", hx200("AT-9")).await;
    let files = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let small = b"small manual".to_vec();
    let big_id = add(
        &s,
        &docs,
        &write(files.path(), "big.pdf", &big),
        &["--model", "HX-200"],
    );
    let small_id = add(
        &s,
        &docs,
        &write(files.path(), "small.pdf", &small),
        &["--asset", "AT-9"],
    );
    let sha = outpost_protocol::attachment_hash(&big);
    assert_eq!(
        std::fs::read(docs.path().join(&sha[..2]).join(&sha)).unwrap(),
        big,
        "the large file is kept in the documents directory under its SHA-256"
    );
    for (id, bytes) in [(&big_id, &big), (&small_id, &small)] {
        let tag = format!("\"{}\"", outpost_protocol::attachment_hash(bytes));
        let whole = content(&tech1, id, &[]).await;
        assert_eq!(whole.status(), 200);
        assert_eq!(whole.headers()["etag"].to_str().unwrap(), tag);
        assert_eq!(whole.headers()["accept-ranges"], "bytes");
        assert_eq!(whole.bytes().await.unwrap().as_ref(), &bytes[..]);
        let part = content(&tech1, id, &[("range", "bytes=3-7"), ("if-range", &tag)]).await;
        assert_eq!(part.status(), 206);
        assert_eq!(
            part.headers()["content-range"].to_str().unwrap(),
            format!("bytes 3-7/{}", bytes.len())
        );
        assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[3..8]);
        let tail = content(&tech1, id, &[("range", "bytes=5-")]).await;
        assert_eq!(tail.status(), 206);
        assert_eq!(tail.bytes().await.unwrap().as_ref(), &bytes[5..]);
        // A range of another version: the whole (current) file.
        let stale = content(
            &tech1,
            id,
            &[("range", "bytes=3-7"), ("if-range", "\"old\"")],
        )
        .await;
        assert_eq!(stale.status(), 200);
        assert_eq!(stale.bytes().await.unwrap().len(), bytes.len());
        let past = format!("bytes={}-", bytes.len());
        let (status, body) = error_of(content(&tech1, id, &[("range", &past)]).await).await;
        assert_eq!((status, body.code), (416, ErrorCode::OutOfRange));
    }
}

async fn a_file_with_the_same_name_and_links_is_a_new_version_and_a_removed_document_is_gone(
    kind: Kind,
) {
    let (s, docs) = server(kind, 1000).await;
    let dispatcher = s.login("dispatcher").await;
    let tech1 = s.login("tech1").await;
    order_with(&dispatcher, "tech1", hx200("AT-2")).await;
    let (v1, v2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let id = add(
        &s,
        &docs,
        &write(v1.path(), "m.pdf", &[1u8; 5000]),
        &["--model", "HX-200"],
    );
    let old_sha = outpost_protocol::attachment_hash(&[1u8; 5000]);
    // Same name, other links: another document.
    let other = add(
        &s,
        &docs,
        &write(v1.path(), "m.pdf", b"x"),
        &["--asset", "AT-2"],
    );
    assert_ne!(id, other);
    let again = add(
        &s,
        &docs,
        &write(v2.path(), "m.pdf", &[2u8; 3000]),
        &["--model", "HX-200"],
    );
    assert_eq!(again, id, "the same document");
    let index = index_of(&tech1).await;
    let d = index.items.iter().find(|d| d.id.to_string() == id).unwrap();
    assert_eq!((d.version, d.size), (2, 3000));
    assert_eq!(
        content(&tech1, &id, &[])
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        &[2u8; 3000]
    );
    assert!(
        !docs.path().join(&old_sha[..2]).join(&old_sha).exists(),
        "the replaced file is deleted"
    );
    let listed = run_ok(&["documents", "list", "--db", &s.url], "");
    assert!(
        listed.contains(&id) && listed.contains("v2") && listed.contains("model:HX-200"),
        "{listed}"
    );

    let dir = docs.path().to_str().unwrap();
    run_ok(
        &[
            "documents",
            "remove",
            "--db",
            &s.url,
            "--documents-dir",
            dir,
            &id,
        ],
        "",
    );
    assert!(!index_of(&tech1)
        .await
        .items
        .iter()
        .any(|d| d.id.to_string() == id));
    assert_eq!(content(&tech1, &id, &[]).await.status(), 404);
    assert_eq!(content(&dispatcher, &id, &[]).await.status(), 404);
    let again = run(&["documents", "remove", "--db", &s.url, &id], "");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("no document"));
}

async fn a_document_past_the_size_limit_is_refused_with_a_clear_message_and_nothing_kept(
    kind: Kind,
) {
    let (s, docs) = server(kind, 10).await;
    let files = tempfile::tempdir().unwrap();
    let file = write(files.path(), "huge.pdf", &[0u8; 2000]);
    let dir = docs.path().to_str().unwrap();
    let out = run(
        &[
            "documents",
            "add",
            "--db",
            &s.url,
            "--documents-dir",
            dir,
            "--max-bytes",
            "1000",
            "--model",
            "HX-200",
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(!out.status.success());
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("up to 1000 bytes") && why.contains("--document-max-bytes"),
        "{why}"
    );
    assert_eq!(
        std::fs::read_dir(docs.path()).unwrap().count(),
        0,
        "nothing kept"
    );
    assert!(run_ok(&["documents", "list", "--db", &s.url], "")
        .trim()
        .is_empty());
}

async fn staff_add_documents_over_http_within_the_size_limit(kind: Kind) {
    let docs = tempfile::tempdir().unwrap();
    let mut cfg = test_config();
    cfg.documents = outpost_server::documents::Storage {
        dir: docs.path().to_path_buf(),
        inline_max: 100,
        max_bytes: 1000,
        device_budget: Some(123_456),
    };
    let s = TestServer::start_with(kind, cfg).await;
    let dispatcher = s.login("dispatcher").await;
    let tech1 = s.login("tech1").await;
    order_with(&dispatcher, "tech1", hx200("AT-3")).await;
    let upload = |who: &Session, query: &str, body: Vec<u8>| {
        who.post(&format!("{}?{query}", paths::DOCUMENTS))
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
    };
    let (status, body) = error_of(
        upload(&dispatcher, "name=big.pdf&model=HX-200", vec![0u8; 1001])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.code), (413, ErrorCode::PayloadTooLarge));
    assert!(
        body.message.contains("up to 1000 bytes"),
        "{}",
        body.message
    );
    let (status, _) = error_of(
        upload(&tech1, "name=t.pdf&model=HX-200", vec![1u8; 10])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = error_of(
        upload(&dispatcher, "name=t.pdf", vec![1u8; 10])
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "a document needs a link");
    let ok = upload(&dispatcher, "name=ok.pdf&model=HX-200", vec![7u8; 1000])
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let added: DocumentAdded = ok.json().await.unwrap();
    assert_eq!(
        (added.version, added.size, added.replaced),
        (1, 1000, false)
    );
    let again = upload(&dispatcher, "name=ok.pdf&model=HX-200", vec![8u8; 500])
        .await
        .unwrap();
    let again: DocumentAdded = again.json().await.unwrap();
    assert_eq!(
        (again.id, again.version, again.replaced),
        (added.id, 2, true)
    );
    let index = index_of(&tech1).await;
    assert_eq!(index.items.len(), 1);
    assert_eq!(
        index.budget_bytes,
        Some(123_456),
        "the administrator's budget"
    );
    let bytes = content(&tech1, &added.id.to_string(), &[])
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), &[8u8; 500]);
    // Only the current file is kept; no temporary file is left.
    let names = walk(docs.path());
    assert_eq!(names.len(), 1, "{names:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().display().to_string());
        }
    }
    out
}
