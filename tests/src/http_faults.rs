//! An HTTP-aware fault proxy: it reads each HTTP/1.1 request and answer between a
//! client and the server, so that a fault can hit one endpoint's k-th request (drop
//! the k-th push reply after the server committed, answer one pull 503, cut an answer
//! in half, hold a request and deliver it after a later one), and a whole-link fault
//! (a black hole, a slow link) can start and stop at any moment.
//!
//! Why not [`crate::proxy::Proxy`]: that one sees bytes, not requests, so it can only
//! break "the next connection"; a schedule needs "the 3rd push". It parses heads with
//! `httparse` (the parser under hyper) and bodies by `Content-Length` or chunked
//! framing, as a reverse proxy does. Every request seen is logged ([`Seen`]), with what
//! was done to it, so a test can say which faults actually fired.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outpost_protocol::wire::paths;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Which endpoint a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Health,
    Login,
    Refresh,
    Push,
    Pull,
    /// Attachment uploads (batch, chunk, status) and downloads.
    Attachments,
    /// The documents index and documents' bytes (issue 22).
    Documents,
    Other,
}

impl Endpoint {
    pub fn of(path: &str) -> Endpoint {
        let path = path.split('?').next().unwrap_or(path);
        if path == paths::HEALTH {
            Endpoint::Health
        } else if path == paths::LOGIN {
            Endpoint::Login
        } else if path == paths::REFRESH {
            Endpoint::Refresh
        } else if path == paths::PUSH {
            Endpoint::Push
        } else if path == paths::PULL {
            Endpoint::Pull
        } else if path.starts_with(paths::ATTACHMENTS) {
            Endpoint::Attachments
        } else if path.starts_with(paths::DOCUMENTS) {
            Endpoint::Documents
        } else {
            Endpoint::Other
        }
    }
}

/// What is done to the request a [`Rule`] matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Forward the request, let the server answer (and commit), then close the
    /// client's connection without a byte of the answer.
    DropReply,
    /// Answer this status without forwarding (the server never sees the request).
    Status {
        code: u16,
        retry_after_secs: Option<u64>,
        body: String,
    },
    /// Forward; send the client the answer's head and only the first `keep` bytes of
    /// its body, then close (the head still announces the full length).
    Truncate { keep: usize },
    /// Forward; flip bytes of the answer's body (every `every`-th byte, from
    /// `offset`), keeping its length.
    Corrupt { offset: usize, every: usize },
    /// Forward; replace the answer's body (status and other headers kept).
    ReplaceBody(Vec<u8>),
    /// Forward; replace the answer with a 200 whose body is `bytes` long (a JSON
    /// string that never ends), streamed, with `Content-Length` when `announce`.
    Enormous { bytes: u64, announce: bool },
    /// Pass only the first `after` bytes of the request to the server, then reset
    /// both sides (a request cut in the middle).
    ResetMidRequest { after: usize },
    /// Forward; pass the first `after` bytes of the raw answer, then reset.
    ResetMidResponse { after: usize },
    /// Accept the request and never answer it (the connection stays open).
    BlackHole,
    /// Hold the request this long before forwarding it.
    DelayRequest(Duration),
    /// Forward at once; hold the answer this long before passing it on.
    DelayReply(Duration),
    /// Forward the request twice (the second on its own connection, after the first
    /// was answered); the client gets the first answer.
    Duplicate,
    /// Keep the request and cut the client's connection (it will try again); deliver
    /// the kept request to the server, on its own connection, right after the next
    /// request to the same endpoint was answered: a stale copy arriving late.
    HoldUntilNext,
}

/// `action` for requests number `nth ..nth+times` (counted from 1) to `endpoint`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub endpoint: Endpoint,
    pub nth: u32,
    pub times: u32,
    pub action: Action,
}

impl Rule {
    pub fn once(endpoint: Endpoint, nth: u32, action: Action) -> Rule {
        Rule {
            endpoint,
            nth,
            times: 1,
            action,
        }
    }
}

/// A fault on every request while it is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Link {
    Pass,
    /// Connections are accepted and nothing is ever answered.
    BlackHole,
    /// At most `bytes_per_sec` in each direction, and `latency` before each request
    /// and each answer.
    Slow {
        bytes_per_sec: u64,
        latency: Duration,
    },
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub endpoint: Endpoint,
    /// Its number among requests to that endpoint (from 1).
    pub number: u32,
    pub method: String,
    pub path: String,
    /// The rule's action applied to it, if any (`None`: passed through).
    pub action: Option<Action>,
    /// The server's status, when the server answered it.
    pub status: Option<u16>,
}

