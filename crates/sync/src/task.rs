//! The background task: feeds events to the [`Machine`] and runs its instructions.
//!
//! [`spawn`] starts the task on its own store connection; the [`EngineHandle`] it
//! returns sends it [`Command`]s (sync now, signed in, a local write, a network change,
//! stop).
//! The task itself holds the data directory's [`SyncLock`] until it has ended, however
//! it ends (stopped, its handle dropped, cancelled by [`EngineHandle::stop`] after the
//! timeout, or a panic), so that no second syncer starts while a pass runs. The task
//! turns commands and timers into machine events, probes the server and runs passes
//! when the machine says, and publishes the outcome (`status.rs`). The client for the
//! session's server is made once and reused while the address stays the same
//! ([`session_client`]). The decisions (when to probe, back off, or pass) are the
//! machine's, and a pass's work is `pass.rs`'s; neither is here.

use std::collections::VecDeque;
use std::time::Duration;

use std::sync::Arc;

use outpost_protocol::Clock;
use outpost_store::Store;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{ClientOptions, SyncClient};
use crate::error::SyncError;
use crate::lock::SyncLock;
use crate::machine::{Event, Instruction, Machine, Millis, Timing};
use crate::pass::{run_pass_into, PassOptions, PassReport, Progress};
use crate::status::{counts_for_notice, new_notices, EngineStatus, LocalState, Publisher};

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub client: ClientOptions,
    pub timing: Timing,
    pub pass: PassOptions,
    /// Listen to the OS's network change events and probe at once when they come
    /// (`netwatch.rs`).
    pub watch_network: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            client: ClientOptions::default(),
            timing: Timing::default(),
            pass: PassOptions::default(),
            watch_network: true,
        }
    }
}

#[derive(Debug)]
enum Command {
    SyncNow,
    SignedIn,
    LocalWrite,
    NetworkChanged,
    Stop,
}

/// The running engine. Dropping it stops the task once a running pass has ended (the
/// task keeps the sync lock until then); [`EngineHandle::stop`] waits for it.
#[derive(Debug)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    status: watch::Receiver<EngineStatus>,
    join: Option<JoinHandle<Store>>,
}

impl EngineHandle {
    pub fn sync_now(&self) {
        let _ = self.tx.try_send(Command::SyncNow);
    }

    /// Tell the engine the person signed in again (new tokens are stored): after "sign
    /// in required" it runs a pass at once and its timers run again.
    /// Not dropped when the command queue is full (as a repeated local write may be):
    /// it is then sent as soon as there is room.
    pub fn signed_in(&self) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.tx.try_send(Command::SignedIn) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let tx = self.tx.clone();
                rt.spawn(async move { tx.send(cmd).await });
            }
        }
    }

    /// Tell the engine a local write happened (it debounces).
    pub fn local_write(&self) {
        let _ = self.tx.try_send(Command::LocalWrite);
    }

    pub fn network_changed(&self) {
        let _ = self.tx.try_send(Command::NetworkChanged);
    }

    pub fn status(&self) -> EngineStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<EngineStatus> {
        self.status.clone()
    }

    /// Stop, and return once the task has ended (and released the sync lock). A
    /// running pass gets `timeout` to finish; after that it is cancelled at its next
    /// await point, as a crash there would end it: what it sealed is resent byte for
    /// byte by the next pass, and what it had not committed was never kept.
    pub async fn stop(mut self, timeout: Duration) {
        let Some(mut join) = self.join.take() else {
            return;
        };
        let tx = self.tx.clone();
        let ended = tokio::time::timeout(timeout, async {
            // Inside the timeout: with the command queue full, even sending waits.
            let _ = tx.send(Command::Stop).await;
            let _ = (&mut join).await;
        })
        .await;
        if ended.is_err() {
            join.abort();
            // Returns once the cancelled task has been dropped, its lock with it.
            let _ = join.await;
        }
    }
}

/// Start the engine on its own store connection. Must be called inside a tokio
/// runtime. `lock` proves this process may sync the data directory; `clock` is the
/// embedder's (the task never reads the wall clock itself).
pub fn spawn(
    store: Store,
    lock: SyncLock,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
) -> Result<EngineHandle, SyncError> {
    let initial = EngineStatus::starting(LocalState::read(&store)?);
    let (status, status_rx) = Publisher::new(initial);
    let (tx, rx) = mpsc::channel::<Command>(64);
    // Dropped when the task ends: the network watcher stops then.
    let (alive, task_ended) = oneshot::channel::<()>();
    if config.watch_network {
        // A weak sender: the watcher must not keep the command channel open, or a
        // dropped handle would never end the task.
        let wake = tx.downgrade();
        tokio::spawn(async move {
            tokio::select! {
                () = crate::netwatch::watch(move || {
                    wake.upgrade().is_some_and(|tx| {
                        !matches!(
                            tx.try_send(Command::NetworkChanged),
                            Err(mpsc::error::TrySendError::Closed(_))
                        )
                    })
                }) => {}
                _ = task_ended => {}
            }
        });
    }
    let join = tokio::spawn(run(store, lock, config, status, rx, clock, alive));
    Ok(EngineHandle {
        tx,
        status: status_rx,
        join: Some(join),
    })
}

