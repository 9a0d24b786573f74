//! The previous release's client against this server: a fleet is never upgraded at
//! once (docs/protocol.md, "Compatibility").
//!
//! Release 0.1.0's `outpost` binary is built once by `scripts/prev-release.sh` (which
//! `make test` runs and which prints its path); the tests find it through
//! `OUTPOST_PREV_OUTPOST`. They are ignored in a plain `cargo test` (listed with the
//! reason); `make test` runs them with `--include-ignored`, and asked for without the
//! binary they fail, saying how to build it. The old client runs as a person would run
//! it, on its own encrypted data directory, against a real server through the
//! fault-injecting proxy.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use outpost_protocol::Mutation;
use outpost_tests::{random_key, small_fleet, Device, Fault, Proxy, Server, DEMO_PASSWORD};

/// Why the previous-release tests are ignored unless asked for.
const NEEDS_PREV: &str = "needs release 0.1.0's client: export OUTPOST_PREV_OUTPOST=$(scripts/prev-release.sh), then --include-ignored (make test does)";

/// The previous release's `outpost`. Only ignored tests ask for it, so a test that
/// runs without it was asked to run and fails, saying how to build it.
fn prev_outpost() -> PathBuf {
    match std::env::var_os("OUTPOST_PREV_OUTPOST") {
        Some(p) if Path::new(&p).is_file() => PathBuf::from(p),
        Some(p) => panic!("OUTPOST_PREV_OUTPOST names {p:?}, which is not a file: {NEEDS_PREV}"),
        None => panic!("OUTPOST_PREV_OUTPOST is not set: {NEEDS_PREV}"),
    }
}

/// Release 0.1.0's CLI on its own data directory.
struct OldClient {
    bin: PathBuf,
    dir: PathBuf,
    key: String,
}

