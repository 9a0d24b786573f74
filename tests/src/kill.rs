//! Kill loops: real `outpost` and `outpost-server` processes killed at the k-th hit of
//! a named crash point (`FAILPOINTS`, test builds only), while people go on working;
//! then everything restarts, syncs until quiet, and the [`crate::oracle`] counts what
//! was lost or doubled.
//!
//! A [`Fleet`] is one server database (SQLite, or PostgreSQL with two server
//! instances), a proxy in front of each instance (so a restarted server keeps the
//! address the devices know), several technicians on `outpost` CLI devices (one
//! process per command: each can be killed), and a dispatcher in process (never killed:
//! reassignments, notes from the office, resolutions). [`Fleet::round`] makes pending
//! work, arms one crash point, runs the sync it kills, and counts the kill when work
//! was pending at the moment of death. Randomness comes from one printed seed
//! ([`Rng`]), so a failing run is reproduced by its seed.
//!
//! Results go to `<target>/reliability/<part>.json` ([`Tally::write`]), from which
//! `cargo xtask reliability` writes docs/RELIABILITY.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use outpost_core::{FieldChoice, NewOrder, OrderEdit};
use outpost_protocol::Quantity;
use uuid::Uuid;

use crate::cli::CliDevice;
use crate::oracle::{self, Change, DeviceReport, Journal, ServerState, Verdict};
use crate::{bin, png, Device, Proxy, Server};

/// Which process a crash point lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// One named crash point of the sync path.
#[derive(Debug, Clone, Copy)]
pub struct CrashPoint {
    pub name: &'static str,
    pub side: Side,
    /// What the point needs to be reached: photos to upload, or a server change to
    /// pull.
    pub needs: Needs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any pending edit.
    Edits,
    /// A completion with a photo not yet uploaded.
    Photo,
    /// A change on the server the device has not pulled.
    ServerChange,
}

/// Every crash point on the sync path (the names in the code's `crash_point!`).
pub const CRASH_POINTS: &[CrashPoint] = &[
    CrashPoint {
        name: "client:after-read-batch",
        side: Side::Client,
        needs: Needs::Edits,
    },
    CrashPoint {
        name: "client:after-seal",
        side: Side::Client,
        needs: Needs::Edits,
    },
    CrashPoint {
        name: "client:after-upload",
        side: Side::Client,
        needs: Needs::Photo,
    },
    CrashPoint {
        name: "client:after-request-sent",
        side: Side::Client,
        needs: Needs::Edits,
    },
    CrashPoint {
        name: "client:before-record-results",
        side: Side::Client,
        needs: Needs::Edits,
    },
    CrashPoint {
        name: "client:after-record-results",
        side: Side::Client,
        // Once the last batch is recorded the outbox may be empty: the server change
        // not yet pulled is the work pending.
        needs: Needs::ServerChange,
    },
    CrashPoint {
        name: "client:pull-page-before-commit",
        side: Side::Client,
        needs: Needs::ServerChange,
    },
    CrashPoint {
        name: "server:after-mutation",
        side: Side::Server,
        needs: Needs::Edits,
    },
    CrashPoint {
        name: "server:before-commit",
        side: Side::Server,
        needs: Needs::Edits,
    },
    CrashPoint {
        name: "server:after-commit",
        side: Side::Server,
        needs: Needs::Edits,
    },
];

/// Whose process dies: the one the point is in, or both sides at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Only the process the crash point lives in.
    Alone,
    /// That process at the point, and the other side killed at the same moment.
    Both,
}

/// A small seeded generator (SplitMix64): the same seed, the same run.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// The seed for a run: `OUTPOST_KILL_SEED` if set, else one made now; printed either
/// way.
pub fn seed_from_env(part: &str) -> u64 {
    let seed = std::env::var("OUTPOST_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::from_le_bytes(Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or([7; 8]))
        });
    eprintln!("{part}: seed {seed} (reproduce with OUTPOST_KILL_SEED={seed})");
    seed
}

