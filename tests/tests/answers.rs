//! Bad answers from the server (issue 16, item 6): an answer cut short, malformed, of
//! another protocol version or enormous. Each gives the person a clear error, the
//! client's memory stays bounded (it caps the size of what it reads,
//! `outpost_protocol::limits::ANSWER_BYTES_MAX`, 64 MiB), and nothing saved is lost: once the
//! server answers well again, every change reaches it exactly once.
//!
//! The answers are made bad by the HTTP-aware fault proxy (`outpost_tests::http_faults`)
//! in front of a real server; the device is a real client on an encrypted store.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use outpost_core::OrderEdit;
use outpost_tests::http_faults::{Action, Endpoint, HttpProxy, Rule};
use outpost_tests::{notes_with, open_order, small_fleet, Device, Server};

/// A server on a small fleet, a proxy in front of it, and tech1 signed in through the
/// proxy and synced once.
async fn start() -> (tempfile::TempDir, Server, HttpProxy, Device) {
    let tmp = tempfile::tempdir().unwrap();
    let db = small_fleet(tmp.path());
    let server = Server::start(&db, &[]);
    let proxy = HttpProxy::start(server.addr).await;
    let mut tech = Device::new();
    tech.login(&proxy.url(), "tech1").await;
    tech.sync().await.expect("first sync");
    (tmp, server, proxy, tech)
}

