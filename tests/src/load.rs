//! The fleet load generator (issue 25 item 1): many simulated devices against a real
//! `outpost-server` on loopback, each with its own user, device id, tokens, cursor and
//! outbox, speaking the sync protocol with `outpost-protocol`'s wire types over reqwest
//! (never through `outpost-core`/`outpost-sync`: what is measured is the server).
//!
//! One run is a working day compressed into [`Plan::window`]:
//! - before the window (not timed): the dispatcher plans the day — [`Plan::orders_per_device`]
//!   orders for each technician, created through `push` — and every device signs in;
//! - a share of the devices ([`Plan::primers`]: a new or reinstalled laptop) primes the
//!   whole catalogue (10,000 items in the fleet benchmark) at the start; the others
//!   start from yesterday's cursor (taken before the orders were planned), so their
//!   first pull brings the day's orders;
//! - every device pulls deltas every [`Plan::pull_every`] (the engine's 30 s interval,
//!   compressed), its first pull at a random offset within one interval;
//! - the day's work is done offline and pushed in [`Plan::bursts`] bursts (a van coming
//!   back into coverage): for each order of the burst, on its last pulled version, en
//!   route, in progress, a checklist tick, a note with a part used, and the completion
//!   with a small signature (a PNG of [`Plan::signature_bytes`], uploaded through
//!   `attachments-batch` before the push); mutations not acknowledged (an error, a
//!   timeout) stay in the device's outbox and go again, same ids and bodies, with the
//!   next burst or after the window — or, after a refusal with `Retry-After` (the
//!   server's admission limit), after that wait plus jitter, then a pull, as the
//!   engine retries a pass;
//! - after the window every device sends what it still holds and pulls once more,
//!   within [`Plan::drain`]; then the run stops by itself.
//!
//! Bounds: loopback URLs only (anything else is refused before a request is made), a
//! request budget ([`Plan::max_requests`]; past it devices stop and the report says
//! so), a per-request timeout, and a hard deadline (window + drain + 60 s) after which
//! every device task is abandoned. Every failure is counted by kind, never retried
//! silently: transport errors, timeouts, non-2xx answers by status, and push outcomes
//! other than `applied` (a `duplicate` after a lost answer is counted apart).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use outpost_protocol::mutation::{EntityKind, ListItem};
use outpost_protocol::wire::*;
use outpost_protocol::*;
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

/// The password of every user the generator provisions.
pub const LOAD_PASSWORD: &str = "load-generator-pass";
/// The dispatcher who plans the day.
pub const DISPATCHER: &str = "load-dispatcher";

/// The technician of device `i`.
pub fn username(i: usize) -> String {
    format!("load{i:05}")
}

/// What went wrong before the measured window (set-up) or with the target.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("refusing {0}: the load generator only talks to a server on loopback (127.0.0.0/8, ::1 or localhost)")]
    NotLoopback(String),
    #[error("set-up failed: {0}")]
    Setup(String),
    #[error("provisioning the fleet failed: {0}")]
    Provision(String),
}

/// The shape of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub devices: usize,
    /// The compressed day.
    pub window: Duration,
    pub pull_every: Duration,
    pub bursts: usize,
    pub orders_per_device: usize,
    /// Devices that prime the whole catalogue during the window.
    pub primers: usize,
    pub signature_bytes: usize,
    pub max_requests: u64,
    pub request_timeout: Duration,
    /// After the window: time to send what is left and pull once more.
    pub drain: Duration,
    /// Rows per pull page (the engine's default).
    pub pull_limit: u32,
    pub seed: u64,
}

impl Plan {
    /// The fleet benchmark's day for `devices` devices: a 30 s window, a pull every
    /// 5 s (the engine's 30 s, compressed six times), 4 orders each in 2 bursts, 2% of
    /// the devices (at least one) priming, 2 KiB signatures.
    pub fn day(devices: usize) -> Plan {
        Plan {
            devices,
            window: Duration::from_secs(30),
            pull_every: Duration::from_secs(5),
            bursts: 2,
            orders_per_device: 4,
            primers: devices.div_ceil(50).max(1),
            signature_bytes: 2048,
            max_requests: 2_000_000,
            request_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(30),
            pull_limit: limits::PULL_LIMIT_DEFAULT,
            seed: 25,
        }
    }

    /// Mutations one device pushes in a day (five per order).
    pub fn mutations_per_device(&self) -> usize {
        self.orders_per_device * MUTATIONS_PER_ORDER
    }
}

const MUTATIONS_PER_ORDER: usize = 5;

