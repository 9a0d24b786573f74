//! The updater tamper test, through the real `tauri-plugin-updater` (on Tauri's mock
//! runtime: an app without a window) against an update server on loopback.
//!
//! A throwaway key pair is made with `tauri signer generate --ci`, a fake update
//! artifact is signed with `tauri signer sign` (the Tauri CLI from `ui/node_modules`,
//! or `TAURI_CLI`), and the server hands out manifests in the dynamic-server format.
//! Then: the good update downloads and verifies; a tampered artifact, an artifact signed
//! by another key, and an older genuine release announced under a newer version are all
//! refused by `Update::download` before anything could be installed.
//!
//! The test configuration is its own: plain HTTP on loopback needs the plugin's
//! insecure-transport option, which the release configuration never has
//! (`scripts/check-release-config.sh` fails the build if it does). Nothing is installed:
//! `download` is where the plugin verifies; `install` only runs on verified bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::json;
use tauri::test::{mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::App;
use tauri_plugin_updater::{Error, UpdaterExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NEW_VERSION: &str = "99.0.0";
const OLD_VERSION: &str = "98.0.0";

fn tauri_cli() -> PathBuf {
    std::env::var_os("TAURI_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())).join("../../ui/node_modules/.bin/tauri")
        })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throwaway key pair, no password: (private key file, public key as the config wants it).
fn generate_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    run(Command::new(tauri_cli())
        .args(["signer", "generate", "--ci", "-w"])
        .arg(&key)
        .env("CI", "true"));
    let public = std::fs::read_to_string(format!("{}.pub", key.display()))
        .expect("the public key file next to the private key");
    (key, public.trim().to_owned())
}

/// `tauri signer sign`, bound to `version` as `tauri build` does: returns the .sig content.
fn sign(key: &Path, file: &Path, version: &str) -> String {
    run(Command::new(tauri_cli())
        .args(["signer", "sign", "-f"])
        .arg(key)
        .args(["-p", "", "--app-version", version])
        .arg(file)
        .env_remove("TAURI_SIGNING_PRIVATE_KEY")
        .env_remove("TAURI_SIGNING_PRIVATE_KEY_PASSWORD"));
    std::fs::read_to_string(format!("{}.sig", file.display())).expect("the .sig file")
}

/// A tiny HTTP/1.1 server on loopback: path → body; every request path is recorded.
struct Server {
    base: String,
    routes: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let routes: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, s) = (routes.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (r, s) = (r.clone(), s.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    s.lock().expect("lock").push(target.clone());
                    let path = target.split('?').next().unwrap_or("").to_owned();
                    // Manifests are looked up by their last segment, so that the endpoint
                    // pattern ({{target}}/{{arch}}/{{current_version}}) can be anything.
                    let key = path.rsplit('/').next().unwrap_or("").to_owned();
                    let body = r.lock().expect("lock").get(&key).cloned();
                    let reply = match body {
                        Some(b) => {
                            let mut v = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                                b.len()
                            )
                            .into_bytes();
                            v.extend_from_slice(&b);
                            v
                        }
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
                    };
                    let _ = sock.write_all(&reply).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Server { base, routes, seen }
    }

    fn put(&self, name: &str, body: impl Into<Vec<u8>>) {
        self.routes
            .lock()
            .expect("lock")
            .insert(name.to_owned(), body.into());
    }

    /// A dynamic-server manifest announcing `version` at `artifact` with `signature`.
    fn manifest(&self, name: &str, version: &str, artifact: &str, signature: &str) {
        let m = json!({
            "version": version,
            "pub_date": "2026-11-28T00:00:00Z",
            "notes": "test update",
            "url": format!("{}/artifacts/{artifact}", self.base),
            "signature": signature,
        });
        self.put(name, m.to_string());
    }

    /// The endpoint pattern of the release configuration, on loopback, for `manifest`.
    fn endpoint(&self, manifest: &str) -> String {
        format!(
            "{}/{{{{target}}}}/{{{{arch}}}}/{{{{current_version}}}}/{manifest}?channel=stable",
            self.base
        )
    }
}

/// An app on the mock runtime with the updater plugin and this test's configuration.
fn app(pubkey: &str, endpoint: &str) -> App<MockRuntime> {
    let mut ctx = mock_context(noop_assets());
    ctx.config_mut().plugins.0.insert(
        "updater".into(),
        json!({
            "pubkey": pubkey,
            "endpoints": [endpoint],
            "requireSignedVersion": true,
            // Loopback plain HTTP: this test's configuration only.
            "dangerousInsecureTransportProtocol": true,
        }),
    );
    mock_builder()
        .plugin(tauri_plugin_updater::Builder::new().build())
        .build(ctx)
        .expect("the mock app with the updater plugin")
}