#[derive(Default)]
struct State {
    upstream: Option<SocketAddr>,
    rules: Vec<Rule>,
    counts: HashMap<Endpoint, u32>,
    seen: Vec<Seen>,
    held: Vec<(Endpoint, Vec<u8>)>,
    link: Option<Link>,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct HttpProxy {
    pub addr: SocketAddr,
    state: Shared,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Drop for HttpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.kill_connections();
    }
}

/// A request or an answer read off a connection: the raw head, the body (de-chunked
/// when it was chunked) and the head's parsed facts.
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
    chunked: bool,
    /// The body was replaced by plain bytes: its `Content-Encoding` no longer holds.
    plain: bool,
    /// Request: method and path; answer: the status in `status`.
    method: String,
    path: String,
    status: u16,
}

impl Message {
    /// The bytes to send on: the head as read (re-framed when the body was chunked).
    fn raw(&self) -> Vec<u8> {
        if !self.chunked && !self.plain {
            let mut out = self.head.clone();
            out.extend_from_slice(&self.body);
            return out;
        }
        let mut out = self.head_with_length(self.body.len() as u64);
        out.extend_from_slice(&self.body);
        out
    }

    /// The head with `Content-Length: len` instead of its framing headers.
    fn head_with_length(&self, len: u64) -> Vec<u8> {
        let text = String::from_utf8_lossy(&self.head);
        let mut out = String::new();
        for (i, line) in text.split("\r\n").enumerate() {
            if line.is_empty() {
                continue;
            }
            let lower = line.to_ascii_lowercase();
            if i > 0
                && (lower.starts_with("content-length:")
                    || lower.starts_with("transfer-encoding:")
                    || (self.plain && lower.starts_with("content-encoding:")))
            {
                continue;
            }
            out.push_str(line);
            out.push_str("\r\n");
        }
        out.push_str(&format!("content-length: {len}\r\n\r\n"));
        out.into_bytes()
    }
}

/// Read bytes into `buf` until it holds `n` bytes; false at the end of the stream.
async fn fill(conn: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    while buf.len() < n {
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    true
}

/// Read until `buf` holds `pat`; its end's index, or `None` at the end of the stream.
async fn fill_until(conn: &mut TcpStream, buf: &mut Vec<u8>, pat: &[u8]) -> Option<usize> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(i) = buf.windows(pat.len()).position(|w| w == pat) {
            return Some(i + pat.len());
        }
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
}

/// Read one message (a request when `request`, else an answer) from `conn`; `buf`
/// carries bytes read past the previous message. `None`: the stream ended.
async fn read_message(
    conn: &mut TcpStream,
    buf: &mut Vec<u8>,
    request: bool,
    no_body: bool,
) -> Option<Message> {
    let head_end = fill_until(conn, buf, b"\r\n\r\n").await?;
    let head: Vec<u8> = buf.drain(..head_end).collect();
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let (method, path, status, parsed_headers): (String, String, u16, Vec<(String, String)>);
    if request {
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&head).ok()?;
        method = req.method.unwrap_or("").to_owned();
        path = req.path.unwrap_or("").to_owned();
        status = 0;
        parsed_headers = req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into(),
                )
            })
            .collect();
    } else {
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(&head).ok()?;
        method = String::new();
        path = String::new();
        status = resp.code.unwrap_or(0);
        parsed_headers = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into(),
                )
            })
            .collect();
    }
    let header = |name: &str| {
        parsed_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let mut body = Vec::new();
    let bodiless = no_body || status == 204 || status == 304 || (100..200).contains(&status);
    if bodiless {
    } else if chunked {
        loop {
            let line_end = fill_until(conn, buf, b"\r\n").await?;
            let line: Vec<u8> = buf.drain(..line_end).collect();
            let size_text = String::from_utf8_lossy(&line);
            let size =
                usize::from_str_radix(size_text.trim().split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                let end = fill_until(conn, buf, b"\r\n").await?;
                buf.drain(..end);
                break;
            }
            if !fill(conn, buf, size + 2).await {
                return None;
            }
            body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if !fill(conn, buf, len).await {
            return None;
        }
        body = buf.drain(..len).collect();
    } else if !request {
        // Delimited by the end of the connection.
        let mut chunk = [0u8; 16 * 1024];
        body = std::mem::take(buf);
        while let Ok(k) = conn.read(&mut chunk).await {
            if k == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..k]);
        }
    }
    Some(Message {
        head,
        body,
        chunked,
        plain: false,
        method,
        path,
        status,
    })
}

/// Write `bytes`, paced for a slow link.
async fn write_paced(conn: &mut TcpStream, bytes: &[u8], link: Link) -> std::io::Result<()> {
    match link {
        Link::Slow {
            bytes_per_sec,
            latency,
        } => {
            tokio::time::sleep(latency).await;
            let step = (bytes_per_sec as usize / 10).max(1);
            for piece in bytes.chunks(step) {
                conn.write_all(piece).await?;
                tokio::time::sleep(Duration::from_secs_f64(
                    piece.len() as f64 / bytes_per_sec.max(1) as f64,
                ))
                .await;
            }
            Ok(())
        }
        _ => conn.write_all(bytes).await,
    }
}