/// Refuse anything but a loopback `http(s)://` URL.
pub fn check_loopback(url: &str) -> Result<(), LoadError> {
    let refuse = || LoadError::NotLoopback(url.to_owned());
    let parsed = reqwest::Url::parse(url).map_err(|_| refuse())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(refuse());
    }
    let host = parsed.host_str().unwrap_or("");
    let ok = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback());
    if ok {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// Add the dispatcher and `devices` technicians (password [`LOAD_PASSWORD`], the
/// cheapest Argon2 cost: sign-in is not what the fleet benchmark measures) and `items`
/// catalogue items to the database at `db_url` (`sqlite:PATH` or PostgreSQL), through
/// the server's library as `outpost-server user add` and `seed` do.
pub async fn provision(db_url: &str, devices: usize, items: usize) -> Result<(), LoadError> {
    let err = |e: outpost_server::Error| LoadError::Provision(e.to_string());
    let db = outpost_server::Db::open(db_url).await.map_err(err)?;
    let cfg = outpost_server::ServerConfig {
        password_cost: outpost_server::PasswordCost::for_tests(),
        ..outpost_server::ServerConfig::default()
    };
    outpost_server::add_user(&db, &cfg, DISPATCHER, Role::Dispatcher, LOAD_PASSWORD)
        .await
        .map_err(err)?;
    for i in 0..devices {
        outpost_server::add_user(&db, &cfg, &username(i), Role::Technician, LOAD_PASSWORD)
            .await
            .map_err(err)?;
    }
    let now_us = cfg.now_us();
    for start in (0..items).step_by(1000) {
        let batch: Vec<InventoryItem> = (start..(start + 1000).min(items))
            .map(outpost_server::seed::demo_item)
            .collect();
        db.write(move |sql| outpost_server::seed::insert_items(sql, &batch, now_us))
            .await
            .map_err(err)?;
    }
    Ok(())
}

/// Add `count` work orders, `order(i)` for i in `0..count`, to the database at `db_url`
/// (`sqlite:PATH` or PostgreSQL), written as the demo seed writes its own (a number
/// from the server's sequence, every field stamped version 1, one change-log row each
/// through `push::write_order`), 1,000 to a write transaction: a company's order
/// history, made in seconds rather than pushed one by one. The orders' ids must be new.
pub async fn add_orders(
    db_url: &str,
    count: usize,
    order: impl Fn(usize) -> WorkOrder + Send + Sync + 'static,
) -> Result<(), LoadError> {
    let err = |e: outpost_server::Error| LoadError::Provision(e.to_string());
    let db = outpost_server::Db::open(db_url).await.map_err(err)?;
    let now_us = outpost_server::ServerConfig::default().now_us();
    let order = Arc::new(order);
    for start in (0..count).step_by(1000) {
        let order = order.clone();
        db.write(move |sql| {
            outpost_server::repo::with_change_log(sql, |sql, log| {
                for i in start..(start + 1000).min(count) {
                    let mut o = order(i);
                    o.number = Some(outpost_server::repo::next_number(sql)?);
                    let stamps: merge::FieldStamps = merge::scalar_fields(&o)
                        .into_iter()
                        .map(|s| {
                            let stamp = merge::FieldStamp {
                                version: o.version,
                                device_id: Uuid::nil(),
                            };
                            (s.field_key(), stamp)
                        })
                        .collect();
                    outpost_server::push::write_order(
                        sql,
                        log,
                        now_us,
                        &o,
                        &stamps,
                        None,
                        &[],
                        None,
                    )?;
                }
                Ok(())
            })
        })
        .await
        .map_err(err)?;
    }
    Ok(())
}

/// Latency and counts of one kind of request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindStats {
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A completion the server acknowledged as applied: what must be on it afterwards.
#[derive(Debug, Clone, Serialize)]
pub struct AckedCompletion {
    pub order: Uuid,
    pub assignee: String,
    pub signature: String,
    pub note: String,
    pub part: Uuid,
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub devices: usize,
    pub primers: usize,
    pub window_secs: f64,
    /// From the window's start to the last device's end (the drain included).
    pub elapsed_secs: f64,
    pub setup_secs: f64,
    pub login: KindStats,
    pub prime: KindStats,
    pub pull: KindStats,
    pub upload: KindStats,
    pub push: KindStats,
    /// Answered requests (any status) per second of the window and drain.
    pub requests_per_sec: f64,
    pub mutations_planned: u64,
    pub mutations_applied: u64,
    pub mutations_per_sec: f64,
    pub pull_rows: u64,
    pub prime_rows: u64,
    pub completions_planned: u64,
    pub completions_acked: u64,
    /// Every failure, by kind (`transport`, `timeout`, `http 503`, `push rejected`, …).
    pub errors: u64,
    pub errors_by: BTreeMap<String, u64>,
    /// `duplicate` outcomes: a resend after a lost answer (not an error).
    pub duplicates: u64,
    pub budget_hit: bool,
    pub deadline_hit: bool,
    #[serde(skip)]
    pub acked: Vec<AckedCompletion>,
}

/// Which request a latency belongs to.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Prime,
    Pull,
    Upload,
    Push,
}

