//! HTTPS to the sync server: a certificate the device does not trust is refused, an
//! administrator's pinned certificate is accepted, a certificate for another host is
//! refused even when trusted, and an expired one is refused with a word about the
//! computer's clock. Certificates are made in the test with rcgen (no external tool).

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_core::ClientOptions;
use outpost_tests::{seeded_db, Device, Server, DEMO_PASSWORD};

/// A server certificate for `host`: common name and DNS name `host`, `CA:FALSE`, a
/// P-256 key. The caller sets its dates.
fn server_params(host: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params
}

/// Sign `params` with a new key (self-signed) and write `<name>.pem` and `<name>.key`
/// to `dir`; returns both paths.
fn write_self_signed(dir: &Path, name: &str, params: rcgen::CertificateParams) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

/// A self-signed certificate for `host`, valid from now for two days.
fn make_cert(dir: &Path, name: &str, host: &str) -> (String, String) {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let mut params = server_params(host);
    params.not_before = now;
    params.not_after = now + Duration::from_secs(2 * 86_400);
    write_self_signed(dir, name, params)
}

/// A self-signed certificate for `host` that was valid for one day in 2020.
fn make_expired_cert(dir: &Path, host: &str) -> (String, String) {
    let mut params = server_params(host);
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 1, 2);
    write_self_signed(dir, "expired", params)
}

fn options(pin: Option<&str>) -> ClientOptions {
    ClientOptions {
        ca_cert_pem: pin.map(|p| std::fs::read(p).unwrap()),
        ..outpost_tests::fast_client()
    }
}

/// Start a server with `cert` and sign in to it from a new device, trusting `pin`.
async fn sign_in_with(
    db: &Path,
    (cert, key): (&str, &str),
    pin: Option<&str>,
) -> Result<(), outpost_core::CoreError> {
    let server = Server::start(db, &["--tls-cert", cert, "--tls-key", key]);
    let url = format!("https://localhost:{}", server.addr.port());
    let mut dev = Device::new();
    dev.app
        .login(&url, "tech1", DEMO_PASSWORD, &options(pin))
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_trusts_only_what_it_should() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(tmp.path(), "localhost", "localhost");
    let (other_cert, other_key) = make_cert(tmp.path(), "other", "sync.example.com");
    let (expired_cert, expired_key) = make_expired_cert(tmp.path(), "localhost");
    let db = seeded_db(tmp.path());

    let err = sign_in_with(&db, (&cert, &key), None)
        .await
        .expect_err("untrusted");
    assert_eq!(err.code(), "certificate", "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(
        !err.to_string().contains("clock"),
        "an untrusted certificate is not a clock problem: {err}"
    );

    sign_in_with(&db, (&cert, &key), Some(&cert))
        .await
        .expect("a pinned certificate is trusted");

    let err = sign_in_with(&db, (&other_cert, &other_key), Some(&other_cert))
        .await
        .expect_err("a certificate for another host");
    assert_eq!(err.code(), "certificate", "{err}");

    // Expired, even though pinned: refused, and the message points at the clock (the
    // usual cause on a laptop whose battery ran flat).
    let err = sign_in_with(&db, (&expired_cert, &expired_key), Some(&expired_cert))
        .await
        .expect_err("an expired certificate");
    assert_eq!(err.code(), "certificate", "{err}");
    assert!(
        err.to_string().contains("check the date and time"),
        "the message says what to check: {err}"
    );
}