/// Save a note with a text no other test uses; returns the order and the text.
fn save_note(tech: &mut Device, what: &str) -> (String, String) {
    let order = open_order(tech);
    let text = format!("{what} {}", uuid::Uuid::new_v4());
    tech.app
        .edit_order(
            &order,
            OrderEdit {
                notes: vec![text.clone()],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    (order, text)
}

/// The server's final state, read by a dispatcher straight from the server: each
/// note arrived exactly once. The counts go to `<target>/reliability/answers.json`
/// (one row per test, with `detail`) before they are checked.
async fn assert_on_server_once(
    server: &Server,
    notes: &[(String, String)],
    test: &str,
    detail: String,
) {
    let dispatcher = Device::primed(&server.url, "dispatcher").await;
    let counts: Vec<usize> = notes
        .iter()
        .map(|(order, text)| notes_with(&dispatcher, order, text))
        .collect();
    let lost = counts.iter().filter(|n| **n == 0).count();
    let doubled = counts.iter().filter(|n| **n > 1).count();
    outpost_tests::results::add_row(
        &outpost_tests::results::Part {
            part: "answers",
            title: "Bad answers",
            what: "server answers made bad by the HTTP fault proxy (cut short, malformed, of \
                   another protocol version, enormous); each must give a clear error, keep the \
                   client's memory bounded and lose nothing: every change saved meanwhile \
                   reaches the server exactly once",
            command: "cargo test -p outpost-tests --test answers -- --nocapture",
        },
        serde_json::json!({
            "test": test,
            "changes": notes.len(),
            "lost": lost,
            "doubled": doubled,
            "detail": detail,
        }),
    );
    for ((_, text), n) in notes.iter().zip(counts) {
        assert_eq!(n, 1, "{text:?} is on the server exactly once");
    }
}

/// Run one sync that meets a fault on `endpoint` and check what a person is told: the
/// pass's own error names the problem (one of `needles`). A bad answer to a push is not
/// always the end of the pass: the change it was about waits (with the error kept on
/// it, which the outbox view shows), the pass goes on to pull, and the pull may carry
/// the server's record of that change, which settles it; then there is nothing for a
/// person to do. Returns what was seen.
async fn sync_meeting_fault(tech: &mut Device, endpoint: Endpoint, needles: &[&str]) -> String {
    let named = |text: &str| needles.iter().any(|n| text.contains(n));
    match tech.sync().await {
        Err(e) => {
            let text = e.to_string();
            assert!(
                named(&text),
                "a clear error for the {endpoint:?} fault: {text}"
            );
            text
        }
        Ok(report) => {
            assert_eq!(
                endpoint,
                Endpoint::Push,
                "a bad {endpoint:?} answer went unnoticed: {report:?}"
            );
            let kept = tech
                .app
                .outbox()
                .unwrap()
                .into_iter()
                .find_map(|r| r.last_error);
            match kept {
                Some(text) => {
                    assert!(named(&text), "a clear error kept on the change: {text}");
                    text
                }
                None => {
                    let counts = tech.app.sync_counts().unwrap();
                    assert_eq!(
                        (counts.pending, counts.failed),
                        (0, 0),
                        "the pass ended well, so the change is settled: {report:?}"
                    );
                    "settled by the same pass's pull".into()
                }
            }
        }
    }
}

/// Nothing was set aside or lost on the device: the outbox drained, no failed sync.
fn assert_device_clean(tech: &Device) {
    let counts = tech.app.sync_counts().unwrap();
    assert_eq!(counts.pending, 0, "the outbox drained: {counts:?}");
    assert_eq!(counts.failed, 0, "nothing was set aside: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_answer_is_a_clear_error_and_the_next_sync_applies_each_change_once() {
    let (_tmp, server, proxy, mut tech) = start().await;
    let mut notes = Vec::new();
    for (endpoint, keep) in [
        (Endpoint::Push, 20),
        (Endpoint::Pull, 0),
        (Endpoint::Pull, 50),
    ] {
        notes.push(save_note(&mut tech, "truncated"));
        let next = proxy.count(endpoint) + 1;
        proxy.rule(Rule::once(endpoint, next, Action::Truncate { keep }));
        sync_meeting_fault(
            &mut tech,
            endpoint,
            &[
                "connection broke while reading the answer",
                "could not be read",
            ],
        )
        .await;
        tech.sync().await.expect("the next sync completes");
    }
    assert_eq!(proxy.fired(), 3, "every fault fired: {:?}", proxy.seen());
    assert_device_clean(&tech);
    assert_on_server_once(
        &server,
        &notes,
        "truncated answers",
        "a push answer cut after 20 bytes (the server had committed), pull answers cut after 0 and 50 bytes: each a clear error, the next sync completes".into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_answer_is_a_clear_error_and_the_next_sync_applies_each_change_once() {
    let (_tmp, server, proxy, mut tech) = start().await;
    let mut notes = Vec::new();
    for (endpoint, body) in [
        (Endpoint::Push, &b"{\"results\": [{\"mutation_id\": 7}"[..]),
        (Endpoint::Pull, b"<html><body>502 Bad Gateway</body></html>"),
        (Endpoint::Pull, b"{\"changes\": \"none\", \"cursor\": 1}"),
    ] {
        notes.push(save_note(&mut tech, "malformed"));
        let next = proxy.count(endpoint) + 1;
        proxy.rule(Rule::once(
            endpoint,
            next,
            Action::ReplaceBody(body.to_vec()),
        ));
        sync_meeting_fault(&mut tech, endpoint, &["could not be read"]).await;
        tech.sync().await.expect("the next sync completes");
    }
    assert_eq!(proxy.fired(), 3, "every fault fired: {:?}", proxy.seen());
    assert_device_clean(&tech);
    assert_on_server_once(
        &server,
        &notes,
        "malformed answers",
        "a push answer of broken JSON (after commit), a pull answered with an HTML page, a pull answer of the wrong shape: each a clear error (or, for the push, settled by the same pass's pull)".into(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_of_another_protocol_version_is_a_clear_error_and_nothing_is_set_aside() {
    let (_tmp, server, proxy, mut tech) = start().await;
    let refused = r#"{"code":"unsupported_protocol","message":"this Outpost speaks sync protocol 2, which this server no longer serves (it needs 3 or newer): update Outpost"}"#;
    let mut notes = Vec::new();
    // A push answer written by a newer protocol: an outcome this build does not know.
    notes.push(save_note(&mut tech, "newer outcome"));
    let next = proxy.count(Endpoint::Push) + 1;
    proxy.rule(Rule::once(
        Endpoint::Push,
        next,
        Action::ReplaceBody(
            br#"{"results":[{"mutation_id":"00000000-0000-0000-0000-000000000001","result":"applied_later"}],"server_time":"2030-01-01T00:00:00Z"}"#.to_vec(),
        ),
    ));
    sync_meeting_fault(&mut tech, Endpoint::Push, &["could not be read"]).await;
    tech.sync().await.expect("the next sync completes");
    // A server that moved on refuses every request alike, several passes running.
    notes.push(save_note(&mut tech, "other version"));
    for endpoint in [Endpoint::Push, Endpoint::Pull] {
        let next = proxy.count(endpoint) + 1;
        proxy.rule(Rule {
            endpoint,
            nth: next,
            times: 4,
            action: Action::Status {
                code: 400,
                retry_after_secs: None,
                body: refused.into(),
            },
        });
    }
    for _ in 0..4 {
        sync_meeting_fault(&mut tech, Endpoint::Push, &["update Outpost"]).await;
    }
    let counts = tech.app.sync_counts().unwrap();
    assert_eq!(
        counts.failed, 0,
        "a refusal of the protocol sets nothing aside"
    );
    assert!(counts.pending > 0, "the change waits on the device");
    tech.sync()
        .await
        .expect("the server speaks this version again");
    assert_device_clean(&tech);
    assert_on_server_once(
        &server,
        &notes,
        "another protocol version",
        "a push answer with an outcome this build does not know; four passes refused `unsupported_protocol` (\"update Outpost\"): nothing set aside, the change waits and goes once the server speaks this version".into(),
    )
    .await;
}

/// The process's resident memory in bytes (Linux), sampled by a thread while `run` goes.
struct RssPeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    base: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

impl RssPeak {
    fn start() -> RssPeak {
        let stop = Arc::new(AtomicBool::new(false));
        let base = rss_bytes();
        let peak = Arc::new(AtomicU64::new(base));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        RssPeak {
            stop,
            peak,
            base,
            thread: Some(thread),
        }
    }

    /// How far above the start the resident memory went.
    fn growth(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed).saturating_sub(self.base)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enormous_answer_is_refused_with_bounded_memory_and_nothing_is_lost() {
    let (_tmp, server, proxy, mut tech) = start().await;
    if rss_bytes() == 0 {
        panic!("this test reads /proc/self/status (Linux)");
    }
    let enormous: u64 = 512 * 1024 * 1024;
    // The client reads at most its cap of an answer; what it holds while reading (the
    // bytes so far, the last chunk, a decoder's buffers) stays under twice that and a
    // margin. Before the cap: 1 GiB for a 512 MiB answer.
    let cap = outpost_protocol::limits::ANSWER_BYTES_MAX as u64;
    let bound: u64 = 2 * cap + 64 * 1024 * 1024;
    let mut notes = Vec::new();
    let mut figures = Vec::new();
    for (endpoint, announce) in [
        (Endpoint::Pull, true),
        (Endpoint::Pull, false),
        (Endpoint::Push, false),
    ] {
        notes.push(save_note(&mut tech, "enormous"));
        let next = proxy.count(endpoint) + 1;
        proxy.rule(Rule::once(
            endpoint,
            next,
            Action::Enormous {
                bytes: enormous,
                announce,
            },
        ));
        let rss = RssPeak::start();
        let started = std::time::Instant::now();
        let outcome = tech.sync().await;
        let growth = rss.growth();
        let told = match &outcome {
            Err(e) => e.to_string(),
            Ok(_) => tech
                .app
                .outbox()
                .unwrap()
                .into_iter()
                .find_map(|r| r.last_error)
                .unwrap_or_else(|| "(settled by the same pass's pull)".into()),
        };
        println!(
            "{endpoint:?} answer of {} MiB (length announced: {announce}): refused in {:?}, memory grew {} MiB: {told}",
            enormous >> 20,
            started.elapsed(),
            growth >> 20
        );
        figures.push(format!(
            "{endpoint:?} answer of {} MiB, length announced: {announce}: refused in {} ms, memory +{} MiB",
            enormous >> 20,
            started.elapsed().as_millis(),
            growth >> 20
        ));
        assert!(
            growth < bound,
            "memory stayed under {} MiB: it grew {} MiB for a {} MiB answer",
            bound >> 20,
            growth >> 20,
            enormous >> 20
        );
        assert!(
            told.contains("larger than") || (endpoint == Endpoint::Push && outcome.is_ok()),
            "a clear error for an enormous {endpoint:?} answer: {told}"
        );
        tech.sync().await.expect("the next sync completes");
    }
    assert_eq!(proxy.fired(), 3, "every fault fired: {:?}", proxy.seen());
    assert_device_clean(&tech);
    assert_on_server_once(
        &server,
        &notes,
        "enormous answers",
        format!(
            "cap {} MiB (limits::ANSWER_BYTES_MAX); {}",
            cap >> 20,
            figures.join("; ")
        ),
    )
    .await;
}
