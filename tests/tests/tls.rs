//! HTTPS to the sync server: a certificate the device does not trust is refused, an
//! administrator's pinned certificate is accepted, a certificate for another host is
//! refused even when trusted, and an expired one is refused with a word about the
//! computer's clock. Certificates are made with the `openssl` tool.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use outpost_core::ClientOptions;
use outpost_tests::{seeded_db, Device, Server, DEMO_PASSWORD};

/// Run the `openssl` tool in `dir`; it must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the openssl tool is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The subject of a server certificate for `host`, as `openssl req` arguments.
fn server_subject(host: &str) -> [String; 6] {
    [
        "-subj".into(),
        format!("/CN={host}"),
        "-addext".into(),
        format!("subjectAltName=DNS:{host}"),
        "-addext".into(),
        "basicConstraints=critical,CA:FALSE".into(),
    ]
}

/// A self-signed certificate for `host`, valid from now for two days.
fn make_cert(dir: &Path, name: &str, host: &str) -> (String, String) {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    let subject = server_subject(host);
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &key,
            "-out",
            &cert,
        ]
        .iter()
        .copied()
        .chain(subject.iter().map(String::as_str))
        .collect::<Vec<_>>(),
    );
    (
        dir.join(cert).display().to_string(),
        dir.join(key).display().to_string(),
    )
}

/// A self-signed certificate for `host` that was valid for one day in 2020 (`openssl
/// ca` is the tool's way to set both dates).
fn make_expired_cert(dir: &Path, host: &str) -> (String, String) {
    let ca = dir.join("expired-ca");
    std::fs::create_dir_all(&ca).unwrap();
    std::fs::write(ca.join("index.txt"), "").unwrap();
    std::fs::write(ca.join("serial"), "01\n").unwrap();
    std::fs::write(
        ca.join("ca.cnf"),
        "[ca]\ndefault_ca = expired\n[expired]\ndatabase = index.txt\nnew_certs_dir = .\n\
         serial = serial\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\n\
         unique_subject = no\n[any]\ncommonName = supplied\n",
    )
    .unwrap();
    let subject = server_subject(host);
    openssl(
        &ca,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "req.csr",
        ]
        .iter()
        .copied()
        .chain(subject.iter().map(String::as_str))
        .collect::<Vec<_>>(),
    );
    openssl(
        &ca,
        &[
            "ca",
            "-batch",
            "-selfsign",
            "-keyfile",
            "key.pem",
            "-in",
            "req.csr",
            "-out",
            "cert.pem",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-config",
            "ca.cnf",
            "-notext",
        ],
    );
    (
        ca.join("cert.pem").display().to_string(),
        ca.join("key.pem").display().to_string(),
    )
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