/// Milliseconds since the task started: the machine's clock.
fn elapsed_ms(started: Instant) -> Millis {
    Instant::now().duration_since(started).as_millis() as Millis
}

/// The task's loop, until the machine says exit; gives the store back. `_lock` lives
/// exactly as long as the task: it is dropped when the task ends or is cancelled.
async fn run(
    mut store: Store,
    _lock: SyncLock,
    config: EngineConfig,
    status: Publisher,
    mut rx: mpsc::Receiver<Command>,
    clock: Arc<dyn Clock>,
    _alive: oneshot::Sender<()>,
) -> Store {
    let started = Instant::now();
    let seed = uuid::Uuid::new_v4().as_u128() as u64;
    let mut machine = Machine::new(config.timing.clone(), seed);
    let mut wake: Option<Millis> = None;
    let mut queue = VecDeque::from([Event::Started]);
    let mut client: Option<SyncClient> = None;
    'outer: loop {
        while let Some(event) = queue.pop_front() {
            for ins in machine.handle(elapsed_ms(started), event) {
                match ins {
                    Instruction::Exit => break 'outer,
                    Instruction::WakeAt(t) => wake = Some(t),
                    Instruction::Publish(c) => status.publish(&store, |s| s.connectivity = c),
                    Instruction::Probe => {
                        let ev = match session_client(&store, &mut client, &config.client) {
                            Ok(c) => match c.health().await {
                                Ok(_) => Event::ProbeOk,
                                Err(e) => Event::ProbeFailed(e.to_string()),
                            },
                            Err(NoClient::NotSignedIn) => {
                                Event::ProbeFailed("not signed in".into())
                            }
                            Err(NoClient::BadAddress) => Event::ProbeFailed(BAD_ADDRESS.into()),
                        };
                        queue.push_back(ev);
                    }
                    Instruction::RunPass { ignore_backoff } => {
                        let ev = match session_client(&store, &mut client, &config.client) {
                            Ok(c) => {
                                let opts = PassOptions {
                                    ignore_backoff,
                                    ..config.pass.clone()
                                };
                                pass(&mut store, &c, &opts, &status, started, clock.as_ref()).await
                            }
                            Err(why) => Event::PassFailed {
                                offline: false,
                                reason: match why {
                                    NoClient::NotSignedIn => SyncError::NotSignedIn.to_string(),
                                    NoClient::BadAddress => BAD_ADDRESS.into(),
                                },
                                retry_after: None,
                            },
                        };
                        queue.push_back(ev);
                    }
                }
            }
        }
        let sleep_for = wake
            .map(|t| t.saturating_sub(elapsed_ms(started)))
            .unwrap_or(3_600_000);
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Command::SyncNow) => queue.push_back(Event::SyncNow),
                Some(Command::SignedIn) => queue.push_back(Event::SignedIn),
                Some(Command::LocalWrite) => {
                    status.publish(&store, |_| {});
                    queue.push_back(Event::LocalWrite);
                }
                Some(Command::NetworkChanged) => queue.push_back(Event::NetworkChanged),
                Some(Command::Stop) | None => queue.push_back(Event::Stop),
            },
            _ = tokio::time::sleep(Duration::from_millis(sleep_for)) => {
                wake = None;
                queue.push_back(Event::Tick);
            }
        }
    }
    store
}

const BAD_ADDRESS: &str = "the server address is not valid";

/// Why there is no client to reach the server with.
#[derive(Debug)]
enum NoClient {
    /// No session (or it could not be read).
    NotSignedIn,
    /// The session's server address does not make a client.
    BadAddress,
}

/// The client for the signed-in session's server: the one in `cached` while the
/// address is unchanged, else a new one (kept in `cached` for next time).
fn session_client(
    store: &Store,
    cached: &mut Option<SyncClient>,
    opts: &ClientOptions,
) -> Result<SyncClient, NoClient> {
    let url = match store.session() {
        Ok(Some(s)) => s.server_url,
        _ => return Err(NoClient::NotSignedIn),
    };
    if cached
        .as_ref()
        .map(|c| c.base_url() != url.trim_end_matches('/'))
        .unwrap_or(true)
    {
        *cached = SyncClient::new(&url, opts).ok();
    }
    cached.clone().ok_or(NoClient::BadAddress)
}