/// Check, then download (which verifies): the downloaded bytes or the plugin's error.
async fn check_and_download(app: &App<MockRuntime>) -> Result<Vec<u8>, Error> {
    let update = app
        .updater()?
        .check()
        .await?
        .expect("the manifest announces a newer version");
    assert_eq!(update.version, NEW_VERSION);
    update.download(|_, _| {}, || {}).await
}

/// The error of a download that must have been refused (without printing the bytes of
/// one that was wrongly accepted).
fn refused(result: Result<Vec<u8>, Error>, what: &str) -> Error {
    match result {
        Ok(bytes) => panic!(
            "{what} must be refused, but {} bytes were accepted",
            bytes.len()
        ),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_update_is_refused_and_a_good_one_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, pubkey) = generate_key(dir.path(), "updater.key");
    let (other_key, _) = generate_key(dir.path(), "attacker.key");

    // The release: a fake bundle, signed for NEW_VERSION.
    let good: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let good_path = dir.path().join("outpost_99.0.0_amd64.AppImage.tar.gz");
    std::fs::write(&good_path, &good).expect("write artifact");
    let good_sig = sign(&key, &good_path, NEW_VERSION);

    // The same bytes with one bit flipped, served under the genuine signature.
    let mut tampered = good.clone();
    tampered[100_000] ^= 0x01;

    // Other bytes signed with a key the app does not trust.
    let evil: Vec<u8> = b"not outpost".repeat(1000);
    let evil_path = dir.path().join("evil.tar.gz");
    std::fs::write(&evil_path, &evil).expect("write evil");
    let evil_sig = sign(&other_key, &evil_path, NEW_VERSION);

    // An older genuine release (validly signed for OLD_VERSION) announced as NEW_VERSION.
    let old: Vec<u8> = b"outpost 98".repeat(1000);
    let old_path = dir.path().join("old.tar.gz");
    std::fs::write(&old_path, &old).expect("write old");
    let old_sig = sign(&key, &old_path, OLD_VERSION);

    let server = Server::start().await;
    server.put("good.tar.gz", good.clone());
    server.put("tampered.tar.gz", tampered);
    server.put("evil.tar.gz", evil);
    server.put("old.tar.gz", old);
    server.manifest("good.json", NEW_VERSION, "good.tar.gz", &good_sig);
    server.manifest("tampered.json", NEW_VERSION, "tampered.tar.gz", &good_sig);
    server.manifest("other-key.json", NEW_VERSION, "evil.tar.gz", &evil_sig);
    server.manifest("replayed-old.json", NEW_VERSION, "old.tar.gz", &old_sig);

    // Good: accepted, and the bytes are the release's.
    let bytes = check_and_download(&app(&pubkey, &server.endpoint("good.json")))
        .await
        .expect("the genuine update verifies");
    assert!(
        bytes == good,
        "the downloaded bytes are the signed artifact"
    );
    let seen = server.seen.lock().expect("lock").clone();
    assert!(
        seen.iter()
            .any(|p| p.contains("/0.1.0/good.json?channel=stable")),
        "the endpoint pattern was filled in (current version, channel kept): {seen:?}"
    );

    // Tampered: the signature no longer matches the bytes.
    let err = refused(
        check_and_download(&app(&pubkey, &server.endpoint("tampered.json"))).await,
        "a tampered artifact",
    );
    assert!(
        matches!(err, Error::Minisign(_)),
        "refused by signature verification: {err}"
    );

    // Signed, but not with the release key.
    let err = refused(
        check_and_download(&app(&pubkey, &server.endpoint("other-key.json"))).await,
        "an artifact signed with another key",
    );
    assert!(
        matches!(err, Error::Minisign(_)),
        "refused by signature verification: {err}"
    );

    // A genuine older release announced as newer (a downgrade through a crafted manifest).
    let err = refused(
        check_and_download(&app(&pubkey, &server.endpoint("replayed-old.json"))).await,
        "an older release under a newer version",
    );
    assert!(
        matches!(err, Error::SignedVersionMismatch { .. }),
        "refused by the signed version: {err}"
    );
}

/// The committed release configuration is accepted by the plugin's own parser (which
/// refuses non-HTTPS endpoints without the insecure option) and its key is well formed.
#[test]
fn the_release_updater_configuration_parses_in_the_plugin() {
    let conf: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())).join("../tauri.conf.json"))
            .expect("src-tauri/tauri.conf.json"),
    )
    .expect("valid JSON");
    let updater = conf["plugins"]["updater"].clone();
    let parsed: tauri_plugin_updater::Config =
        serde_json::from_value(updater).expect("the plugin accepts the release configuration");
    assert!(!parsed.dangerous_insecure_transport_protocol);
    assert!(!parsed.dangerous_accept_invalid_certs);
    assert!(!parsed.dangerous_accept_invalid_hostnames);
    assert!(
        parsed.require_signed_version,
        "release builds bind signatures to their version"
    );
    assert!(parsed.endpoints.iter().all(|e| e.scheme() == "https"));
    assert!(!parsed.pubkey.is_empty());
}