#[derive(Debug, Default)]
struct Tally {
    lat: [Vec<u32>; 4],
    ok: [u64; 4],
    errors: BTreeMap<String, u64>,
    applied: u64,
    duplicates: u64,
    pull_rows: u64,
    prime_rows: u64,
    acked: Vec<AckedCompletion>,
}

impl Tally {
    fn error(&mut self, what: impl Into<String>) {
        *self.errors.entry(what.into()).or_default() += 1;
    }
    fn merge(&mut self, o: Tally) {
        for (mine, theirs) in self.lat.iter_mut().zip(o.lat) {
            mine.extend_from_slice(&theirs);
        }
        for (mine, theirs) in self.ok.iter_mut().zip(o.ok) {
            *mine += theirs;
        }
        for (e, n) in o.errors {
            *self.errors.entry(e).or_default() += n;
        }
        self.applied += o.applied;
        self.duplicates += o.duplicates;
        self.pull_rows += o.pull_rows;
        self.prime_rows += o.prime_rows;
        self.acked.extend(o.acked);
    }
}

fn stats(mut lat: Vec<u32>, ok: u64) -> KindStats {
    lat.sort_unstable();
    let pick = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    KindStats {
        requests: lat.len() as u64,
        ok,
        errors: lat.len() as u64 - ok,
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        max_ms: lat.last().map(|v| f64::from(*v) / 1000.0).unwrap_or(0.0),
    }
}

/// A small deterministic generator for offsets and jitter (splitmix64).
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A duration in `[0, d)`.
    fn within(&mut self, d: Duration) -> Duration {
        let nanos = d.as_nanos().max(1) as u64;
        Duration::from_nanos(self.next() % nanos)
    }
}

/// The device's clock for the mutations it makes (test code: the wall clock is fine).
#[allow(clippy::disallowed_methods)]
fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// A small PNG-headed signature image unique to `marker`.
fn signature_png(marker: &str, size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    while bytes.len() < size {
        bytes.extend_from_slice(marker.as_bytes());
    }
    bytes.truncate(size.max(8 + marker.len()));
    bytes
}

/// Shared by every device of a run.
struct Shared {
    http: reqwest::Client,
    budget: AtomicU64,
    budget_hit: AtomicBool,
    plan: Plan,
    start: Instant,
}

impl Shared {
    /// Take one request from the budget; `false` once it is spent.
    fn take(&self) -> bool {
        let left = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1));
        if left.is_err() {
            self.budget_hit.store(true, Ordering::Relaxed);
        }
        left.is_ok()
    }
}

/// Why a request gave no usable answer.
enum Failure {
    Budget,
    Counted,
    Resync,
}

struct Device {
    index: usize,
    user: String,
    base: String,
    device_id: Uuid,
    token: String,
    cursor: Option<String>,
    epoch: Option<String>,
    versions: HashMap<Uuid, u64>,
    orders: Vec<Uuid>,
    done: usize,
    outbox: Vec<Mutation>,
    files: Vec<(String, Vec<u8>)>,
    expected: HashMap<Uuid, AckedCompletion>,
    tally: Tally,
    /// The last page was a snapshot page with more to come.
    last_page_priming: bool,
    /// The `Retry-After` of the last refusal (503, 429), as the engine honours it: the
    /// device tries again then (with jitter) instead of waiting for its next burst.
    retry_after: Option<Duration>,
}

impl Device {
    /// A device just signed in, with nothing pulled or queued yet; `orders` are the
    /// orders it will work on.
    fn signed_in(
        index: usize,
        user: String,
        base: String,
        device_id: Uuid,
        token: String,
        orders: Vec<Uuid>,
    ) -> Device {
        Device {
            index,
            user,
            base,
            device_id,
            token,
            cursor: None,
            epoch: None,
            versions: HashMap::new(),
            orders,
            done: 0,
            outbox: Vec::new(),
            files: Vec::new(),
            expected: HashMap::new(),
            tally: Tally::default(),
            last_page_priming: false,
            retry_after: None,
        }
    }