/// Run one pass, publish its outcome, and say how it went as the machine's event.
async fn pass(
    store: &mut Store,
    client: &SyncClient,
    opts: &PassOptions,
    status: &Publisher,
    started: Instant,
    clock: &dyn Clock,
) -> Event {
    let before = counts_for_notice(store);
    let pending_at_start = before.as_ref().map(|c| c.pending);
    let mut on_progress = |p: Progress| status.progress(p, pending_at_start);
    let mut report = PassReport::default();
    let result = run_pass_into(
        store,
        client,
        &|| clock.now(),
        opts,
        &mut on_progress,
        &mut report,
    )
    .await;
    let notices = new_notices(before.as_ref(), counts_for_notice(store).as_ref());
    // Also after a failed pass: what it applied before failing is on the device.
    let changed = u64::from(report.changed_local_data());
    match result {
        Ok(()) => {
            status.publish(store, |s| {
                s.progress = None;
                s.last_error = None;
                s.notices += notices;
                s.data_changes += changed;
            });
            let retry_at = store.next_retry_at().ok().flatten().map(|t| {
                let delta = (t - clock.now()).num_milliseconds().max(0) as u64;
                elapsed_ms(started) + delta
            });
            Event::PassOk { retry_at }
        }
        Err(SyncError::SignInRequired(reason)) => {
            status.publish(store, |s| {
                s.progress = None;
                s.last_error = Some(reason.clone());
                s.data_changes += changed;
            });
            Event::SignInRequired(reason)
        }
        Err(e) => {
            let text = e.to_string();
            status.publish(store, |s| {
                s.progress = None;
                s.last_error = Some(text.clone());
                s.notices += notices;
                s.data_changes += changed;
            });
            Event::PassFailed {
                offline: e.is_offline(),
                reason: text,
                retry_after: e.retry_after().map(|d| d.as_millis() as u64),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::{DateTime, Utc};
    use outpost_protocol::wire::Health;
    use outpost_protocol::Role;
    use outpost_store::{random_bytes, DbKey, Session};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::Notify;

    struct Fixed(DateTime<Utc>);

    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    /// A sync server that answers its health check and holds every other request open
    /// until the client goes away: a pass stuck on a slow link.
    struct StallServer {
        url: String,
        /// Requests held open so far, and a wake-up when one arrives.
        held: Arc<(AtomicUsize, Notify)>,
        /// Held requests whose connection has since closed.
        closed: Arc<(AtomicUsize, Notify)>,
        /// Close every held connection (the pass then fails as offline).
        hang_up: Arc<Notify>,
        /// The request line (method and path) of each held request, in order.
        requests: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl StallServer {
        async fn start() -> StallServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let held: Arc<(AtomicUsize, Notify)> = Arc::default();
            let closed: Arc<(AtomicUsize, Notify)> = Arc::default();
            let hang_up: Arc<Notify> = Arc::default();
            let requests: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
            let (h, c, u, r) = (
                held.clone(),
                closed.clone(),
                hang_up.clone(),
                requests.clone(),
            );
            tokio::spawn(async move {
                while let Ok((conn, _)) = listener.accept().await {
                    tokio::spawn(Self::serve(
                        conn,
                        h.clone(),
                        c.clone(),
                        u.clone(),
                        r.clone(),
                    ));
                }
            });
            StallServer {
                url,
                held,
                closed,
                hang_up,
                requests,
            }
        }

        async fn serve(
            mut conn: TcpStream,
            held: Arc<(AtomicUsize, Notify)>,
            closed: Arc<(AtomicUsize, Notify)>,
            hang_up: Arc<Notify>,
            requests: Arc<std::sync::Mutex<Vec<String>>>,
        ) {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + length {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                buf.drain(..end + 4 + length);
                if head.starts_with("get /health") {
                    let body = serde_json::to_string(&Health {
                        status: "ok".into(),
                        protocol_version: outpost_protocol::PROTOCOL_VERSION,
                        server_time: DateTime::UNIX_EPOCH,
                    })
                    .unwrap();
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                    continue;
                }
                let hung_up = hang_up.notified();
                let line = head.lines().next().unwrap_or_default();
                requests.lock().unwrap().push(line.to_owned());
                held.0.fetch_add(1, Ordering::SeqCst);
                held.1.notify_waiters();
                // Never answer; notice when the client gives up on the connection.
                tokio::select! {
                    () = async { while matches!(conn.read(&mut chunk).await, Ok(n) if n > 0) {} } => {}
                    () = hung_up => {}
                }
                closed.0.fetch_add(1, Ordering::SeqCst);
                closed.1.notify_waiters();
                return;
            }
        }

        /// Wait until `count` reaches `n` (at most `within`); whether it did.
        async fn reaches(count: &(AtomicUsize, Notify), n: usize, within: Duration) -> bool {
            tokio::time::timeout(within, async {
                loop {
                    let woken = count.1.notified();
                    if count.0.load(Ordering::SeqCst) >= n {
                        return;
                    }
                    woken.await;
                }
            })
            .await
            .is_ok()
        }
    }

    /// A signed-in data directory whose session names `url`.
    fn signed_in(url: &str, now: DateTime<Utc>) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let key = DbKey::from_bytes(random_bytes::<32>().unwrap());
        let mut store = Store::create(dir.path(), &key).unwrap();
        let device_id = store.device_id(now).unwrap();
        store
            .set_session(&Session {
                server_url: url.into(),
                username: "tech1".into(),
                role: Role::Technician,
                device_id,
                access_token: "access".into(),
                access_expires_at: now + chrono::Duration::hours(1),
                refresh_token: "refresh".into(),
                refresh_expires_at: now + chrono::Duration::days(30),
                needs_sign_in: None,
            })
            .unwrap();
        (dir, store)
    }

    fn config() -> EngineConfig {
        EngineConfig {
            client: ClientOptions {
                ca_cert_pem: None,
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(120),
            },
            watch_network: false,
            ..EngineConfig::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_engine_keeps_the_sync_lock_until_its_pass_has_really_ended() {
        let server = StallServer::start().await;
        let now = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let (dir, store) = signed_in(&server.url, now);
        let lock = SyncLock::acquire(dir.path()).unwrap();
        let engine = spawn(store, lock, config(), Arc::new(Fixed(now))).unwrap();
        assert!(
            StallServer::reaches(&server.held, 1, Duration::from_secs(10)).await,
            "the engine's first pass is waiting for the server"
        );

        engine.stop(Duration::from_millis(100)).await;

        let _lock = SyncLock::acquire(dir.path())
            .expect("stop returns once the engine's task has ended, and its lock with it");
        assert!(
            StallServer::reaches(&server.closed, 1, Duration::from_secs(5)).await,
            "the sync lock was released while the stopped engine's pass still waits for the server"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_engine_holds_the_sync_lock_until_its_pass_ends() {
        let server = StallServer::start().await;
        let now = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let (dir, store) = signed_in(&server.url, now);
        let lock = SyncLock::acquire(dir.path()).unwrap();
        let engine = spawn(store, lock, config(), Arc::new(Fixed(now))).unwrap();
        assert!(StallServer::reaches(&server.held, 1, Duration::from_secs(10)).await);

        drop(engine);
        assert!(
            SyncLock::acquire(dir.path()).is_err(),
            "the pass still runs: its lock is held"
        );
        server.hang_up.notify_waiters();
        assert!(StallServer::reaches(&server.closed, 1, Duration::from_secs(5)).await);
        assert!(
            lock_released(dir.path(), Duration::from_secs(10)).await,
            "the task ended with its pass and let the lock go"
        );
    }

    /// Poll until the data directory's sync lock can be taken (at most `within`):
    /// whether it could.
    async fn lock_released(dir: &std::path::Path, within: Duration) -> bool {
        let start = Instant::now();
        while SyncLock::acquire(dir).is_err() {
            if start.elapsed() > within {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_engine_that_watches_the_network_ends_and_lets_the_lock_go() {
        // No server at this address: the engine is offline, between two probes.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let now = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let (dir, store) = signed_in(&url, now);
        let lock = SyncLock::acquire(dir.path()).unwrap();
        let engine = spawn(
            store,
            lock,
            EngineConfig {
                watch_network: true,
                ..config()
            },
            Arc::new(Fixed(now)),
        )
        .unwrap();

        drop(engine);
        assert!(
            lock_released(dir.path(), Duration::from_secs(10)).await,
            "the dropped engine's task never ended: the network watcher kept it alive, and the sync lock with it"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_engine_reads_the_injected_clock_not_the_wall_clock() {
        // To the injected clock (October 2024) the access token is good for another
        // hour; by the wall clock it expired long ago and would be refreshed first.
        let server = StallServer::start().await;
        let now = DateTime::UNIX_EPOCH + chrono::Duration::days(20_000);
        let (dir, store) = signed_in(&server.url, now);
        let lock = SyncLock::acquire(dir.path()).unwrap();
        let engine = spawn(store, lock, config(), Arc::new(Fixed(now))).unwrap();
        assert!(
            StallServer::reaches(&server.held, 1, Duration::from_secs(10)).await,
            "the engine's first pass sends a request"
        );
        let first = server.requests.lock().unwrap()[0].clone();
        assert!(
            !first.contains(outpost_protocol::wire::paths::REFRESH),
            "the pass refreshed a token that is fresh by the injected clock: {first}"
        );
        engine.stop(Duration::from_millis(100)).await;
    }
}
