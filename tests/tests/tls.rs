//! HTTPS to the sync server: a certificate the device does not trust is refused, an
//! administrator's pinned certificate is accepted, and a certificate for another host
//! is refused even when trusted. Certificates are made with the `openssl` tool.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use outpost_core::ClientOptions;
use outpost_tests::{seeded_db, Device, Server, DEMO_PASSWORD};

fn make_cert(dir: &Path, name: &str, host: &str) -> (String, String) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={host}")])
        .args(["-addext", &format!("subjectAltName=DNS:{host}")])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .output()
        .expect("the openssl tool is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

fn options(pin: Option<&str>) -> ClientOptions {
    ClientOptions {
        ca_cert_pem: pin.map(|p| std::fs::read(p).unwrap()),
        ..outpost_tests::fast_client()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_trusts_only_what_it_should() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(tmp.path(), "localhost", "localhost");
    let (other_cert, other_key) = make_cert(tmp.path(), "other", "sync.example.com");
    let db = seeded_db(tmp.path());
    let server = Server::start(&db, &["--tls-cert", &cert, "--tls-key", &key]);
    let url = format!("https://localhost:{}", server.addr.port());

    let mut dev = Device::new();
    let err = dev
        .app
        .login(&url, "tech1", DEMO_PASSWORD, &options(None))
        .await
        .expect_err("untrusted");
    assert_eq!(err.code(), "certificate", "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");

    dev.app
        .login(&url, "tech1", DEMO_PASSWORD, &options(Some(&cert)))
        .await
        .expect("a pinned certificate is trusted");
    drop(server);

    let server = Server::start(&db, &["--tls-cert", &other_cert, "--tls-key", &other_key]);
    let url = format!("https://localhost:{}", server.addr.port());
    let mut dev = Device::new();
    let err = dev
        .app
        .login(&url, "tech1", DEMO_PASSWORD, &options(Some(&other_cert)))
        .await
        .expect_err("a certificate for another host");
    assert_eq!(err.code(), "certificate", "{err}");
}