    /// Send one request; its latency and failure (if any) are counted under `kind`.
    async fn send<T: serde::de::DeserializeOwned>(
        &mut self,
        shared: &Shared,
        kind: Kind,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Failure> {
        if !shared.take() {
            return Err(Failure::Budget);
        }
        let t = Instant::now();
        let answer = shared
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .json(body)
            .send()
            .await;
        let result = match answer {
            Ok(r) if r.status().is_success() => match r.json::<T>().await {
                Ok(v) => Ok(v),
                Err(e) if e.is_timeout() => Err("timeout".to_owned()),
                Err(e) => Err(format!("unreadable answer: {e}")),
            },
            Ok(r) => {
                let status = r.status().as_u16();
                self.retry_after = r
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map(Duration::from_secs);
                let code = r
                    .json::<ErrorBody>()
                    .await
                    .map(|b| format!("{:?}", b.code))
                    .unwrap_or_default();
                Err(format!("http {status} {code}").trim().to_owned())
            }
            Err(e) if e.is_timeout() => Err("timeout".to_owned()),
            Err(e) if e.is_connect() => Err("connect".to_owned()),
            Err(_) => Err("transport".to_owned()),
        };
        let micros = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
        self.tally.lat[kind as usize].push(micros);
        match result {
            Ok(v) => {
                self.tally.ok[kind as usize] += 1;
                Ok(v)
            }
            Err(e) => {
                let resync = e.contains("ResyncRequired");
                self.tally.error(format!("{kind:?} {e}").to_lowercase());
                Err(if resync {
                    Failure::Resync
                } else {
                    Failure::Counted
                })
            }
        }
    }

    /// Pull until the server has nothing more (a prime when there is no cursor).
    async fn pull(&mut self, shared: &Shared) -> Result<(), Failure> {
        for _ in 0..10_000 {
            let kind = if self.cursor.is_none() || self.last_page_priming {
                Kind::Prime
            } else {
                Kind::Pull
            };
            let req = PullRequest {
                cursor: self.cursor.clone(),
                limit: Some(shared.plan.pull_limit),
                max_bytes: None,
                ..PullRequest::default()
            };
            let page: PullResponse = match self.send(shared, kind, paths::PULL, &req).await {
                Ok(p) => p,
                Err(Failure::Resync) => {
                    self.cursor = None;
                    return Err(Failure::Counted);
                }
                Err(f) => return Err(f),
            };
            let rows = page.changes.len() as u64;
            if page.priming.is_some() {
                self.tally.prime_rows += rows;
            } else {
                self.tally.pull_rows += rows;
            }
            for c in page.changes {
                if let ChangeBody::WorkOrder(o) = c.change {
                    self.versions.insert(o.id, c.version);
                }
            }
            self.cursor = Some(page.cursor);
            if page.epoch.is_some() {
                self.epoch = page.epoch;
            }
            self.last_page_priming = page.priming.is_some() && page.has_more;
            if !page.has_more {
                return Ok(());
            }
        }
        Ok(())
    }

    fn mutation(&self, order: Uuid, kind: MutationKind, ops: Vec<Op>) -> Mutation {
        let base = self.versions.get(&order).copied().unwrap_or(1);
        Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: self.device_id,
            entity: EntityKind::WorkOrder,
            entity_id: order,
            kind,
            base_version: base,
            format: FORMAT_VERSION,
            device_time: now(),
            ops,
            base_epoch: self.epoch.clone(),
            reason: None,
            seen: Vec::new(),
        }
    }

