//! Running the server: plain HTTP through `axum::serve`, or TLS (rustls with the ring
//! provider, from PEM files) through hyper directly. Both stop accepting on shutdown
//! and let in-flight requests finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
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

fn tls_config(files: &TlsFiles) -> Result<rustls::ServerConfig, Error> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| Error::store(format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::store(format!("certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(Error::store("the certificate file holds no certificate"));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| Error::store(format!("key file: {e}")))?
        .ok_or_else(|| Error::store("the key file holds no private key"))?;
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

/// Serve `state` on `listener` until the returned handle is stopped.
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
    let task = match tls {
        None => tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
        }),
        Some(files) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(&files)?));
            tokio::spawn(async move {
                let graceful = hyper_util::server::graceful::GracefulShutdown::new();
                let mut rx = rx;
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let (tcp, peer) = match accepted {
                                Ok(a) => a,
                                Err(e) => {
                                    tracing::warn!(error = %e, "accept failed");
                                    continue;
                                }
                            };
                            let acceptor = acceptor.clone();
                            let app = app.clone();
                            let watcher = graceful.watcher();
                            tokio::spawn(async move {
                                let tls = match acceptor.accept(tcp).await {
                                    Ok(t) => t,
                                    Err(e) => {
                                        tracing::debug!(error = %e, "TLS handshake failed");
                                        return;
                                    }
                                };
                                let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                                    req.extensions_mut().insert(ConnectInfo(peer));
                                    app.clone().oneshot(req.map(axum::body::Body::new))
                                });
                                let conn = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(tls), svc);
                                if let Err(e) = watcher.watch(conn).await {
                                    tracing::debug!(error = %e, "connection ended with an error");
                                }
                            });
                        }
                        _ = &mut rx => break,
                    }
                }
                graceful.shutdown().await;
                Ok(())
            })
        }
    };
    Ok(Running {
        addr,
        state,
        shutdown: Some(tx),
        task,
    })
}
