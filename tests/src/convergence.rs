//! The convergence property (issue 17 item 1): three technicians and a dispatcher, each
//! a real client on its own SQLCipher data directory, do random things to a few orders
//! against one real `outpost-server` over loopback HTTP, with random offline windows
//! and a server epoch reset now and then; once everyone has synced, every invariant of
//! [`Fleet::check`] must hold. proptest generates the schedules ([`Action`] lists) and
//! shrinks a failing one to a minimal schedule.
//!
//! Cases are cheap because the server, its dispatcher "follower" and the four devices
//! live for [`CASES_PER_FLEET`] cases (then a new fleet starts): each case creates its
//! own orders (one per technician), so that what earlier cases left behind is out of
//! the case's scope. The follower pulls
//! the server's change log as a dispatcher over raw HTTP (never through the app's own
//! engine), so it sees every change's sequence, version and mutation ids, and every
//! item's stock.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use outpost_core::{Completion, Evidence, FieldChoice, NewOrder, OrderEdit};
use outpost_protocol::wire::{
    paths, ChangeBody, ConflictList, ConflictRecord, FailedSyncList, FailedSyncRecord,
    LoginRequest, PullRequest, PullResponse, RecordStatus, TokenResponse, PROTOCOL_HEADER,
};
use outpost_protocol::{ChecklistItem, Priority, Quantity, Status, WorkOrder, PROTOCOL_VERSION};
use uuid::Uuid;

use crate::oracle::{self, Change, Journal, ServerState};
use crate::{png, small_fleet, Device, Server};

/// Cases on one fleet before it is started afresh: each case leaves three orders and
/// their records behind, and a case's cost grows with them (about 0.5 s per case at
/// first, 2.5 s after 800), so a long run renews the server and the devices.
pub const CASES_PER_FLEET: usize = 100;

/// The technicians (devices 0, 1, 2); the dispatcher is device [`DISPATCHER`].
pub const TECHS: usize = 3;
pub const DISPATCHER: usize = 3;
/// SKUs the schedules use for part lines (the demo fleet's first items).
pub const SKUS: [&str; 3] = ["SKU-00001", "SKU-00002", "SKU-00003"];

/// One step of a schedule. Orders are named by their index among the case's orders
/// (one created per technician, assigned to it); devices by index (techs, then the
/// dispatcher).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The device stops syncing (its window offline starts).
    Offline(usize),
    /// The device syncs again from now on, starting with a pass.
    Online(usize),
    /// One sync pass (nothing when offline).
    Sync(usize),
    /// A note (`append_note`).
    Note(usize, usize),
    /// A part line of `SKUS[sku]` with a unique quantity (`add parts_used`).
    Part(usize, usize, usize),
    /// The checklist item ticked or unticked (`set checklist_done`).
    Tick(usize, usize, bool),
    /// Title and priority set (`set title`, `set priority`).
    Retitle(usize, usize),
    /// Status set to en route or in progress (`set status`).
    Progress(usize, usize, bool),
    /// A checklist item added (`add checklist`; a dispatcher's edit).
    AddChecklist(usize, usize),
    /// A completion, signature always, a photo when `true`.
    Complete(usize, usize, bool),
    /// The dispatcher cancels the order.
    Cancel(usize),
    /// The dispatcher assigns the order to technician `to` (away, and back later).
    Reassign(usize, usize),
    /// The device resolves its first open conflict: its own values (`true`) or the
    /// server's.
    Resolve(usize, bool),
    /// `outpost-server epoch reset` on the running server (as after a restore).
    EpochReset,
}

impl Action {
    fn device(&self) -> Option<usize> {
        match self {
            Action::Offline(d)
            | Action::Online(d)
            | Action::Sync(d)
            | Action::Note(d, _)
            | Action::Part(d, _, _)
            | Action::Tick(d, _, _)
            | Action::Retitle(d, _)
            | Action::Progress(d, _, _)
            | Action::AddChecklist(d, _)
            | Action::Complete(d, _, _)
            | Action::Resolve(d, _) => Some(*d),
            Action::Cancel(_) | Action::Reassign(_, _) => Some(DISPATCHER),
            Action::EpochReset => None,
        }
    }
}

fn name(d: usize) -> String {
    if d == DISPATCHER {
        "dispatcher".into()
    } else {
        format!("tech{}", d + 1)
    }
}

