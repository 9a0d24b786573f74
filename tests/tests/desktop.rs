//! The desktop app's sign-in, sign-out and background engine as its commands drive
//! them (`outpost_core::desktop::state::DesktopState`, which the shell calls one
//! method at a time), against a real `outpost-server` on loopback through the test
//! proxy, on real encrypted data directories.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use outpost_core::app::{SignInInput, SyncConnectivity};
use outpost_core::desktop::state::DesktopState;
use outpost_core::OrderEdit;
use outpost_protocol::Status;
use outpost_tests::{eventually, fast_client, fast_engine, Device, Fault, Proxy, DEMO_PASSWORD};

/// The desktop state on a new data directory (first run), as the app starts.
fn first_run() -> (tempfile::TempDir, DesktopState) {
    let dir = tempfile::tempdir().unwrap();
    let key = outpost_tests::random_key();
    let state = DesktopState::start(
        dir.path().join("data"),
        move |d| Device::options(d, &key),
        fast_client(),
        fast_engine(),
    );
    (dir, state)
}

fn form(proxy: &Proxy, user: &str) -> SignInInput {
    SignInInput {
        server_url: proxy.url(),
        username: user.into(),
        password: DEMO_PASSWORD.into(),
        passphrase: None,
    }
}

fn connectivity(state: &DesktopState) -> SyncConnectivity {
    state.sync_status().unwrap().connectivity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stays_usable_while_a_sign_in_request_is_in_flight() {
    let (_tmp, _server, proxy) = outpost_tests::setup(&[]).await;
    let (_dir, state) = first_run();
    proxy.set(Fault::Delay(Duration::from_millis(1_500)));
    let before = proxy.connections();

    let signing_in = state.sign_in(form(&proxy, "tech1"));
    let meanwhile = async {
        eventually(
            Duration::from_secs(10),
            "the sign-in request is on its way",
            || proxy.connections() > before,
        )
        .await;
        assert!(
            outpost_core::Outpost::is_initialized(state.data_dir()),
            "first run made the data directory before asking the server"
        );
        let answers = (
            state.with(|o| o.orders()).map(|orders| orders.len()),
            state.sync_status().map(|s| s.pending),
        );
        assert!(
            !state.session_info().signed_in,
            "the answers above came while the sign-in was still waiting for the server"
        );
        let second = state.sign_out().await.map(|_| ()).map_err(|e| e.code);
        assert_eq!(
            second,
            Err("busy".to_owned()),
            "one sign-in or sign-out at a time"
        );
        answers
    };
    let (signed_in, (orders, status)) = tokio::join!(signing_in, meanwhile);

    let info = signed_in.expect("signed in");
    assert!(info.signed_in);
    assert_eq!(
        orders,
        Ok(0),
        "other commands answer during the sign-in request"
    );
    assert_eq!(status, Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_signing_in_again_background_sync_resumes_by_itself() {
    let (_tmp, server, proxy) = outpost_tests::setup(&[]).await;
    let (_dir, state) = first_run();
    state.sign_in(form(&proxy, "tech1")).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the engine has primed the device",
        || {
            let s = state.sync_status().unwrap();
            s.connectivity == SyncConnectivity::Online && s.last_sync.is_some()
        },
    )
    .await;

    // Revoked on the server: the engine's next pass finds out and asks for a sign-in.
    let device = state.with(|o| Ok(o.device_id())).unwrap().to_string();
    server.admin(&["device", "revoke", "--device-id", &device], None);
    eventually(
        Duration::from_secs(10),
        "the engine asks for a sign-in",
        || connectivity(&state) == SyncConnectivity::SignInRequired,
    )
    .await;

    // Signed in again, without signing out; then a note, and no "Sync now".
    state.sign_in(form(&proxy, "tech1")).await.unwrap();
    let id = state
        .with(|o| {
            Ok(o.orders()?
                .into_iter()
                .find(|r| matches!(r.order.status, Status::Scheduled | Status::InProgress))
                .expect("an open order")
                .order
                .id
                .to_string())
        })
        .unwrap();
    state
        .with(|o| {
            o.edit_order(
                &id,
                OrderEdit {
                    notes: vec!["after signing in again".into()],
                    ..OrderEdit::default()
                },
            )
        })
        .unwrap();
    state.local_write();
    eventually(
        Duration::from_secs(15),
        "background sync resumed by itself and sent the note",
        || {
            let s = state.sync_status().unwrap();
            s.pending == 0 && s.connectivity == SyncConnectivity::Online
        },
    )
    .await;
}
