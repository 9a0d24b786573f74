//! Running the server: plain HTTP or TLS (rustls with the ring provider, from PEM files
//! read with rustls' own `pki_types` PEM parser) through one hyper accept loop, with a
//! header-read (and TLS handshake) timeout and a limit on connections served at once
//! (issue 19 item 7: a slow client cannot hold the server's connections). Both stop
//! accepting on shutdown and let in-flight requests finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject as _};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt as _;

use crate::error::Error;
use crate::http::{router, AppState};

/// Certificate chain and private key, PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A server running on a task; [`Running::stop`] shuts it down gracefully.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stop accepting, finish in-flight requests, wait for the task.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap_or(Ok(()))
    }

    /// Wait until the server ends (after a signal handled by the caller's shutdown).
    pub async fn wait(mut self) -> std::io::Result<()> {
        (&mut self.task).await.unwrap_or(Ok(()))
    }

    pub fn shutdown_sender(&mut self) -> Option<oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

/// A malformed PEM file, in the words the server has always used for it.
fn pem_error(e: pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "section end {:?} missing",
            String::from_utf8_lossy(&end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => format!(
            "illegal section start: {:?}",
            String::from_utf8_lossy(&line)
        ),
        pem::Error::Base64Decode(e) => e,
        pem::Error::Io(e) => e.to_string(),
        // The rest (a section over 256 MB) as the old parser reported it.
        other => format!("{other:?}"),
    }
}

fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig, Error> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| Error::store(format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    // The reader forms (over the bytes already read) rather than the slice forms: they
    // report a damaged line exactly as the server always has (line ending included).
    let certs = CertificateDer::pem_reader_iter(cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::store(format!("certificate file: {}", pem_error(e))))?;
    if certs.is_empty() {
        return Err(Error::store("the certificate file holds no certificate"));
    }
    let key = match PrivateKeyDer::from_pem_reader(key_pem.as_slice()) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => {
            return Err(Error::store("the key file holds no private key"))
        }
        Err(e) => return Err(Error::store(format!("key file: {}", pem_error(e)))),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::store(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::store(format!("TLS certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The connection limits `serve` enforces (from [`crate::ServerConfig`]).
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    /// The longest a client may take to send a request's headers (and, over TLS, to
    /// finish the handshake): a slow client holding connections open (slowloris) is
    /// disconnected.
    header_read: Duration,
    /// Connections served at once; the next is accepted when one ends (the kernel's
    /// backlog holds the rest).
    max_connections: usize,
}

/// Serve `state` on `listener` until the returned handle is stopped: one accept loop
/// for plain HTTP and TLS, so both get the same header-read and handshake timeouts and
/// connection limit (`axum::serve` offers neither), and stop accepting on shutdown
/// while in-flight requests finish.
pub fn spawn(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<TlsFiles>,
) -> Result<Running, Error> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::store(format!("listener: {e}")))?;
    let (tx, rx) = oneshot::channel::<()>();
    let app = router(state.clone());
    let acceptor = match tls {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(
            &files,
        )?))),
        None => None,
    };
    let limits = ConnLimits {
        header_read: state.cfg.header_read_timeout,
        max_connections: state.cfg.max_connections.max(1),
    };
    let task = tokio::spawn(accept_loop(listener, app, acceptor, limits, rx));
    Ok(Running {
        addr,
        state,
        shutdown: Some(tx),
        task,
    })
}

async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    mut rx: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut rx => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut rx => break,
        };
        let app = app.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match acceptor {
                None => serve_connection(tcp, peer, app, watcher, limits).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => serve_connection(tls, peer, app, watcher, limits).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// Serve one connection (plain or TLS) with HTTP/1.1 and the header-read timeout.
async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
    limits: ConnLimits,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .serve_connection(TokioIo::new(io), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate and key made with rcgen, as PEM text.
    fn good_pem() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .expect("a self-signed certificate");
        (made.cert.pem(), made.key_pair.serialize_pem())
    }

    /// The message `serve` stops with for this certificate and key text (`None`: a
    /// missing file), with the two paths shown as `<cert>` and `<key>`.
    fn refusal(cert: Option<&str>, key: Option<&str>) -> String {
        let dir = tempfile::tempdir().expect("dir");
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        for (path, text) in [(&files.cert, cert), (&files.key, key)] {
            if let Some(text) = text {
                std::fs::write(path, text).expect("write");
            }
        }
        match tls_config(&files) {
            Ok(_) => panic!("accepted"),
            Err(Error::Store(msg)) => msg
                .replace(&files.cert.display().to_string(), "<cert>")
                .replace(&files.key.display().to_string(), "<key>"),
            Err(other) => panic!("another error: {other}"),
        }
    }

    #[test]
    fn good_files_load() {
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = good_pem();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&files.cert, cert).expect("write");
        std::fs::write(&files.key, key).expect("write");
        let cfg = tls_config(&files).expect("a TLS configuration");
        assert_eq!(cfg.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    /// Missing, empty, swapped and damaged files are refused with a message that says
    /// which file and what is wrong with it.
    #[test]
    fn bad_or_missing_files_are_refused_by_name() {
        let (cert, key) = good_pem();
        let missing = refusal(None, Some(&key));
        assert!(missing.starts_with("cannot read <cert>: "), "{missing}");
        let missing = refusal(Some(&cert), None);
        assert!(missing.starts_with("cannot read <key>: "), "{missing}");
        assert_eq!(
            refusal(Some(""), Some(&key)),
            "the certificate file holds no certificate"
        );
        assert_eq!(
            refusal(Some(&key), Some(&key)),
            "the certificate file holds no certificate"
        );
        assert_eq!(
            refusal(Some(&cert), Some(&cert)),
            "the key file holds no private key"
        );
        // Cut short: the section never ends.
        let cut = &cert[..cert.len() / 2];
        assert_eq!(
            refusal(Some(cut), Some(&key)),
            "certificate file: section end \"CERTIFICATE\" missing"
        );
        let cut = &key[..key.len() / 2];
        assert_eq!(
            refusal(Some(&cert), Some(cut)),
            "key file: section end \"PRIVATE KEY\" missing"
        );
        // A damaged first line.
        let damaged = cert.replacen("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATE--", 1);
        assert_eq!(
            refusal(Some(&damaged), Some(&key)),
            "certificate file: illegal section start: \"-----BEGIN CERTIFICATE--\\n\""
        );
        // Not base64 inside ('!' is character 33).
        let damaged = cert.replacen('\n', "\n!!!!", 1);
        assert_eq!(
            refusal(Some(&damaged), Some(&key)),
            "certificate file: InvalidCharacter(33)"
        );
        let damaged = key.replacen('\n', "\n!!!!", 1);
        assert_eq!(
            refusal(Some(&cert), Some(&damaged)),
            "key file: InvalidCharacter(33)"
        );
        // Well-formed PEM around bytes that are no certificate or key: rustls says so.
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            refusal(Some(garbage), Some(&key)),
            "TLS certificate: invalid peer certificate: BadEncoding"
        );
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            refusal(Some(&cert), Some(garbage)),
            "TLS certificate: unexpected error: failed to parse private key as RSA, ECDSA, or EdDSA"
        );
    }
}