/// The dispatcher's raw view of the change log, followed across cases.
#[derive(Default)]
struct Follower {
    cursor: Option<String>,
    /// Every mutation id a change-log row named (applied on the server).
    applied: HashSet<Uuid>,
    /// Per order: (sequence, version, assignee) of every log row seen.
    log: HashMap<Uuid, Vec<(u64, u64, Option<String>)>>,
    /// Stock per SKU (thousandths).
    stock: HashMap<String, i64>,
    /// The last version of every conflict and failed-sync record.
    conflicts: HashMap<Uuid, ConflictRecord>,
    failed: HashMap<Uuid, FailedSyncRecord>,
    /// Highest sequence seen.
    seq: u64,
}

/// An HTTP client signed in as each user.
struct Api {
    http: reqwest::Client,
    url: String,
    bearer: HashMap<String, String>,
}

impl Api {
    async fn sign_in(&mut self, user: &str) -> Result<String, String> {
        let login = LoginRequest {
            username: user.into(),
            password: crate::DEMO_PASSWORD.into(),
            device_id: Uuid::new_v4(),
        };
        let tokens: TokenResponse = self
            .http
            .post(format!("{}{}", self.url, paths::LOGIN))
            .json(&login)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("sign in as {user}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("sign-in answer: {e}"))?;
        let bearer = format!("Bearer {}", tokens.access_token);
        self.bearer.insert(user.into(), bearer.clone());
        Ok(bearer)
    }

    async fn bearer(&mut self, user: &str) -> Result<String, String> {
        match self.bearer.get(user) {
            Some(b) => Ok(b.clone()),
            None => self.sign_in(user).await,
        }
    }

    /// A request as `user`, signed in again once when the token has expired.
    async fn send(
        &mut self,
        user: &str,
        make: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, String> {
        let bearer = self.bearer(user).await?;
        let resp = make(&self.http, &self.url)
            .header("authorization", bearer)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .send()
            .await
            .map_err(|e| format!("request as {user}: {e}"))?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let bearer = self.sign_in(user).await?;
        make(&self.http, &self.url)
            .header("authorization", bearer)
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
            .send()
            .await
            .map_err(|e| format!("request as {user}: {e}"))
    }

    /// One pull page as `user` from `cursor` (`None`: 409, the cursor is void).
    async fn pull(
        &mut self,
        user: &str,
        cursor: Option<String>,
    ) -> Result<Option<PullResponse>, String> {
        let body = PullRequest {
            cursor,
            limit: Some(500),
            ..PullRequest::default()
        };
        let resp = self
            .send(user, |h, url| {
                h.post(format!("{url}{}", paths::PULL)).json(&body)
            })
            .await?;
        if resp.status() == reqwest::StatusCode::CONFLICT {
            return Ok(None);
        }
        let page = resp
            .error_for_status()
            .map_err(|e| format!("pull as {user}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("pull page as {user}: {e}"))?;
        Ok(Some(page))
    }

    async fn order(&mut self, id: Uuid) -> Result<Option<WorkOrder>, String> {
        let resp = self
            .send("dispatcher", |h, url| {
                h.get(format!("{url}{}/{id}", paths::ORDERS))
            })
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        resp.error_for_status()
            .map_err(|e| format!("order {id}: {e}"))?
            .json()
            .await
            .map(Some)
            .map_err(|e| format!("order {id}: {e}"))
    }

    /// The open conflict and failed-sync ids `user` sees on the server for `orders`.
    async fn open_records(&mut self, user: &str, orders: &[Uuid]) -> Result<Vec<Uuid>, String> {
        let mut ids = Vec::new();
        let conflicts: ConflictList = self
            .send(user, |h, url| {
                h.get(format!("{url}{}?status=open&limit=5000", paths::CONFLICTS))
            })
            .await?
            .error_for_status()
            .map_err(|e| format!("conflicts as {user}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("conflicts as {user}: {e}"))?;
        ids.extend(
            conflicts
                .items
                .iter()
                .filter(|c| c.status == RecordStatus::Open && orders.contains(&c.order_id))
                .map(|c| c.id),
        );
        let failed: FailedSyncList = self
            .send(user, |h, url| {
                h.get(format!(
                    "{url}{}?status=open&limit=5000",
                    paths::FAILED_SYNCS
                ))
            })
            .await?
            .error_for_status()
            .map_err(|e| format!("failed syncs as {user}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("failed syncs as {user}: {e}"))?;
        ids.extend(
            failed
                .items
                .iter()
                .filter(|f| f.status == RecordStatus::Open && orders.contains(&f.order_id))
                .map(|f| f.mutation.mutation_id),
        );
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// The fleet of one run: the server, the follower, the four devices.
pub struct Fleet {
    pub rt: tokio::runtime::Runtime,
    pub server: Server,
    api: Api,
    follower: Follower,
    pub devices: Vec<Device>,
    online: Vec<bool>,
    _tmp: tempfile::TempDir,
    photo_seed: u32,
    /// Cases run (on this fleet and the ones it renewed).
    pub cases: usize,
    /// Cases run on this server and these devices.
    cases_here: usize,
    /// The longest schedule run (actions).
    pub longest: usize,
    /// Changes the oracle checked, and how many were applied / shown to a person.
    pub checked: usize,
    pub epoch_resets: usize,
    /// Conflict and failed-sync records the cases opened (so that a run shows it
    /// reached those paths).
    pub conflicts: usize,
    pub failed_syncs: usize,
}

/// One case: its orders, journal and the mutation ids the devices queued.
struct Case {
    orders: Vec<Uuid>,
    journal: Journal,
    mutations: Vec<(String, Uuid)>,
}

impl Fleet {
    /// The server on the demo fleet (200 items), the four devices signed in and synced.
    pub fn start() -> Fleet {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let tmp = tempfile::tempdir().expect("temp dir");
        let db = small_fleet(tmp.path());
        let server = Server::start(&db, &[]);
        let mut devices = Vec::new();
        for d in 0..=DISPATCHER {
            let mut dev = Device::new();
            rt.block_on(dev.login(&server.url, &name(d)));
            rt.block_on(dev.sync()).expect("first sync");
            devices.push(dev);
        }
        let api = Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
            url: server.url.clone(),
            bearer: HashMap::new(),
        };
        let mut fleet = Fleet {
            rt,
            server,
            api,
            follower: Follower::default(),
            devices,
            online: vec![true; DISPATCHER + 1],
            _tmp: tmp,
            photo_seed: 0,
            cases: 0,
            cases_here: 0,
            longest: 0,
            checked: 0,
            epoch_resets: 0,
            conflicts: 0,
            failed_syncs: 0,
        };
        fleet.follow().expect("the follower's first pull");
        fleet
    }

    /// Pull the log to its end as the follower (priming again after an epoch reset).
    fn follow(&mut self) -> Result<(), String> {
        loop {
            let cursor = self.follower.cursor.clone();
            let Some(page) = self
                .rt
                .block_on(self.api.pull("dispatcher", cursor.clone()))?
            else {
                self.follower.cursor = None;
                continue;
            };
            for c in &page.changes {
                self.follower.applied.extend(c.mutation_ids.iter().copied());
                self.follower.seq = self.follower.seq.max(c.seq);
                match &c.change {
                    ChangeBody::InventoryItem(item) => {
                        self.follower
                            .stock
                            .insert(item.sku.clone(), item.total_stock().milli());
                    }
                    ChangeBody::WorkOrder(o) => {
                        self.follower.log.entry(o.id).or_default().push((
                            c.seq,
                            c.version,
                            o.assignee.clone(),
                        ));
                    }
                    ChangeBody::Conflict(r) => {
                        self.follower.conflicts.insert(r.id, r.clone());
                    }
                    ChangeBody::FailedSync(r) => {
                        self.follower.failed.insert(r.id, r.clone());
                    }
                    _ => {}
                }
            }
            let more = page.has_more && cursor.as_deref() != Some(page.cursor.as_str());
            self.follower.cursor = Some(page.cursor);
            if !more {
                return Ok(());
            }
        }
    }

    fn sync(&mut self, d: usize) {
        if self.online[d] {
            let _ = self.rt.block_on(self.devices[d].sync());
        }
    }

    /// The dispatcher creates one order per technician (a checklist item each), assigns
    /// it, and everyone syncs.
    fn new_case(&mut self) -> Result<Case, String> {
        self.online = vec![true; DISPATCHER + 1];
        let journal = Journal::new();
        let mut orders = Vec::new();
        let disp = DISPATCHER;
        for t in 0..TECHS {
            let row = self.devices[disp]
                .app
                .create_order(NewOrder {
                    title: journal.unique_text("Convergence"),
                    description: String::new(),
                    customer: "Property test".into(),
                    address: String::new(),
                    priority: None,
                })
                .map_err(|e| format!("create an order: {e}"))?;
            let id = row.order.id.to_string();
            self.devices[disp]
                .app
                .edit_order(
                    &id,
                    OrderEdit {
                        add_checklist: vec![ChecklistItem {
                            id: "c1".into(),
                            label: "Check the seals".into(),
                            required: false,
                            done: false,
                        }],
                        ..OrderEdit::default()
                    },
                )
                .map_err(|e| format!("add a checklist item: {e}"))?;
            self.devices[disp]
                .app
                .assign_order(&id, &name(t))
                .map_err(|e| format!("assign: {e}"))?;
            orders.push(row.order.id);
        }
        self.rt
            .block_on(self.devices[disp].sync())
            .map_err(|e| format!("the dispatcher's sync: {e}"))?;
        for d in 0..TECHS {
            self.sync(d);
        }
        self.follow()?;
        journal.set_stock_baseline(self.follower.stock.clone());
        Ok(Case {
            orders,
            journal,
            mutations: Vec::new(),
        })
    }

    fn outbox_ids(&self, d: usize) -> HashSet<Uuid> {
        self.devices[d]
            .app
            .outbox()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r.mutation_id.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Perform one action; journal what it saved.
    fn act(&mut self, case: &mut Case, a: &Action) -> Result<(), String> {
        let before = a.device().map(|d| self.outbox_ids(d));
        let order_of = |i: usize| case.orders[i % case.orders.len()];
        let j = case.journal.clone();
        match a {
            Action::Offline(d) => self.online[*d] = false,
            Action::Online(d) => {
                self.online[*d] = true;
                self.sync(*d);
            }
            Action::Sync(d) => self.sync(*d),
            Action::Note(d, o) => {
                let order = order_of(*o);
                let text = j.unique_text(&format!("{} note", name(*d)));
                let edit = OrderEdit {
                    notes: vec![text.clone()],
                    ..OrderEdit::default()
                };
                if self.edit(*d, order, edit) {
                    j.record(&name(*d), Change::Note { order, text });
                }
            }
            Action::Part(d, o, s) => {
                let order = order_of(*o);
                let sku = SKUS[s % SKUS.len()].to_owned();
                let quantity: Quantity = j.unique_quantity();
                let edit = OrderEdit {
                    parts: vec![(sku.clone(), quantity)],
                    ..OrderEdit::default()
                };
                if self.edit(*d, order, edit) {
                    j.record(
                        &name(*d),
                        Change::Part {
                            order,
                            sku,
                            quantity,
                        },
                    );
                }
            }
            Action::Tick(d, o, done) => {
                let item = vec!["c1".to_owned()];
                let edit = if *done {
                    OrderEdit {
                        check: item,
                        ..OrderEdit::default()
                    }
                } else {
                    OrderEdit {
                        uncheck: item,
                        ..OrderEdit::default()
                    }
                };
                self.edit(*d, order_of(*o), edit);
            }
            Action::Retitle(d, o) => {
                let edit = OrderEdit {
                    title: Some(j.unique_text("Title")),
                    priority: Some(if o % 2 == 0 {
                        Priority::High
                    } else {
                        Priority::Urgent
                    }),
                    ..OrderEdit::default()
                };
                self.edit(*d, order_of(*o), edit);
            }
            Action::Progress(d, o, en_route) => {
                let edit = OrderEdit {
                    status: Some(if *en_route {
                        Status::EnRoute
                    } else {
                        Status::InProgress
                    }),
                    ..OrderEdit::default()
                };
                self.edit(*d, order_of(*o), edit);
            }
            Action::AddChecklist(d, o) => {
                let edit = OrderEdit {
                    add_checklist: vec![ChecklistItem {
                        id: format!("x{}", j.len()),
                        label: j.unique_text("Extra step"),
                        required: false,
                        done: false,
                    }],
                    ..OrderEdit::default()
                };
                self.edit(*d, order_of(*o), edit);
            }
            Action::Complete(d, o, photo) => {
                let order = order_of(*o);
                let signer = j.unique_text("Signer");
                self.photo_seed = self.photo_seed.wrapping_add(1);
                let photos = if *photo {
                    vec![Evidence {
                        bytes: outpost_core::photos::synthetic_photo(64, 48, self.photo_seed),
                        name: "after.jpg".into(),
                    }]
                } else {
                    Vec::new()
                };
                let n = photos.len();
                let done = self.devices[*d].app.complete_order(
                    &order.to_string(),
                    Completion {
                        signature_png: Evidence {
                            bytes: png(&signer),
                            name: "sig.png".into(),
                        },
                        signer: signer.clone(),
                        photos,
                    },
                );
                if done.is_ok() {
                    j.record(
                        &name(*d),
                        Change::Complete {
                            order,
                            signer,
                            photos: n,
                        },
                    );
                }
            }
            Action::Cancel(o) => {
                let _ = self.devices[DISPATCHER]
                    .app
                    .cancel_order(&order_of(*o).to_string(), "Customer cancelled");
            }
            Action::Reassign(o, to) => {
                let order = order_of(*o);
                let to = name(to % TECHS);
                if self.devices[DISPATCHER]
                    .app
                    .assign_order(&order.to_string(), &to)
                    .is_ok()
                {
                    j.record("dispatcher", Change::Reassign { order, to });
                }
            }
            Action::Resolve(d, mine) => {
                let open = self.devices[*d].app.conflicts().unwrap_or_default();
                let ours = |c: &outpost_core::ConflictView| {
                    c.order_id
                        .as_deref()
                        .and_then(|o| o.parse().ok())
                        .is_some_and(|o: Uuid| case.orders.contains(&o))
                };
                if let Some(c) = open
                    .into_iter()
                    .find(|c| c.status == "open" && !c.resolving && c.record.is_some() && ours(c))
                {
                    if let Some(record) = c.record.clone() {
                        let choice = if *mine {
                            FieldChoice::Mine
                        } else {
                            FieldChoice::Theirs
                        };
                        let choices: Vec<(String, FieldChoice)> = record
                            .fields
                            .iter()
                            .map(|f| (f.field.clone(), choice.clone()))
                            .collect();
                        if self.devices[*d]
                            .app
                            .resolve_conflict(&c.id, &choices, *mine && choices.is_empty())
                            .is_ok()
                        {
                            j.record(&name(*d), Change::Resolve { record: record.id });
                        }
                    }
                }
            }
            Action::EpochReset => {
                // The follower is a dispatcher who is always online: it reads the log up
                // to the reset and primes again right after it. A prime carries only the
                // open conflicts and failed syncs, so a record that opened before the
                // reset and was decided after it would otherwise never reach the
                // follower, and its decision would look lost.
                self.follow()?;
                self.server.admin(&["epoch", "reset"], None);
                self.epoch_resets += 1;
                self.follow()?;
            }
        }
        if let (Some(d), Some(before)) = (a.device(), before) {
            for id in self.outbox_ids(d).difference(&before) {
                case.mutations.push((name(d), *id));
            }
        }
        Ok(())
    }

    /// The outcome kind (`applied`, `rejected`, …) the server recorded for each of `ids`
    /// (its idempotency table, read with the `sqlite3` tool, read-only): a mutation
    /// that changed nothing is applied without a change-log row.
    fn server_outcomes(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, String>, String> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
        let sql = format!(
            "SELECT mutation_id, CASE WHEN json_valid(result) THEN json_extract(result, '$.result') ELSE substr(result, 1, 80) END FROM idempotency WHERE mutation_id IN ({});",
            list.join(",")
        );
        let out = std::process::Command::new("sqlite3")
            .arg("-readonly")
            .arg(&self.server.db)
            .arg(&sql)
            .output()
            .map_err(|e| format!("run sqlite3 (package sqlite3) on the server's database: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "sqlite3 on the server's database: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (id, kind) = l.split_once('|')?;
                Some((id.parse().ok()?, kind.to_owned()))
            })
            .collect())
    }

    /// An edit on device `d`; whether it was saved.
    fn edit(&mut self, d: usize, order: Uuid, edit: OrderEdit) -> bool {
        self.devices[d]
            .app
            .edit_order(&order.to_string(), edit)
            .is_ok()
    }

    /// Everyone online, syncing until no outbox holds anything and a round changed
    /// nothing.
    fn quiesce(&mut self) {
        self.online = vec![true; DISPATCHER + 1];
        for _ in 0..6 {
            for d in 0..=DISPATCHER {
                self.sync(d);
            }
            let pending = (0..=DISPATCHER).any(|d| {
                self.devices[d].app.outbox().is_ok_and(|rows| {
                    rows.iter()
                        .any(|r| r.state != outpost_store::OutboxState::Failed)
                })
            });
            if !pending {
                break;
            }
        }
        // One more round, so that what the last pushes changed reaches everyone.
        for d in 0..=DISPATCHER {
            self.sync(d);
        }
    }

    /// A new server and new devices, keeping the run's figures.
    fn renew(&mut self) {
        let mut next = Fleet::start();
        next.cases = self.cases;
        next.longest = self.longest;
        next.checked = self.checked;
        next.epoch_resets = self.epoch_resets;
        next.conflicts = self.conflicts;
        next.failed_syncs = self.failed_syncs;
        *self = next;
    }

    /// Run one schedule from a fresh case to quiescence, then check every invariant.
    pub fn run(&mut self, schedule: &[Action]) -> Result<(), String> {
        if self.cases_here >= CASES_PER_FLEET {
            self.renew();
        }
        self.cases_here += 1;
        let mut case = self.new_case()?;
        for a in schedule {
            self.act(&mut case, a)?;
        }
        self.quiesce();
        self.follow()?;
        self.cases += 1;
        self.longest = self.longest.max(schedule.len());
        self.check(&case)
    }

    /// Every invariant of issue 17 item 1 for `case`'s orders (the scope of the check);
    /// `Err` lists each broken one.
    fn check(&mut self, case: &Case) -> Result<(), String> {
        let mut problems = Vec::new();
        // The server's rows, read as a dispatcher.
        let mut server_rows: HashMap<Uuid, WorkOrder> = HashMap::new();
        for id in &case.orders {
            if let Some(o) = self.rt.block_on(self.api.order(*id))? {
                server_rows.insert(*id, o);
            }
        }
        // 1. Every device's rows equal the server's rows in its scope.
        for d in 0..=DISPATCHER {
            let user = name(d);
            for id in &case.orders {
                let server = server_rows.get(id);
                let in_scope = server.is_some_and(|o| {
                    d == DISPATCHER || o.assignee.as_deref() == Some(user.as_str())
                });
                let local = self.devices[d].app.order(&id.to_string()).ok();
                match (in_scope, server, local) {
                    // A row carrying a failed sync or an open conflict shows the
                    // person's own change until they decide (bullet 4 checks the
                    // record is there).
                    (true, Some(_), Some(l))
                        if matches!(
                            l.sync_state,
                            outpost_core::SyncState::Failed | outpost_core::SyncState::Conflict
                        ) => {}
                    (true, Some(s), Some(l)) => {
                        let (sv, lv) = (
                            serde_json::to_value(s).unwrap_or_default(),
                            serde_json::to_value(&l.order).unwrap_or_default(),
                        );
                        if sv != lv {
                            problems.push(format!(
                                "{user}: order {id} differs from the server's:\n  server: {sv}\n  device: {lv}"
                            ));
                        }
                    }
                    (true, _, None) => {
                        problems.push(format!("{user}: order {id} is in scope but missing"))
                    }
                    (false, _, Some(l)) if l.reassigned_to.is_none() => problems.push(format!(
                        "{user}: order {id} is out of scope (assignee {:?}) but still on the device, not marked reassigned",
                        server.and_then(|s| s.assignee.clone())
                    )),
                    _ => {}
                }
            }
        }
        // 2. Every queued mutation id is applied, or in a conflict or a failed sync.
        let mut held: HashSet<Uuid> = HashSet::new();
        let mut on_devices = Vec::new();
        for (d, dev) in self.devices.iter().enumerate() {
            // Still queued at quiescence: only behind a change of the same order that
            // waits for a person (a failed sync or an open conflict), which keeps the
            // order's later changes back until they decide (docs/protocol.md, "Within
            // one push").
            let rows = dev.app.outbox().unwrap_or_default();
            for r in &rows {
                if r.state == outpost_store::OutboxState::Failed {
                    continue;
                }
                let waits = dev
                    .app
                    .order(&r.entity_id)
                    .map(|o| {
                        matches!(
                            o.sync_state,
                            outpost_core::SyncState::Failed | outpost_core::SyncState::Conflict
                        )
                    })
                    .unwrap_or(false);
                if waits {
                    held.insert(r.mutation.mutation_id);
                    on_devices.push(r.mutation.clone());
                } else {
                    problems.push(format!(
                        "{}: mutation {} of order {} is still queued ({:?}) after quiescence",
                        name(d),
                        r.mutation_id,
                        r.entity_id,
                        r.state
                    ));
                }
            }
            for c in dev.app.conflicts().unwrap_or_default() {
                if let Some(r) = c.record {
                    held.insert(r.mutation.mutation_id);
                    on_devices.push(r.mutation);
                }
            }
            for f in dev.app.failed_syncs().unwrap_or_default() {
                held.insert(f.mutation.mutation_id);
                on_devices.push(f.mutation);
            }
        }
        let unlogged: Vec<Uuid> = case
            .mutations
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| !self.follower.applied.contains(id) && !held.contains(id))
            .collect();
        let outcomes = self.server_outcomes(&unlogged)?;
        for (who, id) in &case.mutations {
            if self.follower.applied.contains(id) || held.contains(id) {
                continue;
            }
            match outcomes.get(id) {
                // Applied, but it changed nothing (so no change-log row names it).
                Some(kind) if kind == "applied" => {}
                other => problems.push(format!(
                    "{who}: mutation {id} was dropped: not applied on the server, in no conflict and no failed sync (the server's recorded outcome: {other:?})"
                )),
            }
        }
        // 3. The oracle: each journaled change once, or in front of a person; stock =
        //    start − the applied part lines.
        let state = ServerState {
            orders: server_rows.clone(),
            on_devices,
            stock: Some(self.follower.stock.clone()),
            conflicts: self
                .follower
                .conflicts
                .values()
                .filter(|r| case.orders.contains(&r.order_id))
                .cloned()
                .collect(),
            failed: self
                .follower
                .failed
                .values()
                .filter(|r| case.orders.contains(&r.order_id))
                .cloned()
                .collect(),
        };
        self.conflicts += state.conflicts.len();
        self.failed_syncs += state.failed.len();
        let verdict = oracle::check(&case.journal, &state);
        self.checked += verdict.checked;
        problems.extend(verdict.lost.iter().map(|l| format!("lost: {l}")));
        problems.extend(verdict.doubled.iter().map(|l| format!("doubled: {l}")));
        // 4. Each device's open conflicts and failed syncs equal the server's for that
        //    user.
        for d in 0..=DISPATCHER {
            let user = name(d);
            let server = self
                .rt
                .block_on(self.api.open_records(&user, &case.orders))?;
            let dev = &self.devices[d].app;
            let mut local: Vec<Uuid> = dev
                .conflicts()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| {
                    c.status == "open"
                        && c.order_id
                            .as_deref()
                            .and_then(|o| o.parse().ok())
                            .is_some_and(|o| case.orders.contains(&o))
                })
                .filter_map(|c| c.id.parse().ok())
                .collect();
            local.extend(
                dev.failed_syncs()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|f| case.orders.contains(&f.mutation.entity_id))
                    .map(|f| f.mutation.mutation_id),
            );
            // The failed-sync records pulled from the server (every one this user may
            // see: a dispatcher's, another person's refused change on their order).
            local.extend(
                dev.server_failed_syncs()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| r.status == RecordStatus::Open && case.orders.contains(&r.order_id))
                    .map(|r| r.mutation.mutation_id),
            );
            local.sort();
            local.dedup();
            if local != server {
                problems.push(format!(
                    "{user}: open conflicts and failed syncs differ: device {local:?}, server {server:?}"
                ));
            }
        }
        // 5. No skipped change: for every order row in the log that was in a device's
        //    scope, the device's row is at that version or later (docs/protocol.md,
        //    "A cursor never skips a change in scope").
        for d in 0..=DISPATCHER {
            let user = name(d);
            for id in &case.orders {
                let Some(entries) = self.follower.log.get(id) else {
                    continue;
                };
                let Some(last) = entries
                    .iter()
                    .rfind(|(_, _, who)| d == DISPATCHER || who.as_deref() == Some(&user))
                else {
                    continue;
                };
                let now_in_scope = entries.last().map(|e| e.1) == Some(last.1);
                let local = self.devices[d].app.order(&id.to_string()).ok();
                let version = local.as_ref().map(|l| l.order.version);
                if now_in_scope && version < Some(last.1) {
                    problems.push(format!(
                        "{user}: order {id}: the log's version {} (seq {}) is in scope, the device holds {version:?}: a change was skipped",
                        last.1, last.0
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}