    /// The day's work on the next `count` orders this device has pulled: five
    /// mutations each, into the outbox, and the signature into the files to upload.
    fn work(&mut self, count: usize, plan: &Plan) {
        let mut made = 0;
        while made < count && self.done < self.orders.len() {
            let order = self.orders[self.done];
            if !self.versions.contains_key(&order) {
                break;
            }
            self.done += 1;
            made += 1;
            let marker = format!("sig {order} by {}", self.user);
            let png = signature_png(&marker, plan.signature_bytes);
            let hash = attachment_hash(&png);
            let note = format!("replaced the filter on {order}");
            let part = Uuid::now_v7();
            let sku = outpost_server::seed::demo_sku((self.index * 7 + self.done) % 10_000);
            let set = |op| vec![Op::Set(op)];
            let muts = [
                (MutationKind::Update, set(SetOp::Status(Status::EnRoute))),
                (MutationKind::Update, set(SetOp::Status(Status::InProgress))),
                (
                    MutationKind::Update,
                    set(SetOp::ChecklistDone {
                        item_id: "c1".into(),
                        done: true,
                    }),
                ),
                (
                    MutationKind::Update,
                    vec![
                        Op::AppendNote {
                            note: NoteEntry {
                                id: Uuid::now_v7(),
                                author: self.user.clone(),
                                text: note.clone(),
                                at: now(),
                            },
                        },
                        Op::Add(ListItem::PartsUsed(PartUsed {
                            id: part,
                            sku,
                            quantity: Quantity::from_units(1),
                        })),
                    ],
                ),
                (
                    MutationKind::Complete,
                    vec![
                        Op::Set(SetOp::Signature(Some(Signature {
                            hash: hash.clone(),
                            signer: format!("Customer of {}", self.user),
                        }))),
                        Op::Set(SetOp::CompletedAt(Some(now()))),
                    ],
                ),
            ];
            for (kind, ops) in muts {
                let m = self.mutation(order, kind, ops);
                if kind == MutationKind::Complete {
                    self.expected.insert(
                        m.mutation_id,
                        AckedCompletion {
                            order,
                            assignee: self.user.clone(),
                            signature: hash.clone(),
                            note: note.clone(),
                            part,
                        },
                    );
                }
                self.outbox.push(m);
            }
            self.files.push((hash, png));
        }
    }

    /// Upload the signatures, then push the outbox (100 mutations a request), as the
    /// engine does after coming back into coverage.
    async fn flush(&mut self, shared: &Shared) -> Result<(), Failure> {
        if !self.files.is_empty() {
            let files: Vec<BatchFile> = self
                .files
                .iter()
                .map(|(hash, bytes)| BatchFile {
                    hash: hash.clone(),
                    data_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
                })
                .collect();
            let answer: BatchUploadResponse = self
                .send(
                    shared,
                    Kind::Upload,
                    paths::ATTACHMENTS_BATCH,
                    &BatchUploadRequest { files },
                )
                .await?;
            let stored: Vec<String> = answer
                .results
                .iter()
                .filter(|r| r.complete)
                .map(|r| r.hash.clone())
                .collect();
            for r in answer.results.iter().filter(|r| !r.complete) {
                let code = r.error.as_ref().map(|e| format!("{:?}", e.code));
                self.tally
                    .error(format!("upload refused {}", code.unwrap_or_default()).trim());
            }
            self.files.retain(|(h, _)| !stored.contains(h));
        }
        while !self.outbox.is_empty() {
            let batch: Vec<Mutation> = self
                .outbox
                .iter()
                .take(limits::PUSH_MUTATIONS_DEFAULT)
                .cloned()
                .collect();
            let answer: PushResponse = self
                .send(
                    shared,
                    Kind::Push,
                    paths::PUSH,
                    &PushRequest {
                        mutations: batch.clone(),
                    },
                )
                .await?;
            let mut acked = Vec::new();
            let mut stuck = false;
            for r in &answer.results {
                let applied = match &r.outcome {
                    PushOutcome::Applied(_) => true,
                    PushOutcome::Duplicate { first } => {
                        self.tally.duplicates += 1;
                        matches!(**first, PushOutcome::Applied(_))
                    }
                    other => {
                        let name = serde_json::to_value(other)
                            .ok()
                            .and_then(|v| {
                                v.get("result").and_then(|r| r.as_str().map(str::to_owned))
                            })
                            .unwrap_or_else(|| "unknown".into());
                        self.tally.error(format!("push outcome {name}"));
                        if matches!(
                            other,
                            PushOutcome::MissingAttachments { .. } | PushOutcome::HeldBehind { .. }
                        ) {
                            stuck = true;
                            continue;
                        }
                        false
                    }
                };
                if applied {
                    self.tally.applied += 1;
                    if let Some(c) = self.expected.remove(&r.mutation_id) {
                        self.tally.acked.push(c);
                    }
                }
                acked.push(r.mutation_id);
            }
            self.outbox.retain(|m| !acked.contains(&m.mutation_id));
            if stuck || acked.is_empty() {
                return Err(Failure::Counted);
            }
        }
        Ok(())
    }

    /// After the window: pull if the day's orders are not all seen, do the rest of the
    /// day's work, send it (three tries), pull once more.
    async fn drain(&mut self, shared: &Shared) {
        let plan = &shared.plan;
        if self.cursor.is_none() || self.done < self.orders.len() {
            let _ = self.pull(shared).await;
        }
        self.work(self.orders.len(), plan);
        for _ in 0..3 {
            if self.outbox.is_empty() && self.files.is_empty() {
                break;
            }
            if let Err(Failure::Budget) = self.flush(shared).await {
                return;
            }
        }
        let _ = self.pull(shared).await;
    }