/// How many counted kills to reach: `OUTPOST_KILLS` if set, else `default`.
pub fn kills_from_env(default: usize) -> usize {
    std::env::var("OUTPOST_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Whether the binaries beside this test were built with their crash points (a
/// workspace test build has them; `cargo build --bins` alone does not): the point
/// `process:start` aborts a binary that has them at once.
pub fn assert_crash_points_built() {
    for (name, args) in [
        ("outpost", &["--version"][..]),
        ("outpost-server", &["--version"][..]),
    ] {
        let out = std::process::Command::new(bin(name))
            .args(args)
            .env("FAILPOINTS", "process:start=return")
            .output()
            .expect("run the binary");
        assert!(
            signal_of(out.status) == Some(6),
            "{name} has no crash points (it ran to the end with FAILPOINTS set): build the \
             binaries with their test hooks, as a workspace test run does (`cargo test \
             --workspace --no-run`), or `cargo build -p outpost-cli -p outpost-server \
             --features outpost-core/test-support,outpost-server/test-support`"
        );
    }
}

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal_of(_status: ExitStatus) -> Option<i32> {
    None
}

/// Kills per crash point.
#[derive(Debug, Clone, Default)]
pub struct PointTally {
    /// The process died at the point.
    pub kills: usize,
    /// … with work pending (unacknowledged outbox rows, or a server change not yet
    /// applied): only these count.
    pub counted: usize,
}

/// A part's results, written for docs/RELIABILITY.md.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub points: BTreeMap<String, PointTally>,
    pub rounds: usize,
    pub checks: usize,
    pub changes: usize,
    pub lost: usize,
    pub doubled: usize,
    pub shown: usize,
}

impl Tally {
    pub fn counted(&self) -> usize {
        self.points.values().map(|p| p.counted).sum()
    }

    fn add_verdict(&mut self, v: &Verdict) {
        self.checks += 1;
        self.changes = v.checked;
        self.lost = v.lost.len();
        self.doubled = v.doubled.len();
        self.shown = v.shown;
    }

    /// Write `<target>/reliability/<part>.json`: what ran, kills per crash point,
    /// lost and doubled, and the command and seed to reproduce.
    pub fn write(
        &self,
        part: &str,
        title: &str,
        what: &str,
        command: &str,
        seed: u64,
        took: Duration,
    ) {
        let dir = crate::target_tmp()
            .parent()
            .map(|t| t.join("reliability"))
            .unwrap_or_else(|| PathBuf::from("reliability"));
        let _ = std::fs::create_dir_all(&dir);
        let points: serde_json::Map<String, serde_json::Value> = self
            .points
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    serde_json::json!({"kills": v.kills, "counted": v.counted}),
                )
            })
            .collect();
        let body = serde_json::json!({
            "part": part,
            "title": title,
            "what": what,
            "command": command,
            "seed": seed.to_string(),
            "rounds": self.rounds,
            "oracle_checks": self.checks,
            "changes_checked": self.changes,
            "shown_to_a_person": self.shown,
            "counted_kills": self.counted(),
            "points": points,
            "lost": self.lost,
            "doubled": self.doubled,
            "seconds": took.as_secs(),
        });
        let path = dir.join(format!("{part}.json"));
        if let Err(e) = std::fs::write(&path, format!("{body:#}\n")) {
            eprintln!("could not write {}: {e}", path.display());
        }
        eprintln!(
            "{part}: {}",
            serde_json::to_string(&body).unwrap_or_default()
        );
    }
}

/// The database behind the fleet's server(s).
#[derive(Debug, Clone)]
pub enum Backend {
    /// One server on a SQLite file.
    Sqlite,
    /// Two server instances on one PostgreSQL database (`OUTPOST_TEST_PG_URL`).
    Postgres { base_url: String },
}

/// A technician's device and whom it talks to.
pub struct Tech {
    pub dev: CliDevice,
    pub user: String,
    /// Which server instance (proxy) it talks to.
    pub via: usize,
}

/// A whole fleet under test.
pub struct Fleet {
    pub rt: tokio::runtime::Runtime,
    pub servers: Vec<Server>,
    pub proxies: Vec<Proxy>,
    pub techs: Vec<Tech>,
    pub dispatcher: Device,
    pub journal: Journal,
    pub rng: Rng,
    pub tally: Tally,
    files: tempfile::TempDir,
    photo_seed: u32,
    _tmp: tempfile::TempDir,
}

