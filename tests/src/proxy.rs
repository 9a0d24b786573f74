//! A TCP proxy between a client and the server, with faults the test switches at
//! any moment: refuse connections, black-hole them, delay or throttle bytes, reset a
//! connection part-way through a request, or let a request reach the server and drop
//! its reply (so the server commits and the client never hears of it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Pass everything through.
    None,
    /// Close every connection at once, as a cut cable does for the client.
    Refuse,
    /// Accept connections and never answer.
    BlackHole,
    /// Forward requests; drop the server's replies and close the connection.
    DropReplies,
    /// Close the connection after this many request bytes reached the server.
    ResetAfterRequestBytes(usize),
    /// At most this many bytes per second in each direction.
    Throttle { bytes_per_sec: u64 },
    /// Hold every chunk this long.
    Delay(Duration),
}

#[derive(Debug, Default)]
pub struct Stats {
    pub connections: u64,
    /// Connections cut at once because the fault was `Refuse`.
    pub refused: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Every byte sent to the server, while [`Proxy::record_requests`] is on.
    pub recorded_up: Option<Vec<u8>>,
}

pub struct Proxy {
    pub addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    upstream: Arc<Mutex<SocketAddr>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    pub stats: Arc<Mutex<Stats>>,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.kill_connections();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Arc<Mutex<Fault>>,
    stats: Arc<Mutex<Stats>>,
    upward: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0usize;
    loop {
        let current = *fault.lock().unwrap_or_else(|p| p.into_inner());
        let max = match current {
            Fault::Throttle { bytes_per_sec } => (bytes_per_sec as usize / 20).clamp(1, buf.len()),
            _ => buf.len(),
        };
        let n = match from.read(&mut buf[..max]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let current = *fault.lock().unwrap_or_else(|p| p.into_inner());
        match current {
            Fault::Refuse => break,
            Fault::BlackHole => continue,
            Fault::DropReplies if !upward => break,
            Fault::ResetAfterRequestBytes(limit) if upward && total + n >= limit => {
                let keep = limit.saturating_sub(total);
                let _ = to.write_all(&buf[..keep]).await;
                break;
            }
            Fault::Throttle { bytes_per_sec } => {
                let wait = Duration::from_secs_f64(n as f64 / bytes_per_sec.max(1) as f64);
                tokio::time::sleep(wait).await;
            }
            Fault::Delay(d) => tokio::time::sleep(d).await,
            _ => {}
        }
        total += n;
        if let Ok(mut s) = stats.lock() {
            if upward {
                s.bytes_up += n as u64;
                if let Some(rec) = s.recorded_up.as_mut() {
                    rec.extend_from_slice(&buf[..n]);
                }
            } else {
                s.bytes_down += n as u64;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let fault = Arc::new(Mutex::new(Fault::None));
        let upstream = Arc::new(Mutex::new(upstream));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let stats: Arc<Mutex<Stats>> = Arc::default();
        let (f, u, c, s) = (
            fault.clone(),
            upstream.clone(),
            conns.clone(),
            stats.clone(),
        );
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let current = *f.lock().unwrap_or_else(|p| p.into_inner());
                if current == Fault::Refuse {
                    drop(client);
                    if let Ok(mut st) = s.lock() {
                        st.refused += 1;
                    }
                    continue;
                }
                if let Ok(mut st) = s.lock() {
                    st.connections += 1;
                }
                let target = *u.lock().unwrap_or_else(|p| p.into_inner());
                let (f2, s2) = (f.clone(), s.clone());
                let handle = tokio::spawn(async move {
                    if current == Fault::BlackHole {
                        let _keep = client;
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(
                        pump(cr, sw, f2.clone(), s2.clone(), true),
                        pump(sr, cw, f2, s2, false)
                    );
                });
                if let Ok(mut list) = c.lock() {
                    list.retain(|h| !h.is_finished());
                    list.push(handle);
                }
            }
        });
        Proxy {
            addr,
            fault,
            upstream,
            conns,
            stats,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switch the fault; a cut (`Refuse`, `BlackHole`) also breaks open connections.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|p| p.into_inner()) = fault;
        if matches!(fault, Fault::Refuse | Fault::BlackHole) {
            self.kill_connections();
        }
    }

    pub fn set_upstream(&self, addr: SocketAddr) {
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = addr;
        self.kill_connections();
    }

    pub fn kill_connections(&self) {
        if let Ok(mut list) = self.conns.lock() {
            for h in list.drain(..) {
                h.abort();
            }
        }
    }

    /// Connections accepted and passed on so far.
    pub fn connections(&self) -> u64 {
        self.stats.lock().map(|s| s.connections).unwrap_or(0)
    }

    pub fn refused(&self) -> u64 {
        self.stats.lock().map(|s| s.refused).unwrap_or(0)
    }

    pub fn bytes_down(&self) -> u64 {
        self.stats.lock().map(|s| s.bytes_down).unwrap_or(0)
    }

    pub fn bytes_up(&self) -> u64 {
        self.stats.lock().map(|s| s.bytes_up).unwrap_or(0)
    }

    /// Start keeping every byte sent to the server (for [`Proxy::request_heads`]).
    pub fn record_requests(&self) {
        if let Ok(mut s) = self.stats.lock() {
            s.recorded_up = Some(Vec::new());
        }
    }

    /// The request line and headers of each request recorded so far, in order (the
    /// bodies left out).
    pub fn request_heads(&self) -> Vec<String> {
        let text = self
            .stats
            .lock()
            .ok()
            .and_then(|s| s.recorded_up.clone())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let mut heads = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = ["GET /", "POST /", "PUT /"]
            .iter()
            .filter_map(|m| rest.find(m))
            .min()
        {
            let from = &rest[start..];
            let end = from.find("\r\n\r\n").unwrap_or(from.len());
            heads.push(from[..end].to_owned());
            rest = &from[end..];
        }
        heads
    }
}