    /// The device's day: pulls on the interval, bursts of pushes, then the drain.
    async fn day(mut self, shared: Arc<Shared>) -> Tally {
        let plan = &shared.plan;
        let mut jitter = Jitter(plan.seed ^ (self.index as u64).wrapping_mul(0x2545_f491));
        let window_end = shared.start + plan.window;
        let first = shared.start + jitter.within(plan.pull_every);
        let per_burst = plan.orders_per_device.div_ceil(plan.bursts.max(1));
        let mut bursts: Vec<Instant> = (0..plan.bursts)
            .map(|k| {
                let span = window_end.saturating_duration_since(first);
                let slot = span / (plan.bursts as u32 + 1);
                first + slot * (k as u32 + 1) + jitter.within(slot / 2)
            })
            .collect();
        bursts.reverse();
        let mut next_pull = first;
        // A refusal that said when to come back: the device's next try (its queued work,
        // then a pull), as the engine retries a pass after `Retry-After`.
        let mut retry: Option<Instant> = None;
        loop {
            let next_burst = bursts.last().copied();
            let mut at = next_burst.map_or(next_pull, |b| b.min(next_pull));
            if let Some(r) = retry {
                at = at.min(r);
            }
            if at >= window_end {
                break;
            }
            tokio::time::sleep_until(at).await;
            let result = if retry == Some(at) {
                retry = None;
                match self.flush(&shared).await {
                    Ok(()) => self.pull(&shared).await,
                    failed => failed,
                }
            } else if next_burst == Some(at) {
                bursts.pop();
                self.work(per_burst, plan);
                self.flush(&shared).await
            } else {
                next_pull = at + plan.pull_every;
                self.pull(&shared).await
            };
            match result {
                Err(Failure::Budget) => return self.tally,
                Err(_) => {
                    if let Some(wait) = self.retry_after.take() {
                        let next = Instant::now() + wait + jitter.within(wait);
                        retry = Some(retry.map_or(next, |r| r.min(next)));
                    }
                }
                Ok(()) => {}
            }
        }
        // The drain, bounded: whatever is left of the day, sent; then one more pull.
        let drain_end = window_end + plan.drain;
        if tokio::time::timeout_at(drain_end, self.drain(&shared))
            .await
            .is_err()
        {
            self.tally.error("drain cut at its bound");
        }
        self.tally
    }
}

/// The address device `i` signs in from, as a reverse proxy in front of the server
/// names it in `x-forwarded-for` (a fleet is many addresses, not one: the server's
/// sign-in limiter counts attempts per address). A server started without
/// `--trusted-proxy-header x-forwarded-for` ignores it.
pub fn device_address(i: usize) -> String {
    format!("10.{}.{}.{}", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff)
}

/// The header the devices' addresses travel in.
pub const ADDRESS_HEADER: &str = "x-forwarded-for";

/// A session for `user` on `device_id` at `base`, from `address`.
async fn login(
    http: &reqwest::Client,
    base: &str,
    user: &str,
    device_id: Uuid,
    address: &str,
) -> Result<TokenResponse, LoadError> {
    let r = http
        .post(format!("{base}{}", paths::LOGIN))
        .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
        .header(ADDRESS_HEADER, address)
        .json(&LoginRequest {
            username: user.to_owned(),
            password: LOAD_PASSWORD.to_owned(),
            device_id,
        })
        .send()
        .await
        .map_err(|e| LoadError::Setup(format!("login {user}: {e}")))?;
    if !r.status().is_success() {
        return Err(LoadError::Setup(format!("login {user}: {}", r.status())));
    }
    r.json()
        .await
        .map_err(|e| LoadError::Setup(format!("login {user}: {e}")))
}

/// A client as a fleet of devices behind one machine uses it: a pool of keep-alive
/// connections shared by the devices (each request carries its own device's token).
pub fn client(plan: &Plan) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(plan.request_timeout)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(512)
        .build()
        .unwrap_or_default()
}

/// Run one day of `plan` against the servers at `urls` (device `i` talks to
/// `urls[i % len]`: several instances over one database).
pub async fn run(urls: &[String], plan: &Plan) -> Result<Report, LoadError> {
    run_with(urls, plan, &mut || {}).await
}

