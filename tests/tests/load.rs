//! The fleet load generator's smoke tests (issue 25 item 1; `outpost_tests::load`): a
//! short day of a few devices against the real `outpost-server` on loopback. Every
//! completion the generator counts as applied must be on the server exactly once
//! afterwards (read back as the dispatcher), requests that fail must be counted as
//! errors, and a URL off loopback is refused before any request. A few seconds each.

use std::time::Duration;

use outpost_tests::load::{self, Plan};
use outpost_tests::Server;

fn short_day(devices: usize) -> Plan {
    Plan {
        window: Duration::from_secs(3),
        pull_every: Duration::from_millis(700),
        drain: Duration::from_secs(10),
        primers: 1,
        ..Plan::day(devices)
    }
}

async fn fleet(devices: usize) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("server.db");
    load::provision(&format!("sqlite:{}", db.display()), devices, 300)
        .await
        .expect("provision the fleet");
    let server = Server::start(&db, &[]);
    (dir, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_day_of_four_devices_puts_every_completion_on_the_server_exactly_once() {
    let (_dir, server) = fleet(4).await;
    let plan = short_day(4);
    let report = load::run(std::slice::from_ref(&server.url), &plan)
        .await
        .expect("the day runs");
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    assert_eq!(report.errors, 0, "errors: {:?}", report.errors_by);
    assert_eq!(report.completions_acked, report.completions_planned);
    assert_eq!(report.completions_planned, 16);
    assert_eq!(report.mutations_applied, report.mutations_planned);
    assert_eq!(report.primers, 1);
    assert!(
        report.prime_rows >= 300,
        "the priming device pulled the catalogue: {} rows",
        report.prime_rows
    );
    assert!(report.pull.ok > 4, "every device pulled on the interval");
    let wrong = load::verify(&server.url, &report)
        .await
        .expect("read the orders back");
    assert!(
        wrong.is_empty(),
        "not on the server exactly once: {wrong:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_a_server_that_went_away_are_counted_as_errors() {
    let (_dir, mut server) = fleet(3).await;
    let plan = Plan {
        drain: Duration::from_secs(2),
        ..short_day(3)
    };
    let url = server.url.clone();
    let day = tokio::spawn(async move { load::run(&[url], &plan).await });
    // Set-up (sign-ins, the day's orders) takes well under a second here; the server
    // then dies in the middle of the window.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    server.kill();
    let report = day.await.expect("the run's task").expect("the day runs");
    println!("errors: {:?}", report.errors_by);
    assert!(report.errors > 0, "a dead server must show as errors");
    assert!(
        report.errors_by.keys().any(|k| k.contains("connect")),
        "refused connections are counted by kind: {:?}",
        report.errors_by
    );
    assert!(report.completions_acked < report.completions_planned);
    assert!(!report.deadline_hit, "the run stops by itself");
}

#[tokio::test]
async fn a_url_off_loopback_is_refused_before_any_request() {
    for url in [
        "http://192.0.2.7:8080",
        "https://example.com",
        "http://10.0.0.1",
        "ftp://127.0.0.1",
    ] {
        let err = load::run(&[url.to_owned()], &Plan::day(1))
            .await
            .expect_err("refused");
        assert!(
            matches!(err, load::LoadError::NotLoopback(_)),
            "{url}: {err}"
        );
    }
    for url in ["http://127.0.0.1:9", "http://[::1]:9", "http://localhost:9"] {
        load::check_loopback(url).expect("loopback is fine");
    }
}