impl OldClient {
    fn new(bin: &Path, dir: PathBuf) -> OldClient {
        OldClient {
            bin: bin.to_path_buf(),
            dir,
            key: random_key(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env("OUTPOST_DB_KEY", &self.key)
            .env_remove("OUTPOST_SERVER_URL")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run the 0.1.0 client")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "outpost 0.1.0 {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("JSON output")
    }

    fn login(&self, url: &str, user: &str) {
        let mut child = self
            .cmd(&[
                "login",
                "--server",
                url,
                "--username",
                user,
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the 0.1.0 client");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            writeln!(stdin, "{DEMO_PASSWORD}").expect("password");
        }
        let out = child.wait_with_output().expect("login");
        assert!(
            out.status.success(),
            "outpost 0.1.0 signs in as {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn first_open_order(orders: &serde_json::Value) -> String {
    orders
        .as_array()
        .expect("a list")
        .iter()
        .find(|o| o["status"] == "scheduled")
        .expect("an open order")["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs release 0.1.0's client: export OUTPOST_PREV_OUTPOST=$(scripts/prev-release.sh), then --include-ignored (make test does)"]
async fn release_0_1_0_signs_in_pulls_pushes_and_resends_a_sealed_row_to_this_server() {
    let prev = prev_outpost();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let proxy = Proxy::start(server.addr).await;
    let old = OldClient::new(&prev, tmp.path().join("old-tech1"));
    assert!(old.ok(&["--version"]).contains("0.1.0"));

    // Sign in and pull.
    old.login(&proxy.url(), "tech1");
    old.ok(&["sync"]);
    let orders = old.json(&["orders", "list"]);
    assert!(
        !orders.as_array().unwrap().is_empty(),
        "tech1's orders arrived"
    );
    let id = first_open_order(&orders);

    // Push, and lose the reply after the server committed: the row stays sealed.
    old.ok(&["orders", "edit", &id, "--title", "Edited by 0.1.0"]);
    proxy.set(Fault::DropReplies);
    assert!(!old.run(&["sync"]).status.success(), "the reply was lost");
    proxy.set(Fault::None);
    let queued = old.json(&["outbox", "list"]);
    assert_eq!(queued.as_array().unwrap().len(), 1);
    assert_eq!(queued[0]["state"], "sent", "sealed before it left");
    let dispatcher = Device::primed(&proxy.url(), "dispatcher").await;
    assert_eq!(
        dispatcher.app.order(&id).unwrap().order.title,
        "Edited by 0.1.0",
        "the server applied it"
    );

    // The sealed bytes as 0.1.0 wrote them (read from a copy of its data directory with
    // this build's store) re-serialize byte for byte here: a server of this build hashes
    // them as release 0.1.0's server did, so an upgrade between send and resend still
    // answers `duplicate`.
    let copy = tmp.path().join("old-tech1-copy");
    copy_dir(&old.dir, &copy);
    let reader = outpost_core::Outpost::open(Device::options(&copy, &old.key)).unwrap();
    let sealed = reader.outbox().unwrap().remove(0).body;
    let parsed: Mutation = serde_json::from_str(&sealed).unwrap();
    assert_eq!(
        String::from_utf8(parsed.to_body().unwrap()).unwrap(),
        sealed,
        "a 0.1.0 body re-serializes byte for byte"
    );
    drop(reader);

    // Resend: a duplicate (the recorded first outcome), not `mutation_id_reused`.
    old.ok(&["sync"]);
    assert_eq!(old.json(&["outbox", "list"]), serde_json::json!([]));
    assert_eq!(old.json(&["failed", "list"]), serde_json::json!([]));
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", server.url))
        .bearer_auth(outpost_tests::METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("outpost_push_mutations_total{outcome=\"duplicate\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs release 0.1.0's client: export OUTPOST_PREV_OUTPOST=$(scripts/prev-release.sh), then --include-ignored (make test does)"]
async fn release_0_1_0_reads_conflicts_made_by_this_release_without_stalling() {
    let prev = prev_outpost();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let proxy = Proxy::start(server.addr).await;
    // A technician on this release (its mutations carry protocol 2's `base_epoch`).
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let id = tech.order_id(|o| o.status == outpost_protocol::Status::Scheduled);
    // A dispatcher on 0.1.0 retitles it; the technician, not synced since, too.
    let old = OldClient::new(&prev, tmp.path().join("old-dispatcher"));
    old.login(&proxy.url(), "dispatcher");
    old.ok(&["sync"]);
    old.ok(&["orders", "edit", &id, "--title", "Dispatcher on 0.1.0"]);
    old.ok(&["sync"]);
    tech.app
        .edit_order(
            &id,
            outpost_core::OrderEdit {
                title: Some("Technician on this release".into()),
                ..outpost_core::OrderEdit::default()
            },
        )
        .unwrap();
    let queued = tech.app.outbox().unwrap();
    assert!(
        queued[0].mutation.base_epoch.is_some(),
        "the conflict will carry a member 0.1.0 refuses unless the server leaves it out"
    );
    let report = tech.sync().await.unwrap();
    assert_eq!(report.conflicts, 1, "{report:?}");
    // The old dispatcher pulls the conflict (its mutation shaped for protocol 1) and
    // keeps syncing.
    old.ok(&["sync"]);
    let conflicts = old.json(&["conflicts", "list"]);
    assert_eq!(conflicts.as_array().unwrap().len(), 1, "{conflicts}");
    assert!(conflicts.to_string().contains("Technician on this release"));
    old.ok(&["sync"]);
}

/// Issue 22: documents are served outside the pull (their own endpoints, which a
/// 0.1.0 client never calls), so a server holding documents for the old client's
/// orders changes nothing for it: it primes, pulls and pushes as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs release 0.1.0's client: export OUTPOST_PREV_OUTPOST=$(scripts/prev-release.sh), then --include-ignored (make test does)"]
async fn release_0_1_0_syncs_while_documents_exist_for_its_orders() {
    let prev = prev_outpost();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    // A document for one of tech1's orders, and one for a model on many of them.
    let mut reader = Device::primed(&server.url, "tech1").await;
    let order = reader
        .app
        .order(&reader.order_id(|o| !o.status.is_terminal()))
        .unwrap();
    let manual = tmp.path().join("manual.pdf");
    std::fs::write(&manual, b"%PDF-1.4 a manual").unwrap();
    let id = order.order.id.to_string();
    server.admin(
        &["documents", "add", "--order", &id, manual.to_str().unwrap()],
        None,
    );
    server.admin(
        &[
            "documents",
            "add",
            "--model",
            &order.order.equipment.model,
            manual.to_str().unwrap(),
        ],
        None,
    );

    let old = OldClient::new(&prev, tmp.path().join("old-tech1"));
    old.login(&server.url, "tech1");
    old.ok(&["sync"]);
    let orders = old.json(&["orders", "list"]);
    assert!(orders.to_string().contains(&id), "the order arrived");
    old.ok(&[
        "orders",
        "edit",
        &id,
        "--title",
        "Edited by 0.1.0 beside documents",
    ]);
    old.ok(&["sync"]);
    assert_eq!(old.json(&["outbox", "list"]), serde_json::json!([]));
    assert_eq!(old.json(&["failed", "list"]), serde_json::json!([]));
    // A device of this release sees the edit and the documents.
    reader.sync().await.unwrap();
    assert_eq!(
        reader.app.order(&id).unwrap().order.title,
        "Edited by 0.1.0 beside documents"
    );
    assert!(!reader.app.order_documents(&id).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs release 0.1.0's client: export OUTPOST_PREV_OUTPOST=$(scripts/prev-release.sh), then --include-ignored (make test does)"]
async fn a_release_the_server_no_longer_serves_is_told_to_update_outpost_and_keeps_its_work() {
    let prev = prev_outpost();
    let tmp = tempfile::tempdir().unwrap();
    let db = small_fleet(tmp.path());
    let mut server = Server::start(&db, &[]);
    let proxy = Proxy::start(server.addr).await;
    let old = OldClient::new(&prev, tmp.path().join("old-tech1"));
    old.login(&proxy.url(), "tech1");
    old.ok(&["sync"]);
    let id = first_open_order(&old.json(&["orders", "list"]));
    old.ok(&["orders", "edit", &id, "--note", "written on 0.1.0"]);
    // The administrator stops serving protocol 1.
    server.kill();
    let server = Server::start(&db, &["--min-protocol", "2"]);
    proxy.set_upstream(server.addr);
    let out = old.run(&["sync"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("update Outpost"), "a clear answer: {err}");
    assert_eq!(
        old.json(&["outbox", "list"]).as_array().unwrap().len(),
        1,
        "the work stays queued"
    );
}
