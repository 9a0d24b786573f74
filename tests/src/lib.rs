//! Harness for cross-part end-to-end tests: a real `outpost-server` process on a
//! loopback port, a TCP proxy the test controls (cut, black-hole, delay, throttle,
//! reset mid-request, drop the reply after the server committed), and devices that
//! are real `outpost-core` clients on their own encrypted data directories.
//!
//! The binaries come from the same target directory as the test (`cargo test
//! --workspace` builds them); a clear message says so when they are missing.

#![allow(clippy::unwrap_used)]

pub mod cli;
pub mod convergence;
pub mod http_faults;
pub mod kill;
pub mod load;
pub mod oracle;
pub mod perf;
pub mod powercut;
pub mod proxy;
pub mod results;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use outpost_core::{
    ClientOptions, Clock, EngineConfig, KeyEnv, MemoryCredentialStore, OpenOptions, Outpost,
    PassOptions, PassReport, SystemClock,
};
use outpost_protocol::Status;
use outpost_sync::Timing;
use zeroize::Zeroizing;

pub use proxy::{Fault, Proxy};

/// The demo password of the seeded users.
pub const DEMO_PASSWORD: &str = "outpost-demo";

/// `target/tmp` (beside the profile directories), for files tests leave for a person.
pub fn target_tmp() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .and_then(|profile| profile.parent())
        .map(|target| target.join("tmp"))
        .unwrap_or_else(std::env::temp_dir)
}

/// A binary built beside this test.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run the tests with `cargo test --workspace` (or `make test`)",
        path.display()
    );
    path
}

/// Start `cmd` with stdin, stdout and stderr piped, write `stdin` to it (if any) and
/// close its input.
pub fn spawn_with_input(cmd: &mut Command, stdin: Option<&str>) -> std::process::Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {:?}: {e}", cmd.get_program()));
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child
}