/// [`run`], calling `at_start` when the set-up is over and the window begins (to
/// sample the server's CPU from there).
pub async fn run_with(
    urls: &[String],
    plan: &Plan,
    at_start: &mut (dyn FnMut() + Send),
) -> Result<Report, LoadError> {
    if urls.is_empty() {
        return Err(LoadError::Setup("no server URL".into()));
    }
    for u in urls {
        check_loopback(u)?;
    }
    let setup = Instant::now();
    let http = client(plan);
    let base = urls[0].trim_end_matches('/').to_owned();
    // The dispatcher: yesterday's cursor (the catalogue, before today's orders), then
    // today's orders, pushed as the office plans them.
    let dispatcher_device = Uuid::new_v4();
    let tokens = login(
        &http,
        &base,
        DISPATCHER,
        dispatcher_device,
        "10.255.255.254",
    )
    .await?;
    let mut office = Device::signed_in(
        usize::MAX,
        DISPATCHER.into(),
        base.clone(),
        dispatcher_device,
        tokens.access_token,
        Vec::new(),
    );
    let unbounded = Shared {
        http: http.clone(),
        budget: AtomicU64::new(u64::MAX),
        budget_hit: AtomicBool::new(false),
        plan: plan.clone(),
        start: Instant::now(),
    };
    if office.pull(&unbounded).await.is_err() {
        return Err(LoadError::Setup(format!(
            "the dispatcher's prime failed: {:?}",
            office.tally.errors
        )));
    }
    let yesterday = office.cursor.clone();
    let mut orders: Vec<Vec<Uuid>> = vec![Vec::new(); plan.devices];
    let creates: Vec<Mutation> = (0..plan.devices)
        .flat_map(|i| (0..plan.orders_per_device).map(move |k| (i, k)))
        .map(|(i, k)| {
            let id = Uuid::now_v7();
            orders[i].push(id);
            Mutation {
                mutation_id: Uuid::now_v7(),
                device_id: dispatcher_device,
                entity: EntityKind::WorkOrder,
                entity_id: id,
                kind: MutationKind::Create,
                base_version: 0,
                format: FORMAT_VERSION,
                device_time: now(),
                ops: vec![
                    Op::Set(SetOp::Title(format!("Service visit {} of the day", k + 1))),
                    Op::Set(SetOp::Assignee(Some(username(i)))),
                    Op::Add(ListItem::Checklist(ChecklistItem {
                        id: "c1".into(),
                        label: "Replace the filter".into(),
                        required: true,
                        done: false,
                    })),
                ],
                base_epoch: None,
                reason: None,
                seen: Vec::new(),
            }
        })
        .collect();
    office.outbox = creates;
    while !office.outbox.is_empty() {
        let batch: Vec<Mutation> = office
            .outbox
            .drain(..office.outbox.len().min(limits::PUSH_MUTATIONS_MAX))
            .collect();
        let answer: PushResponse = office
            .send(
                &unbounded,
                Kind::Push,
                paths::PUSH,
                &PushRequest { mutations: batch },
            )
            .await
            .map_err(|_| {
                LoadError::Setup(format!("planning the orders: {:?}", office.tally.errors))
            })?;
        if let Some(bad) = answer
            .results
            .iter()
            .find(|r| !matches!(r.outcome, PushOutcome::Applied(_)))
        {
            return Err(LoadError::Setup(format!(
                "planning the orders: {:?}",
                bad.outcome
            )));
        }
    }
    // Every device signs in (at most 64 at once).
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut sign_ins = tokio::task::JoinSet::new();
    for (i, own) in orders.into_iter().enumerate() {
        let (http, gate) = (http.clone(), gate.clone());
        let base = urls[i % urls.len()].trim_end_matches('/').to_owned();
        sign_ins.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let device_id = Uuid::new_v4();
            let user = username(i);
            let t = login(&http, &base, &user, device_id, &device_address(i)).await?;
            Ok::<_, LoadError>(Device::signed_in(
                i,
                user,
                base,
                device_id,
                t.access_token,
                own,
            ))
        });
    }
    let mut devices = Vec::with_capacity(plan.devices);
    while let Some(d) = sign_ins.join_next().await {
        devices.push(d.map_err(|e| LoadError::Setup(format!("sign-in task: {e}")))??);
    }
    devices.sort_by_key(|d| d.index);
    // Priming devices are spread over the fleet; the others primed yesterday.
    let primers = plan.primers.min(plan.devices);
    for (n, d) in devices.iter_mut().enumerate() {
        let primes = primers > 0 && n % plan.devices.div_ceil(primers).max(1) == 0;
        d.cursor = if primes { None } else { yesterday.clone() };
    }
    let primers = devices.iter().filter(|d| d.cursor.is_none()).count();
    let setup_secs = setup.elapsed().as_secs_f64();

    let shared = Arc::new(Shared {
        http,
        budget: AtomicU64::new(plan.max_requests),
        budget_hit: AtomicBool::new(false),
        plan: plan.clone(),
        start: Instant::now() + Duration::from_millis(200),
    });
    at_start();
    let mut days = tokio::task::JoinSet::new();
    for d in devices {
        days.spawn(d.day(shared.clone()));
    }
    let deadline = shared.start + plan.window + plan.drain + Duration::from_secs(60);
    let mut all = Tally::default();
    let mut deadline_hit = false;
    loop {
        match tokio::time::timeout_at(deadline, days.join_next()).await {
            Ok(Some(Ok(t))) => all.merge(t),
            Ok(Some(Err(e))) => all.error(format!("device task: {e}")),
            Ok(None) => break,
            Err(_) => {
                deadline_hit = true;
                all.error(format!(
                    "device abandoned at the deadline ({} left)",
                    days.len()
                ));
                days.abort_all();
                break;
            }
        }
    }
    let elapsed = shared.start.elapsed().as_secs_f64();
    let [prime, pull, upload, push] = std::mem::take(&mut all.lat);
    let answered = (prime.len() + pull.len() + upload.len() + push.len()) as f64;
    let errors = all.errors.values().sum();
    Ok(Report {
        devices: plan.devices,
        primers,
        window_secs: plan.window.as_secs_f64(),
        elapsed_secs: elapsed,
        setup_secs,
        login: KindStats {
            requests: plan.devices as u64 + 1,
            ok: plan.devices as u64 + 1,
            ..KindStats::default()
        },
        prime: stats(prime, all.ok[Kind::Prime as usize]),
        pull: stats(pull, all.ok[Kind::Pull as usize]),
        upload: stats(upload, all.ok[Kind::Upload as usize]),
        push: stats(push, all.ok[Kind::Push as usize]),
        requests_per_sec: answered / elapsed.max(1e-9),
        mutations_planned: (plan.devices * plan.mutations_per_device()) as u64,
        mutations_applied: all.applied,
        mutations_per_sec: all.applied as f64 / elapsed.max(1e-9),
        pull_rows: all.pull_rows,
        prime_rows: all.prime_rows,
        completions_planned: (plan.devices * plan.orders_per_device) as u64,
        completions_acked: all.acked.len() as u64,
        errors,
        errors_by: all.errors,
        duplicates: all.duplicates,
        budget_hit: shared.budget_hit.load(Ordering::Relaxed),
        deadline_hit,
        acked: all.acked,
    })
}

