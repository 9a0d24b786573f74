//! Secrets never reach the logs: with every target at TRACE, a sign-in, a refresh, a
//! push and a failed sign-in leave no password, access token or refresh token in the
//! captured output. (Its own test binary: it installs the global subscriber.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use outpost_protocol::wire::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_trace_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let s = TestServer::start(Kind::Sqlite).await;
    let t = s.login("tech1").await;
    let refreshed: TokenResponse = s
        .http
        .post(s.url(paths::REFRESH))
        .json(&RefreshRequest {
            refresh_token: t.tokens.refresh_token.clone(),
            device_id: t.device,
        })
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("tokens");
    let d = s.login("dispatcher").await;
    d.create_order(Some("tech1")).await;
    let wrong = "Wr0ng-Secret-Guess";
    let r = s
        .http
        .post(s.url(paths::LOGIN))
        .json(&LoginRequest {
            username: "tech1".into(),
            password: wrong.into(),
            device_id: t.device,
        })
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 401);
    let logs =
        String::from_utf8_lossy(&capture.0.lock().unwrap_or_else(|e| e.into_inner())).to_string();
    assert!(
        logs.contains("signed in"),
        "the capture works: {}",
        &logs[..logs.len().min(500)]
    );
    for (what, secret) in [
        ("password", PASSWORD),
        ("wrong password", wrong),
        ("access token", t.tokens.access_token.as_str()),
        ("refresh token", t.tokens.refresh_token.as_str()),
        ("rotated refresh token", refreshed.refresh_token.as_str()),
        ("dispatcher's access token", d.tokens.access_token.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} appears in the logs");
    }
}