fn run_server_cmd(args: &[&str], stdin: Option<&str>) -> String {
    let child = spawn_with_input(Command::new(bin("outpost-server")).args(args), stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "outpost-server {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A server database seeded with the demo fleet (dispatcher, tech1…tech5, 500 orders,
/// 50,000 inventory items), copied from a template made once per test run.
pub fn seeded_db(dir: &Path) -> PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    let template = TEMPLATE.get_or_init(|| {
        let base = target_tmp().join(format!("seeded-template-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).expect("template dir");
        let db = base.join("server.db");
        run_server_cmd(
            &[
                "seed",
                "--demo",
                "--db",
                &format!("sqlite:{}", db.display()),
            ],
            None,
        );
        db
    });
    let db = dir.join("server.db");
    std::fs::copy(template, &db).expect("copy template");
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", template.display()));
        if side.exists() {
            std::fs::copy(&side, format!("{}{suffix}", db.display())).expect("copy side file");
        }
    }
    db
}

/// A server database with the demo fleet (dispatcher, tech1…tech5, 500 orders) and
/// only 200 inventory items, so that priming stays quick.
pub fn small_fleet(dir: &Path) -> PathBuf {
    let db = dir.join("server.db");
    run_server_cmd(
        &[
            "seed",
            "--demo",
            "--items",
            "200",
            "--db",
            &format!("sqlite:{}", db.display()),
        ],
        None,
    );
    db
}

/// Copy a SQLite database with its `-wal` and `-shm` files (the server stopped), or
/// put such a copy back: a backup and a restore as an administrator makes them.
pub fn copy_sqlite(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let (src, dst) = (
            PathBuf::from(format!("{}{suffix}", from.display())),
            PathBuf::from(format!("{}{suffix}", to.display())),
        );
        let _ = std::fs::remove_file(&dst);
        if src.exists() {
            std::fs::copy(&src, &dst).expect("copy the database");
        }
    }
}

/// `PRAGMA integrity_check` of a SQLite database (the server stopped), by the `sqlite3`
/// tool (scripts/deps.sh installs it): "ok" when sound, else what it found.
pub fn sqlite_integrity(db: &Path) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check;")
        .output()
        .expect("sqlite3 (scripts/deps.sh installs it)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// A running `outpost-server serve` on a loopback port it chose.
pub struct Server {
    child: Child,
    pub db: PathBuf,
    pub url: String,
    pub addr: std::net::SocketAddr,
    extra: Vec<String>,
    pub log: Arc<Mutex<String>>,
    /// The `--db` argument (`sqlite:PATH` or a PostgreSQL URL).
    pub db_url: String,
}

/// The metrics token the servers these tests start are given (`/metrics` needs it).
pub const METRICS_TOKEN: &str = "e2e-metrics-token";

impl Server {
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Server::start_with(&format!("sqlite:{}", db.display()), extra, &[])
    }

    /// Start on any database (`sqlite:PATH` or a PostgreSQL URL) with extra
    /// environment variables (e.g. `FAILPOINTS`, to arm a crash point).
    pub fn start_with(db_url: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(bin("outpost-server"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db_url)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("OUTPOST_METRICS_TOKEN", METRICS_TOKEN)
            .env_remove("FAILPOINTS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start outpost-server");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<std::net::SocketAddr>();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        let addr = rest
                            .split("://")
                            .nth(1)
                            .unwrap_or(rest)
                            .split_whitespace()
                            .next()
                            .unwrap_or("");
                        if let Ok(a) = addr.trim_end_matches(['"', ',']).parse() {
                            let _ = tx.send(a);
                        }
                    }
                    if let Ok(mut l) = log.lock() {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "outpost-server did not say where it listens: {}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                )
            });
        Server {
            child,
            db: PathBuf::from(db_url.strip_prefix("sqlite:").unwrap_or("")),
            url: format!("http://{addr}"),
            addr,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            log,
            db_url: db_url.to_owned(),
        }
    }

    /// The server process's id (for a profiler to attach to).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has ended (a crash point aborted it, say).
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Start again on the same database (on a new port) with `env` (e.g. a crash
    /// point armed, or none).
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.kill();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let next = Server::start_with(&self.db_url, &extra, env);
        let old = std::mem::replace(self, next);
        drop(old);
    }

    /// Kill the process (no graceful shutdown: as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start again on the same database (on a new port).
    pub fn restart(&mut self) {
        self.restart_with(&[]);
    }

    pub fn db_arg(&self) -> String {
        self.db_url.clone()
    }

    /// How many requests to `route` (e.g. `paths::PUSH`) the server has answered with
    /// `status`, from its metrics endpoint.
    pub fn answered(&self, route: &str, status: u16) -> u64 {
        use std::io::{Read, Write};
        let mut conn = std::net::TcpStream::connect(self.addr).expect("connect for /metrics");
        write!(
            conn,
            "GET {} HTTP/1.0\r\nHost: {}\r\nAuthorization: Bearer {METRICS_TOKEN}\r\n\r\n",
            outpost_protocol::wire::paths::METRICS,
            self.addr
        )
        .expect("ask for /metrics");
        let mut text = String::new();
        conn.read_to_string(&mut text).expect("read /metrics");
        let series = format!("route=\"{route}\",status=\"{status}\"}}");
        text.lines()
            .filter(|l| l.starts_with("outpost_http_requests_total{") && l.contains(&series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Run an `outpost-server` admin command on this server's database.
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut all: Vec<&str> = args.to_vec();
        let db = self.db_arg();
        all.extend(["--db", &db]);
        run_server_cmd(&all, stdin)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A device: a real client on its own encrypted data directory.
pub struct Device {
    pub app: Outpost,
    pub dir: tempfile::TempDir,
    pub key: String,
}

pub fn random_key() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub fn fast_client() -> ClientOptions {
    ClientOptions {
        ca_cert_pem: None,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(20),
    }
}

/// A device clock that is wrong by a fixed amount (`behind` the real time; negative:
/// ahead), as a laptop's clock can be.
#[derive(Debug, Clone, Copy)]
pub struct SkewedClock {
    pub behind: chrono::Duration,
}

impl Clock for SkewedClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        SystemClock.now() - self.behind
    }
}

impl Device {
    pub fn options(dir: &Path, key: &str) -> OpenOptions {
        Self::options_with_clock(dir, key, Arc::new(SystemClock))
    }

    pub fn options_with_clock(dir: &Path, key: &str, clock: Arc<dyn Clock>) -> OpenOptions {
        OpenOptions {
            data_dir: dir.to_path_buf(),
            credentials: Arc::new(MemoryCredentialStore::default()),
            env: KeyEnv {
                db_key: Some(Zeroizing::new(key.to_owned())),
                passphrase: None,
            },
            clock,
        }
    }

    pub fn new() -> Device {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A device whose clock is `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Device {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = random_key();
        let app = Outpost::init(Self::options_with_clock(dir.path(), &key, clock), None)
            .expect("init device");
        Device { app, dir, key }
    }

    /// Close and open again (as after a restart of the app).
    pub fn reopen(&mut self) {
        let app = Outpost::open(Self::options(self.dir.path(), &self.key)).expect("reopen");
        self.app = app;
    }

    pub async fn login(&mut self, url: &str, user: &str) {
        self.app
            .login(url, user, DEMO_PASSWORD, &fast_client())
            .await
            .expect("login");
    }

    /// A new device signed in as `user` at `url`, with its first pass (the priming) done.
    pub async fn primed(url: &str, user: &str) -> Device {
        let mut dev = Device::new();
        dev.login(url, user).await;
        dev.sync().await.expect("the first sync");
        dev
    }

    /// One pass, as `outpost sync` or the app's "Sync now" runs it (ignoring backoff).
    pub async fn sync(&mut self) -> Result<PassReport, outpost_core::CoreError> {
        let mut ignore = |_| {};
        let pass = PassOptions {
            ignore_backoff: true,
            ..PassOptions::default()
        };
        self.app.sync_once(&fast_client(), pass, &mut ignore).await
    }

    /// One manual pass with custom sizes.
    pub async fn sync_with(
        &mut self,
        pass: PassOptions,
    ) -> Result<PassReport, outpost_core::CoreError> {
        let mut ignore = |_| {};
        let pass = PassOptions {
            ignore_backoff: true,
            ..pass
        };
        self.app.sync_once(&fast_client(), pass, &mut ignore).await
    }

    pub fn order_id(&self, pick: impl Fn(&outpost_protocol::WorkOrder) -> bool) -> String {
        self.app
            .orders()
            .expect("orders")
            .into_iter()
            .find(|r| pick(&r.order))
            .expect("an order that fits")
            .order
            .id
            .to_string()
    }
}

impl Default for Device {
    fn default() -> Self {
        Device::new()
    }
}

/// A fresh copy of the seeded server database, the server on it, and a proxy in
/// front of the server (devices talk to the proxy).
pub async fn setup(extra: &[&str]) -> (tempfile::TempDir, Server, Proxy) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let db = seeded_db(tmp.path());
    let server = Server::start(&db, extra);
    let proxy = Proxy::start(server.addr).await;
    (tmp, server, proxy)
}

/// Engine timers shortened so that a test sees retries within seconds.
pub fn fast_engine() -> EngineConfig {
    EngineConfig {
        client: fast_client(),
        timing: Timing {
            probe_backoff_min_ms: 100,
            probe_backoff_max_ms: 1_000,
            periodic_ms: 1_000,
            debounce_ms: 50,
        },
        pass: PassOptions {
            retry_delay_ms_min: 100,
            retry_delay_ms_max: 1_000,
            ..PassOptions::default()
        },
        watch_network: false,
    }
}

/// How many of an order's notes on `dev` read `text`.
pub fn notes_with(dev: &Device, id: &str, text: &str) -> usize {
    dev.app
        .order(id)
        .expect("order")
        .order
        .notes
        .iter()
        .filter(|n| n.text == text)
        .count()
}

/// An order on `dev` that is open for edits (scheduled, en route or in progress).
pub fn open_order(dev: &Device) -> String {
    dev.order_id(|o| {
        matches!(
            o.status,
            Status::Scheduled | Status::InProgress | Status::EnRoute
        )
    })
}

/// Poll `check` until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = tokio::time::Instant::now();
    while !check() {
        assert!(start.elapsed() < timeout, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Why a test that adds an address to `lo` is ignored in a plain `cargo test`.
pub const NEEDS_ROOT: &str =
    "needs root (CAP_NET_ADMIN) to add an address to lo: make test runs it, as root in CI";

/// Whether this run asked for the ignored tests too (`--include-ignored` or
/// `--ignored`, as `make test` passes them): for harness-less targets (the benches'
/// smoke runs), which must follow the same rule as `#[ignore]`d tests.
pub fn ignored_tests_asked_for() -> bool {
    std::env::args().any(|a| a == "--include-ignored" || a == "--ignored")
}

/// An address from the documentation range (192.0.2.0/24) on the loopback interface,
/// removed again on drop: a real OS network change, as joining a network makes one.
/// Needs CAP_NET_ADMIN (root, as in CI) and the `ip` tool (iproute2), so the tests that
/// use it are ignored with [`NEEDS_ROOT`] as the reason: asked for without root, they
/// fail saying so.
pub struct TestAddress(String);

impl TestAddress {
    pub fn add() -> TestAddress {
        for _ in 0..32 {
            let octet = 1 + uuid::Uuid::new_v4().as_bytes()[0] % 254;
            let addr = format!("192.0.2.{octet}/32");
            let out = Command::new("ip")
                .args(["addr", "add", &addr, "dev", "lo"])
                .output()
                .expect("the ip tool (package iproute2) is installed");
            if out.status.success() {
                return TestAddress(addr);
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("File exists"),
                "cannot add {addr} to lo ({}): this test makes a real network change and needs CAP_NET_ADMIN; run `make test` as root, as CI does",
                err.trim()
            );
        }
        panic!("no free address in 192.0.2.0/24 on lo");
    }
}

impl Drop for TestAddress {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["addr", "del", &self.0, "dev", "lo"])
            .output();
    }
}

/// A tiny valid PNG (the signature pad's output).
pub fn png(marker: &str) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(marker.as_bytes());
    bytes
}

/// One figure for docs/benchmarks.md's "Latest run": printed as a `bench-result:` line,
/// which `make bench` collects (`cargo xtask bench-report`; the fields are described
/// there). `quick` marks a smoke run's figure (small sizes, not a measurement).
pub fn bench_result(quick: bool, mut figure: serde_json::Value) {
    figure["quick"] = serde_json::Value::Bool(quick);
    println!("bench-result: {figure}");
}

/// Replace the text between the `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers of
/// `docs/benchmarks.md` in `docs` with `generated`: a benchmark's own section (`make
/// bench-scale` writes `bench-scale` and `bench-growth`).
pub fn write_docs_section(docs: &Path, name: &str, generated: &str) -> std::io::Result<()> {
    let path = docs.join("benchmarks.md");
    let text = std::fs::read_to_string(&path)?;
    let (begin, end) = (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->"),
    );
    let (Some(a), Some(b)) = (text.find(&begin), text.find(&end)) else {
        return Err(std::io::Error::other(format!(
            "{} has no {begin} … {end} markers",
            path.display()
        )));
    };
    let out = format!("{}{begin}\n{generated}{}", &text[..a], &text[b..]);
    std::fs::write(&path, out)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The load average over 1, 5 and 15 minutes (`/proc/loadavg`), for a benchmark's
/// record of how busy the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