/// Close `conn` with a reset (RST), not an orderly FIN. (`set_linger` is deprecated
/// because a non-zero linger blocks the thread on drop; a zero one never does: the
/// kernel drops the send queue and sends RST at once.)
#[allow(deprecated)]
fn reset(conn: TcpStream) {
    let _ = conn.set_linger(Some(Duration::ZERO));
    drop(conn);
}

/// Send `raw` to the server on a connection of its own and read the answer.
async fn exchange_alone(upstream: SocketAddr, raw: &[u8], no_body: bool) -> Option<Message> {
    let mut conn = TcpStream::connect(upstream).await.ok()?;
    conn.write_all(raw).await.ok()?;
    let mut buf = Vec::new();
    read_message(&mut conn, &mut buf, false, no_body).await
}

/// The `Enormous` answer: a head, then `bytes` of a JSON string that never ends.
async fn send_enormous(client: &mut TcpStream, bytes: u64, announce: bool) {
    let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
    if announce {
        head.push_str(&format!("content-length: {bytes}\r\n"));
    } else {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    if client.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let filler = vec![b'x'; 64 * 1024];
    let mut left = bytes;
    if client.write_all(b"\"").await.is_err() {
        return;
    }
    left = left.saturating_sub(1);
    while left > 0 {
        let n = (filler.len() as u64).min(left) as usize;
        if client.write_all(&filler[..n]).await.is_err() {
            return;
        }
        left -= n as u64;
    }
}

fn error_answer(code: u16, retry_after_secs: Option<u64>, body: &str) -> Vec<u8> {
    let reason = match code {
        400 => "Bad Request",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let mut head = format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    if let Some(s) = retry_after_secs {
        head.push_str(&format!("retry-after: {s}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Serve one client connection: request by request.
async fn serve(mut client: TcpStream, state: Shared) {
    let _ = client.set_nodelay(true);
    let mut cbuf = Vec::new();
    let mut upstream_conn: Option<(TcpStream, Vec<u8>)> = None;
    loop {
        let link = lock(&state).link.unwrap_or(Link::Pass);
        if link == Link::BlackHole {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        let Some(req) = read_message(&mut client, &mut cbuf, true, false).await else {
            return;
        };
        let endpoint = Endpoint::of(&req.path);
        let (number, action, upstream, link) = {
            let mut s = lock(&state);
            let n = s.counts.entry(endpoint).or_insert(0);
            *n += 1;
            let number = *n;
            let action = s
                .rules
                .iter()
                .find(|r| r.endpoint == endpoint && number >= r.nth && number < r.nth + r.times)
                .map(|r| r.action.clone());
            s.seen.push(Seen {
                endpoint,
                number,
                method: req.method.clone(),
                path: req.path.clone(),
                action: action.clone(),
                status: None,
            });
            (number, action, s.upstream, s.link.unwrap_or(Link::Pass))
        };
        let Some(upstream) = upstream else { return };
        let no_body = req.method == "HEAD";
        let raw = req.raw();
        let record_status = |status: u16| {
            let mut s = lock(&state);
            if let Some(seen) = s
                .seen
                .iter_mut()
                .rev()
                .find(|x| x.endpoint == endpoint && x.number == number)
            {
                seen.status = Some(status);
            }
        };
        // What does not go to the server at all.
        match &action {
            Some(Action::Status {
                code,
                retry_after_secs,
                body,
            }) => {
                if client
                    .write_all(&error_answer(*code, *retry_after_secs, body))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Some(Action::BlackHole) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Some(Action::HoldUntilNext) => {
                lock(&state).held.push((endpoint, raw));
                reset(client);
                return;
            }
            Some(Action::ResetMidRequest { after }) => {
                if let Ok(mut up) = TcpStream::connect(upstream).await {
                    let _ = up.write_all(&raw[..(*after).min(raw.len())]).await;
                    reset(up);
                }
                reset(client);
                return;
            }
            Some(Action::DelayRequest(d)) => tokio::time::sleep(*d).await,
            _ => {}
        }
        if let Link::Slow { .. } = link {
            // The request crosses the slow link (its bytes were read at once; the
            // time they would take is spent before forwarding).
            if let Link::Slow {
                bytes_per_sec,
                latency,
            } = link
            {
                tokio::time::sleep(
                    latency + Duration::from_secs_f64(raw.len() as f64 / bytes_per_sec as f64),
                )
                .await;
            }
        }
        // Forward on the kept connection (a fresh one when it is gone).
        let mut answer = None;
        for _ in 0..2 {
            if upstream_conn.is_none() {
                match TcpStream::connect(upstream).await {
                    Ok(c) => {
                        let _ = c.set_nodelay(true);
                        upstream_conn = Some((c, Vec::new()));
                    }
                    Err(_) => break,
                }
            }
            let Some((up, ubuf)) = upstream_conn.as_mut() else {
                break;
            };
            if up.write_all(&raw).await.is_ok() {
                if let Some(m) = read_message(up, ubuf, false, no_body).await {
                    answer = Some(m);
                    break;
                }
            }
            upstream_conn = None;
        }
        let Some(mut answer) = answer else {
            reset(client);
            return;
        };
        record_status(answer.status);
        // A request held by `HoldUntilNext` goes to the server now, late.
        let late: Vec<Vec<u8>> = {
            let mut s = lock(&state);
            let (mine, others): (Vec<_>, Vec<_>) =
                s.held.drain(..).partition(|(e, _)| *e == endpoint);
            s.held = others;
            mine.into_iter().map(|(_, r)| r).collect()
        };
        for r in late {
            let _ = exchange_alone(upstream, &r, false).await;
        }
        match action {
            Some(Action::DropReply) => {
                reset(client);
                return;
            }
            Some(Action::Duplicate) => {
                let _ = exchange_alone(upstream, &raw, no_body).await;
            }
            Some(Action::DelayReply(d)) => tokio::time::sleep(d).await,
            Some(Action::Truncate { keep }) => {
                let mut out = answer.head_with_length(answer.body.len() as u64);
                out.extend_from_slice(&answer.body[..keep.min(answer.body.len())]);
                let _ = client.write_all(&out).await;
                let _ = client.shutdown().await;
                return;
            }
            Some(Action::Corrupt { offset, every }) => {
                let every = every.max(1);
                for (i, b) in answer.body.iter_mut().enumerate().skip(offset) {
                    if (i - offset) % every == 0 {
                        *b ^= 0x5a;
                    }
                }
            }
            Some(Action::ReplaceBody(body)) => {
                answer.body = body;
                answer.plain = true;
            }
            Some(Action::Enormous { bytes, announce }) => {
                send_enormous(&mut client, bytes, announce).await;
                let _ = client.shutdown().await;
                return;
            }
            Some(Action::ResetMidResponse { after }) => {
                let out = answer.raw();
                let _ = client.write_all(&out[..after.min(out.len())]).await;
                reset(client);
                return;
            }
            _ => {}
        }
        if write_paced(&mut client, &answer.raw(), link).await.is_err() {
            return;
        }
    }
}

impl HttpProxy {
    pub async fn start(upstream: SocketAddr) -> HttpProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the HTTP proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state: Shared = Arc::new(Mutex::new(State {
            upstream: Some(upstream),
            ..State::default()
        }));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (s, c) = (state.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let handle = tokio::spawn(serve(client, s.clone()));
                if let Ok(mut list) = c.lock() {
                    list.retain(|h| !h.is_finished());
                    list.push(handle);
                }
            }
        });
        HttpProxy {
            addr,
            state,
            conns,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Add a rule (request numbers count from the proxy's start, or the last
    /// [`HttpProxy::reset_counts`]).
    pub fn rule(&self, rule: Rule) {
        lock(&self.state).rules.push(rule);
    }

    /// Forget the rules and the request counts (the log is kept).
    pub fn reset_counts(&self) {
        let mut s = lock(&self.state);
        s.rules.clear();
        s.counts.clear();
    }

    /// Set the whole-link fault; a black hole also breaks open connections.
    pub fn link(&self, link: Link) {
        lock(&self.state).link = Some(link);
        if link == Link::BlackHole {
            self.kill_connections();
        }
    }

    pub fn set_upstream(&self, addr: SocketAddr) {
        lock(&self.state).upstream = Some(addr);
        self.kill_connections();
    }

    pub fn kill_connections(&self) {
        if let Ok(mut list) = self.conns.lock() {
            for h in list.drain(..) {
                h.abort();
            }
        }
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    /// How many requests a rule's action was applied to.
    pub fn fired(&self) -> usize {
        lock(&self.state)
            .seen
            .iter()
            .filter(|s| s.action.is_some())
            .count()
    }

    /// Requests to `endpoint` seen so far.
    pub fn count(&self, endpoint: Endpoint) -> u32 {
        lock(&self.state)
            .counts
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Whether every rule has fired for all its requests.
    pub fn rules_spent(&self) -> bool {
        let s = lock(&self.state);
        s.rules
            .iter()
            .all(|r| s.counts.get(&r.endpoint).copied().unwrap_or(0) >= r.nth + r.times - 1)
    }
}