/// Check on the server, as the dispatcher, that every completion `report` says was
/// applied is there exactly once: the order completed with that signature, the note
/// once and the part once. Returns what is wrong, one line per order.
pub async fn verify(base: &str, report: &Report) -> Result<Vec<String>, LoadError> {
    check_loopback(base)?;
    let http = reqwest::Client::new();
    let base = base.trim_end_matches('/');
    let tokens = login(&http, base, DISPATCHER, Uuid::new_v4(), "10.255.255.253").await?;
    let mut wrong = Vec::new();
    for c in &report.acked {
        let r = http
            .get(format!("{base}{}/{}", paths::ORDERS, c.order))
            .bearer_auth(&tokens.access_token)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .send()
            .await
            .map_err(|e| LoadError::Setup(format!("reading order {}: {e}", c.order)))?;
        if !r.status().is_success() {
            wrong.push(format!("{}: {}", c.order, r.status()));
            continue;
        }
        let o: WorkOrder = r
            .json()
            .await
            .map_err(|e| LoadError::Setup(format!("reading order {}: {e}", c.order)))?;
        let notes = o.notes.iter().filter(|n| n.text == c.note).count();
        let parts = o.parts_used.iter().filter(|p| p.id == c.part).count();
        let signed = o.signature.as_ref().map(|s| s.hash.as_str()) == Some(c.signature.as_str());
        if o.status != Status::Completed || !signed || notes != 1 || parts != 1 {
            wrong.push(format!(
                "{}: status {}, signature {}, note {notes}×, part {parts}×",
                c.order,
                o.status,
                if signed { "right" } else { "wrong" }
            ));
        }
        if o.assignee.as_deref() != Some(c.assignee.as_str()) {
            wrong.push(format!("{}: assignee {:?}", c.order, o.assignee));
        }
    }
    Ok(wrong)
}