/// What a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundOutcome {
    pub killed: bool,
    pub counted: bool,
}

fn fresh_pg_database(base_url: &str) -> String {
    let name = format!("outpost_kill_{}", Uuid::new_v4().simple());
    let out = std::process::Command::new("psql")
        .arg(base_url)
        .args(["-q", "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql (PostgreSQL's client) is installed by scripts/with-postgres.sh");
    assert!(
        out.status.success(),
        "create a test database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (head, _) = base_url.rsplit_once('/').expect("URL with a database name");
    format!("{head}/{name}")
}

impl Fleet {
    /// The demo fleet (small inventory) on `backend`, `techs` technicians (tech1…)
    /// signed in and synced, and the dispatcher.
    pub fn start(backend: Backend, techs: usize, seed: u64) -> Fleet {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let tmp = tempfile::tempdir().expect("temp dir");
        let (db_url, instances) = match &backend {
            Backend::Sqlite => {
                let db = crate::small_fleet(tmp.path());
                (format!("sqlite:{}", db.display()), 1)
            }
            Backend::Postgres { base_url } => {
                let url = fresh_pg_database(base_url);
                let out = std::process::Command::new(bin("outpost-server"))
                    .args(["seed", "--demo", "--items", "200", "--db", &url])
                    .output()
                    .expect("seed PostgreSQL");
                assert!(
                    out.status.success(),
                    "seed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                (url, 2)
            }
        };
        let servers: Vec<Server> = (0..instances)
            .map(|_| Server::start_with(&db_url, &[], &[]))
            .collect();
        let proxies: Vec<Proxy> = servers
            .iter()
            .map(|s| rt.block_on(Proxy::start(s.addr)))
            .collect();
        let outpost = bin("outpost");
        let techs: Vec<Tech> = (0..techs)
            .map(|i| {
                let user = format!("tech{}", i + 1);
                let dev = CliDevice::new(&user, &outpost);
                let via = i % proxies.len();
                dev.login(&proxies[via].url(), &user);
                dev.ok(&["sync"]);
                Tech { dev, user, via }
            })
            .collect();
        let mut dispatcher = Device::new();
        rt.block_on(dispatcher.login(&proxies[0].url(), "dispatcher"));
        rt.block_on(dispatcher.sync())
            .expect("dispatcher's first sync");
        let journal = Journal::new();
        journal.set_stock_baseline(
            rt.block_on(ServerState::fetch_stock(&proxies[0].url()))
                .expect("the stock before the run"),
        );
        Fleet {
            rt,
            servers,
            proxies,
            techs,
            dispatcher,
            journal,
            rng: Rng::new(seed),
            tally: Tally::default(),
            files: tempfile::tempdir().expect("temp dir"),
            photo_seed: (seed % 1_000_000) as u32,
            _tmp: tmp,
        }
    }

    /// Orders on `t`'s device that can still be edited (not completed or cancelled, not
    /// held for a person).
    pub fn open_orders(&self, t: usize) -> Vec<serde_json::Value> {
        self.techs[t]
            .dev
            .orders()
            .into_iter()
            .filter(|o| {
                o["status"] != "completed"
                    && o["status"] != "cancelled"
                    && o["reassigned_to"].is_null()
                    && o["sync_state"] != "conflict"
                    && o["sync_state"] != "failed"
            })
            .collect()
    }

    /// Run `outpost` on tech `t` with `args`; journal `changes` when it succeeds.
    fn act(&mut self, t: usize, args: &[String], changes: Vec<Change>) -> bool {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.techs[t].dev.run(&argv);
        if out.status.success() {
            for c in changes {
                self.journal.record(&self.techs[t].user, c);
            }
            true
        } else {
            false
        }
    }

    /// One edit on tech `t`: a note, a part line, or checklist ticks (each unique).
    fn edit(&mut self, t: usize, orders: &[serde_json::Value]) {
        if orders.is_empty() {
            return;
        }
        let o = &orders[self.rng.below(orders.len())];
        let Some(id) = o["id"].as_str().map(str::to_owned) else {
            return;
        };
        let Ok(order) = id.parse::<Uuid>() else {
            return;
        };
        let mut args: Vec<String> = vec!["orders".into(), "edit".into(), id.clone()];
        let mut changes = Vec::new();
        let text = self
            .journal
            .unique_text(&format!("{} note", self.techs[t].user));
        args.extend(["--note".into(), text.clone()]);
        changes.push(Change::Note { order, text });
        if self.rng.one_in(2) {
            let quantity: Quantity = self.journal.unique_quantity();
            let sku = format!("SKU-{:05}", 10 + self.rng.below(90));
            args.extend(["--part".into(), format!("{sku}={quantity}")]);
            changes.push(Change::Part {
                order,
                sku,
                quantity,
            });
        }
        if self.rng.one_in(3) {
            let undone: Vec<String> = o["checklist"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["done"] != true)
                .filter_map(|c| c["id"].as_str().map(str::to_owned))
                .collect();
            if let Some(item) = undone.first() {
                args.extend(["--check".into(), item.clone()]);
                changes.push(Change::Check {
                    order,
                    item: item.clone(),
                });
            }
        }
        self.act(t, &args, changes);
    }

    /// Complete one of `t`'s orders with a new photo (its checklist ticked first).
    pub fn complete(&mut self, t: usize, orders: &[serde_json::Value]) -> bool {
        if orders.is_empty() {
            return false;
        }
        let o = &orders[self.rng.below(orders.len())];
        let Some(id) = o["id"].as_str().map(str::to_owned) else {
            return false;
        };
        let Ok(order) = id.parse::<Uuid>() else {
            return false;
        };
        let undone: Vec<String> = o["checklist"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["done"] != true)
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect();
        if !undone.is_empty() {
            let mut args: Vec<String> = vec!["orders".into(), "edit".into(), id.clone()];
            let mut changes = Vec::new();
            for item in &undone {
                args.extend(["--check".into(), item.clone()]);
                changes.push(Change::Check {
                    order,
                    item: item.clone(),
                });
            }
            if !self.act(t, &args, changes) {
                return false;
            }
        }
        self.photo_seed = self.photo_seed.wrapping_add(1);
        let photo = self.files.path().join(format!("p{}.jpg", self.photo_seed));
        let sig = self.files.path().join(format!("s{}.png", self.photo_seed));
        let _ = std::fs::write(
            &photo,
            outpost_core::photos::synthetic_photo(64, 48, self.photo_seed),
        );
        let signer = self.journal.unique_text("Signer");
        let _ = std::fs::write(&sig, png(&signer));
        let args: Vec<String> = vec![
            "orders".into(),
            "complete".into(),
            id,
            "--signature".into(),
            sig.display().to_string(),
            "--signer".into(),
            signer.clone(),
            "--photo".into(),
            photo.display().to_string(),
        ];
        self.act(
            t,
            &args,
            vec![Change::Complete {
                order,
                signer,
                photos: 1,
            }],
        )
    }

    /// The office: a note on one of `t`'s orders (a server change for `t` to pull), and
    /// now and then one of its orders reassigned to another technician.
    fn office(&mut self, t: usize, orders: &[serde_json::Value], reassign: bool) {
        let _ = self.rt.block_on(self.dispatcher.sync());
        if orders.is_empty() {
            return;
        }
        let pick = self.rng.below(orders.len());
        let Some(id) = orders[pick]["id"].as_str().map(str::to_owned) else {
            return;
        };
        let Ok(order) = id.parse::<Uuid>() else {
            return;
        };
        let text = self.journal.unique_text("office note");
        if self
            .dispatcher
            .app
            .edit_order(
                &id,
                OrderEdit {
                    notes: vec![text.clone()],
                    ..OrderEdit::default()
                },
            )
            .is_ok()
        {
            self.journal
                .record("dispatcher", Change::Note { order, text });
        }
        if reassign && self.techs.len() > 1 {
            let other = (t + 1 + self.rng.below(self.techs.len() - 1)) % self.techs.len();
            let to = self.techs[other].user.clone();
            if self.dispatcher.app.assign_order(&id, &to).is_ok() {
                self.journal
                    .record("dispatcher", Change::Reassign { order, to });
            }
        }
        let _ = self.rt.block_on(self.dispatcher.sync());
    }

    /// The office creates `n` orders for tech `t` (long runs complete orders faster
    /// than the demo fleet has them).
    pub fn replenish(&mut self, t: usize, n: usize) {
        let _ = self.rt.block_on(self.dispatcher.sync());
        let user = self.techs[t].user.clone();
        for _ in 0..n {
            let title = self.journal.unique_text("Follow-up");
            let created = self.dispatcher.app.create_order(NewOrder {
                title,
                description: String::new(),
                customer: "Kill loop".into(),
                address: String::new(),
                priority: None,
            });
            if let Ok(row) = created {
                let _ = self
                    .dispatcher
                    .app
                    .assign_order(&row.order.id.to_string(), &user);
            }
        }
        let _ = self.rt.block_on(self.dispatcher.sync());
    }

    /// Start `outpost sync` on tech `t`, with `env`.
    fn spawn_sync(&self, t: usize, env: &[(&str, String)]) -> Child {
        let mut c = self.techs[t].dev.command(&["sync"]);
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start outpost sync")
    }

    fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether `t` has work the server has not acknowledged.
    fn pending(&self, t: usize) -> bool {
        !self.techs[t].dev.outbox().is_empty()
    }

    /// Restart instance `i` with `env` and point its proxy at it.
    fn restart_server(&mut self, i: usize, env: &[(&str, &str)]) {
        self.servers[i].restart_with(env);
        self.proxies[i].set_upstream(self.servers[i].addr);
    }

    /// One round: pending work on a technician, `point` armed at its `k`-th hit (in
    /// the technician's `outpost sync`, or in the server it talks to), the sync run
    /// (with a second process editing beside it, now and then), the dead restarted.
    pub fn round(&mut self, point: &CrashPoint, target: Target, k: u32) -> RoundOutcome {
        self.tally.rounds += 1;
        let t = self.rng.below(self.techs.len());
        let orders = self.open_orders(t);
        if orders.len() < 15 {
            self.replenish(t, 10);
        }
        for _ in 0..1 + self.rng.below(3) {
            self.edit(t, &orders);
        }
        if point.needs == Needs::Photo || self.rng.one_in(8) {
            self.complete(t, &orders);
        }
        let office = point.needs == Needs::ServerChange || self.rng.one_in(4);
        if office {
            let reassign = self.rng.one_in(4);
            self.office(t, &orders, reassign);
        }
        let arm = format!("{}={}*off->return", point.name, k.saturating_sub(1));
        let via = self.techs[t].via;
        let mut child = match point.side {
            Side::Client => self.spawn_sync(t, &[("FAILPOINTS", arm.clone())]),
            Side::Server => {
                self.restart_server(via, &[("FAILPOINTS", arm.as_str())]);
                self.spawn_sync(t, &[])
            }
        };
        // A second process edits the same data directory while the sync runs.
        if self.rng.one_in(2) {
            std::thread::sleep(Duration::from_millis(self.rng.below(150) as u64));
            self.edit(t, &orders);
        }
        let killed = match point.side {
            Side::Client => {
                let status = Self::wait(&mut child, Duration::from_secs(60));
                let died = status.and_then(signal_of) == Some(6);
                if died && target == Target::Both {
                    // The server dies at the same moment, as the kill left it.
                    self.servers[via].kill();
                }
                died
            }
            Side::Server => {
                let start = Instant::now();
                let mut died = false;
                loop {
                    if self.servers[via].has_exited() {
                        died = true;
                        if target == Target::Both {
                            // The client dies at the same moment, mid-sync.
                            let _ = child.kill();
                        }
                        let _ = child.wait();
                        break;
                    }
                    if matches!(child.try_wait(), Ok(Some(_))) {
                        // The sync ended; the server may still be on its way down.
                        std::thread::sleep(Duration::from_millis(50));
                        died = self.servers[via].has_exited();
                        break;
                    }
                    if start.elapsed() > Duration::from_secs(60) {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                died
            }
        };
        // Pending at the moment of death: rows the server has not acknowledged, or
        // (the client killed before its pull) an office change it has not applied.
        let counted = killed && (self.pending(t) || (office && point.side == Side::Client));
        if killed || point.side == Side::Server || target == Target::Both {
            self.restart_server(via, &[]);
        }
        let entry = self.tally.points.entry(point.name.to_owned()).or_default();
        if killed {
            entry.kills += 1;
        }
        if counted {
            entry.counted += 1;
        }
        RoundOutcome { killed, counted }
    }

    /// Sync everyone until nothing is pending: each technician, then the office, which
    /// resolves what was held for a person (accepting the device's change, journaled),
    /// then everyone once more.
    pub fn quiesce(&mut self) {
        for _ in 0..8 {
            for t in 0..self.techs.len() {
                let _ = self.techs[t].dev.run(&["sync"]);
            }
            let _ = self.rt.block_on(self.dispatcher.sync());
            let resolved = self.resolve_open_conflicts();
            if resolved > 0 {
                let _ = self.rt.block_on(self.dispatcher.sync());
            }
            let pending = (0..self.techs.len()).any(|t| self.pending(t))
                || self
                    .dispatcher
                    .app
                    .outbox()
                    .map(|r| !r.is_empty())
                    .unwrap_or(true);
            if !pending && resolved == 0 {
                break;
            }
        }
        for t in 0..self.techs.len() {
            let _ = self.techs[t].dev.run(&["sync"]);
        }
        let _ = self.rt.block_on(self.dispatcher.sync());
    }

    /// The office resolves every open conflict it sees, keeping the device's change.
    fn resolve_open_conflicts(&mut self) -> usize {
        let Ok(open) = self.dispatcher.app.conflicts() else {
            return 0;
        };
        let mut n = 0;
        for c in open
            .into_iter()
            .filter(|c| c.status == "open" && !c.resolving)
        {
            let Some(record) = c.record.clone() else {
                continue;
            };
            let choices: Vec<(String, FieldChoice)> = record
                .fields
                .iter()
                .map(|f| (f.field.clone(), FieldChoice::Mine))
                .collect();
            if self
                .dispatcher
                .app
                .resolve_conflict(&c.id, &choices, choices.is_empty())
                .is_ok()
            {
                self.journal
                    .record("dispatcher", Change::Resolve { record: record.id });
                n += 1;
            }
        }
        n
    }

    /// Quiesce, then check the oracle and every device's invariants; panics with
    /// `context` (the seed) on a lost or doubled change or a broken invariant.
    pub fn check(&mut self, context: &str) -> Verdict {
        self.quiesce();
        let mut state = self
            .rt
            .block_on(ServerState::fetch(&self.proxies[0].url(), &self.journal))
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        for t in &self.techs {
            state.add_device_records(t.dev.held_mutations());
        }
        let verdict = oracle::check(&self.journal, &state);
        self.tally.add_verdict(&verdict);
        verdict.assert_clean(context);
        let mut reports: Vec<DeviceReport> = self.techs.iter().map(|t| t.dev.report()).collect();
        reports.push(DeviceReport::of_device("dispatcher", &self.dispatcher));
        let problems = oracle::device_problems(&reports);
        assert!(problems.is_empty(), "{context}: {problems:#?}");
        verdict
    }

    /// The data directory of tech `t` (for a person reading a failure).
    pub fn dir(&self, t: usize) -> &Path {
        self.techs[t].dev.dir.path()
    }
}

/// The seeded kill loop: random crash point, k and target for every round until
/// `kills` counted kills (or `max_rounds`); the oracle checked every `check_every`
/// rounds and at the end.
pub fn seeded_loop(
    fleet: &mut Fleet,
    kills: usize,
    max_rounds: usize,
    check_every: usize,
    context: &str,
) {
    let mut round = 0;
    while fleet.tally.counted() < kills && round < max_rounds {
        round += 1;
        let point = CRASH_POINTS[fleet.rng.below(CRASH_POINTS.len())];
        let k = 1 + fleet.rng.below(3) as u32;
        let target = if fleet.rng.one_in(4) {
            Target::Both
        } else {
            Target::Alone
        };
        fleet.round(&point, target, k);
        if round % check_every.max(1) == 0 {
            fleet.check(&format!(
                "{context}, round {round} ({} k={k} {target:?})",
                point.name
            ));
        }
    }
    fleet.check(&format!("{context}, end after round {round}"));
}
