//! The reliability oracle: the harness's own record of what people did, checked against
//! what the server holds at the end.
//!
//! Every action a harness performs on a device (a note, a part line, a checklist tick,
//! a completion, a reassignment, a conflict's resolution) goes into a [`Journal`] with a
//! value no other action has (a unique note text, a unique quantity, a unique signer).
//! Once everyone has synced, [`ServerState::fetch`] reads the server's final state over
//! HTTP as a dispatcher (the orders the journal names, every conflict and failed-sync
//! record) and [`check`] counts, for each journaled change, how often it is there:
//!
//! - once: applied;
//! - not at all, but named by a conflict or a failed-sync record (on the server, or
//!   set aside on a device and passed in with [`ServerState::add_device_records`]): in
//!   front of a person, as the promise allows;
//! - not at all and nowhere: **lost**; more than once: **doubled**.
//!
//! Nothing here reads the app's own counters: the journal is what the harness did, the
//! state is what the server answers. A change the harness started but whose process
//! died before it could confirm the save ([`Journal::record_unconfirmed`]) may be absent
//! (the person never saw it saved), never doubled.
//!
//! Part lines are also counted where a double apply shows even when the line itself is
//! not repeated: the stock. With a baseline taken before the run
//! ([`Journal::set_stock_baseline`], from [`ServerState::fetch_stock`]), each journaled
//! SKU's final stock must be the baseline less the applied lines' quantities; less
//! than that is a doubled decrement, more a lost one. (The harness must be the only
//! one using parts of those SKUs.)
//!
//! [`DeviceReport`] holds the invariants a quiet device must meet: an empty outbox, a
//! sound database (integrity check), and no order left "saved" or "syncing".

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use outpost_protocol::mutation::ListItem;
use outpost_protocol::wire::{
    paths, ChangeBody, ConflictList, ConflictRecord, FailedSyncList, FailedSyncRecord,
    LoginRequest, PullRequest, PullResponse, RecordStatus, TokenResponse, PROTOCOL_HEADER,
};
use outpost_protocol::PROTOCOL_VERSION;
use outpost_protocol::{Mutation, Op, Quantity, WorkOrder};
use uuid::Uuid;

/// One change a person made, with the value that tells it apart from every other.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A note entry with a unique text.
    Note { order: Uuid, text: String },
    /// A part line with a unique quantity (see [`Journal::unique_quantity`]).
    Part {
        order: Uuid,
        sku: String,
        quantity: Quantity,
    },
    /// A checklist item marked done.
    Check { order: Uuid, item: String },
    /// The order completed, signed by a unique signer, with `photos` photos.
    Complete {
        order: Uuid,
        signer: String,
        photos: usize,
    },
    /// The order assigned to `to` (a dispatcher's action).
    Reassign { order: Uuid, to: String },
    /// A conflict (or failed sync) resolved by a person.
    Resolve { record: Uuid },
}

impl Change {
    pub fn order(&self) -> Option<Uuid> {
        match self {
            Change::Note { order, .. }
            | Change::Part { order, .. }
            | Change::Check { order, .. }
            | Change::Complete { order, .. }
            | Change::Reassign { order, .. } => Some(*order),
            Change::Resolve { .. } => None,
        }
    }

    /// A short description for reports.
    pub fn describe(&self) -> String {
        match self {
            Change::Note { order, text } => format!("note {text:?} on {order}"),
            Change::Part {
                order,
                sku,
                quantity,
            } => format!("part {sku} × {quantity} on {order}"),
            Change::Check { order, item } => format!("checklist {item} done on {order}"),
            Change::Complete {
                order,
                signer,
                photos,
            } => format!("completion of {order} signed by {signer:?} with {photos} photo(s)"),
            Change::Reassign { order, to } => format!("{order} assigned to {to}"),
            Change::Resolve { record } => format!("resolution of record {record}"),
        }
    }

    /// How often the change is on the server's order (`None`: the order was not
    /// readable, which counts as 0).
    pub fn count_in(&self, order: Option<&WorkOrder>) -> usize {
        let Some(o) = order else { return 0 };
        match self {
            Change::Note { text, .. } => o.notes.iter().filter(|n| &n.text == text).count(),
            Change::Part { sku, quantity, .. } => o
                .parts_used
                .iter()
                .filter(|p| &p.sku == sku && p.quantity == *quantity)
                .count(),
            Change::Check { item, .. } => {
                usize::from(o.checklist.iter().any(|c| &c.id == item && c.done))
            }
            Change::Complete { signer, photos, .. } => {
                let signed = o.signature.as_ref().is_some_and(|s| &s.signer == signer);
                if !signed {
                    0
                } else if o.photos.len() > *photos {
                    // A completion applied twice would add its photos twice.
                    2
                } else {
                    1
                }
            }
            Change::Reassign { to, .. } => usize::from(o.assignee.as_deref() == Some(to)),
            Change::Resolve { .. } => 0,
        }
    }

    /// Whether `m` (a mutation a person has in front of them) carries this change.
    fn carried_by(&self, m: &Mutation) -> bool {
        if let Change::Resolve { record } = self {
            // A resolution is a mutation of the record itself.
            return m.entity_id == *record;
        }
        if self.order() != Some(m.entity_id) {
            return false;
        }
        match self {
            Change::Note { text, .. } => m
                .ops
                .iter()
                .any(|op| matches!(op, Op::AppendNote { note } if &note.text == text)),
            Change::Part { sku, quantity, .. } => m.ops.iter().any(|op| {
                matches!(op, Op::Add(ListItem::PartsUsed(p)) if &p.sku == sku && p.quantity == *quantity)
            }),
            Change::Check { item, .. } => ops_mention(m, item),
            Change::Complete { signer, .. } => ops_mention(m, signer),
            Change::Reassign { to, .. } => ops_mention(m, to),
            Change::Resolve { .. } => false,
        }
    }
}

fn ops_mention(m: &Mutation, needle: &str) -> bool {
    serde_json::to_string(&m.ops)
        .map(|s| s.contains(&format!("\"{needle}\"")))
        .unwrap_or(false)
}

/// One journaled action.
#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    /// Who did it (a device's name in the test).
    pub actor: String,
    pub change: Change,
    /// The save was confirmed to the person (the command succeeded). An unconfirmed
    /// change may be absent, never doubled.
    pub confirmed: bool,
}

/// The harness's record of every action it performed. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Journal {
    entries: Arc<Mutex<Vec<Entry>>>,
    seq: Arc<AtomicU64>,
    milli: Arc<AtomicI64>,
    stock_baseline: Arc<Mutex<Option<HashMap<String, i64>>>>,
}

impl Journal {
    pub fn new() -> Journal {
        Journal::default()
    }

    /// A change whose save was confirmed.
    pub fn record(&self, actor: &str, change: Change) {
        self.push(actor, change, true);
    }

    /// A change whose process died (or was killed) before it confirmed the save.
    pub fn record_unconfirmed(&self, actor: &str, change: Change) {
        self.push(actor, change, false);
    }

    fn push(&self, actor: &str, change: Change, confirmed: bool) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst);
        self.entries.lock().unwrap().push(Entry {
            seq,
            actor: actor.to_owned(),
            change,
            confirmed,
        });
    }

    /// Mark the last entries of `actor` whose change is `change` as confirmed (for a
    /// harness that journals before it knows the outcome).
    pub fn confirm(&self, actor: &str, change: &Change) {
        let mut all = self.entries.lock().unwrap();
        if let Some(e) = all
            .iter_mut()
            .rev()
            .find(|e| e.actor == actor && &e.change == change)
        {
            e.confirmed = true;
        }
    }

    /// A text no other action of this journal uses (`prefix` plus a counter and a UUID).
    pub fn unique_text(&self, prefix: &str) -> String {
        let n = self.seq.fetch_add(1, Ordering::SeqCst);
        format!("{prefix} #{n} {}", Uuid::new_v4().simple())
    }

    /// A part quantity no other part line of this journal uses: 1.001, 1.002, … units
    /// (then 2.001, …), small enough for any stock.
    pub fn unique_quantity(&self) -> Quantity {
        let n = self.milli.fetch_add(1, Ordering::SeqCst);
        Quantity(1000 * (1 + n / 999) + 1 + n % 999)
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stock per SKU (thousandths) before any journaled part line: turns on the stock
    /// check ([`ServerState::fetch_stock`] reads it).
    pub fn set_stock_baseline(&self, stock: HashMap<String, i64>) {
        *self.stock_baseline.lock().unwrap() = Some(stock);
    }

    pub fn stock_baseline(&self) -> Option<HashMap<String, i64>> {
        self.stock_baseline.lock().unwrap().clone()
    }

    /// The orders the journal names.
    pub fn orders(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .entries
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| e.change.order())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// What the server holds at the end, read over HTTP.
#[derive(Debug, Clone, Default)]
pub struct ServerState {
    /// The journal's orders as `GET /v1/orders/{id}` answers them (absent: 404).
    pub orders: HashMap<Uuid, WorkOrder>,
    pub conflicts: Vec<ConflictRecord>,
    pub failed: Vec<FailedSyncRecord>,
    /// Mutations a device set aside itself and shows a person (never reached the
    /// server's records).
    pub on_devices: Vec<Mutation>,
    /// Stock per SKU (thousandths), read when the journal has a stock baseline.
    pub stock: Option<HashMap<String, i64>>,
}

/// Why the server's state could not be read.
#[derive(Debug)]
pub struct FetchError(pub String);

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reading the server's final state: {}", self.0)
    }
}

impl std::error::Error for FetchError {}

fn fetch_err(what: &str) -> impl Fn(reqwest::Error) -> FetchError + '_ {
    move |e| FetchError(format!("{what}: {e}"))
}

/// An HTTP client and a dispatcher's bearer header for `url`.
async fn sign_in(url: &str) -> Result<(reqwest::Client, String), FetchError> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(fetch_err("an HTTP client"))?;
    let login = LoginRequest {
        username: "dispatcher".into(),
        password: crate::DEMO_PASSWORD.into(),
        device_id: Uuid::new_v4(),
    };
    let tokens: TokenResponse = http
        .post(format!("{url}{}", paths::LOGIN))
        .json(&login)
        .send()
        .await
        .map_err(fetch_err("sign in"))?
        .error_for_status()
        .map_err(fetch_err("sign in"))?
        .json()
        .await
        .map_err(fetch_err("sign-in answer"))?;
    Ok((http, format!("Bearer {}", tokens.access_token)))
}

impl ServerState {
    /// Every item's total stock (thousandths), pulled from scratch as a dispatcher.
    pub async fn fetch_stock(url: &str) -> Result<HashMap<String, i64>, FetchError> {
        let url = url.trim_end_matches('/');
        let (http, bearer) = sign_in(url).await?;
        let mut stock = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page: PullResponse = http
                .post(format!("{url}{}", paths::PULL))
                .header("authorization", &bearer)
                .header(PROTOCOL_HEADER, PROTOCOL_VERSION.to_string())
                .json(&PullRequest {
                    cursor: cursor.clone(),
                    ..PullRequest::default()
                })
                .send()
                .await
                .map_err(fetch_err("a pull page"))?
                .error_for_status()
                .map_err(fetch_err("a pull page"))?
                .json()
                .await
                .map_err(fetch_err("a pull page's body"))?;
            for c in &page.changes {
                if let ChangeBody::InventoryItem(item) = &c.change {
                    stock.insert(item.sku.clone(), item.total_stock().milli());
                }
            }
            let more = page.has_more && cursor.as_deref() != Some(page.cursor.as_str());
            cursor = Some(page.cursor);
            if !more {
                break;
            }
        }
        Ok(stock)
    }

    /// Sign in to `url` as the demo dispatcher (a device id of its own) and read the
    /// journal's orders, every conflict and failed-sync record, and (when the journal
    /// has a stock baseline) the stock.
    pub async fn fetch(url: &str, journal: &Journal) -> Result<ServerState, FetchError> {
        let url = url.trim_end_matches('/');
        let (http, bearer) = sign_in(url).await?;
        let mut state = ServerState::default();
        if journal.stock_baseline().is_some() {
            state.stock = Some(ServerState::fetch_stock(url).await?);
        }
        for id in journal.orders() {
            let resp = http
                .get(format!("{url}{}/{id}", paths::ORDERS))
                .header("authorization", &bearer)
                .send()
                .await
                .map_err(fetch_err("an order"))?;
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                continue;
            }
            let order: WorkOrder = resp
                .error_for_status()
                .map_err(fetch_err("an order"))?
                .json()
                .await
                .map_err(fetch_err("an order's body"))?;
            state.orders.insert(id, order);
        }
        let list = |path: &'static str| {
            http.get(format!("{url}{path}?status=all&limit=5000"))
                .header("authorization", &bearer)
                .send()
        };
        let conflicts: ConflictList = list(paths::CONFLICTS)
            .await
            .map_err(fetch_err("conflicts"))?
            .error_for_status()
            .map_err(fetch_err("conflicts"))?
            .json()
            .await
            .map_err(fetch_err("conflicts' body"))?;
        let failed: FailedSyncList = list(paths::FAILED_SYNCS)
            .await
            .map_err(fetch_err("failed syncs"))?
            .error_for_status()
            .map_err(fetch_err("failed syncs"))?
            .json()
            .await
            .map_err(fetch_err("failed syncs' body"))?;
        state.conflicts = conflicts.items;
        state.failed = failed.items;
        Ok(state)
    }

    /// Mutations a device shows a person as failed or held that the server has no
    /// record of (set aside on the device).
    pub fn add_device_records(&mut self, mutations: impl IntoIterator<Item = Mutation>) {
        self.on_devices.extend(mutations);
    }

    /// Whether a person has `change` in front of them (or decided on it): a conflict or
    /// failed-sync record, open or resolved, on the server or a device, carries it.
    fn shown(&self, change: &Change) -> bool {
        self.conflicts
            .iter()
            .map(|c| &c.mutation)
            .chain(self.failed.iter().map(|f| &f.mutation))
            .chain(self.on_devices.iter())
            .any(|m| change.carried_by(m))
    }

    fn record_status(&self, id: Uuid) -> Option<RecordStatus> {
        self.conflicts
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.status)
            .or_else(|| self.failed.iter().find(|f| f.id == id).map(|f| f.status))
    }
}

/// The oracle's count.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Journal entries checked.
    pub checked: usize,
    /// On the server exactly once.
    pub applied: usize,
    /// Not applied, but in front of a person (a conflict or failed sync).
    pub shown: usize,
    /// A reassignment a later one replaced (only the last can be seen).
    pub superseded: usize,
    /// Unconfirmed (the process died before it said "saved") and absent.
    pub unconfirmed_absent: usize,
    /// Neither on the server nor in front of a person.
    pub lost: Vec<String>,
    /// On the server more than once.
    pub doubled: Vec<String>,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.doubled.is_empty()
    }

    /// Panic with every lost and doubled change, and `context` (e.g. the seed).
    pub fn assert_clean(&self, context: &str) {
        assert!(
            self.is_clean(),
            "{context}: {} lost, {} doubled of {} changes\nlost: {:#?}\ndoubled: {:#?}",
            self.lost.len(),
            self.doubled.len(),
            self.checked,
            self.lost,
            self.doubled
        );
    }
}

/// Count lost and doubled changes: every journal entry against the server's state.
pub fn check(journal: &Journal, server: &ServerState) -> Verdict {
    let entries = journal.entries();
    let mut last_reassign: HashMap<Uuid, u64> = HashMap::new();
    for e in &entries {
        if let Change::Reassign { order, .. } = &e.change {
            last_reassign.insert(*order, e.seq);
        }
    }
    let mut v = Verdict {
        checked: entries.len(),
        ..Verdict::default()
    };
    // Thousandths of each SKU the applied part lines took.
    let mut taken: HashMap<String, i64> = HashMap::new();
    for e in &entries {
        let what = format!("{} (by {}, #{})", e.change.describe(), e.actor, e.seq);
        if let Change::Reassign { order, .. } = &e.change {
            if last_reassign.get(order) != Some(&e.seq) {
                v.superseded += 1;
                continue;
            }
        }
        let count = match &e.change {
            Change::Resolve { record } => {
                usize::from(server.record_status(*record) == Some(RecordStatus::Resolved))
            }
            other => other.count_in(other.order().and_then(|id| server.orders.get(&id))),
        };
        if let Change::Part { sku, quantity, .. } = &e.change {
            *taken.entry(sku.clone()).or_insert(0) += quantity.milli() * count as i64;
        }
        match count {
            1 => v.applied += 1,
            0 if server.shown(&e.change) => v.shown += 1,
            0 if !e.confirmed => v.unconfirmed_absent += 1,
            0 => v.lost.push(what),
            _ => v.doubled.push(what),
        }
    }
    if let (Some(base), Some(now)) = (journal.stock_baseline(), server.stock.as_ref()) {
        let mut skus: Vec<&String> = taken.keys().collect();
        skus.sort();
        for sku in skus {
            let (Some(before), Some(after)) = (base.get(sku), now.get(sku)) else {
                v.lost
                    .push(format!("stock of {sku}: not readable on the server"));
                continue;
            };
            let expected = before - taken[sku];
            if *after < expected {
                v.doubled.push(format!(
                    "stock of {sku}: {after} thousandths, {} below what the applied part lines leave ({expected}): a decrement applied twice",
                    expected - after
                ));
            } else if *after > expected {
                v.lost.push(format!(
                    "stock of {sku}: {after} thousandths, {} above what the applied part lines leave ({expected}): a decrement lost",
                    after - expected
                ));
            }
        }
    }
    v
}

/// What a device looks like once it is quiet (everyone synced).
#[derive(Debug, Clone)]
pub struct DeviceReport {
    pub name: String,
    /// Outbox rows left.
    pub outbox: usize,
    /// The database check's problems (empty: sound).
    pub integrity: Vec<String>,
    /// Orders still "saved" or "syncing", and anything else waiting.
    pub stuck: Vec<String>,
}

impl DeviceReport {
    /// The invariants this device breaks (empty: none).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.outbox > 0 {
            out.push(format!(
                "{}: {} outbox row(s) left after quiescence",
                self.name, self.outbox
            ));
        }
        for p in &self.integrity {
            out.push(format!("{}: integrity: {p}", self.name));
        }
        for s in &self.stuck {
            out.push(format!("{}: stuck: {s}", self.name));
        }
        out
    }

    /// The report of an in-process device.
    pub fn of_device(name: &str, dev: &crate::Device) -> DeviceReport {
        Self::of_app(name, &dev.app)
    }

    /// The report of an in-process app (its data directory wherever the test put it).
    pub fn of_app(name: &str, app: &outpost_core::Outpost) -> DeviceReport {
        let outbox = app.outbox().map(|r| r.len()).unwrap_or(usize::MAX);
        let integrity = match app.check() {
            Ok(c) if c.store.sound => Vec::new(),
            Ok(c) => c
                .store
                .integrity
                .iter()
                .chain(c.store.cipher_integrity.iter())
                .cloned()
                .collect(),
            Err(e) => vec![e.to_string()],
        };
        let stuck = match app.orders() {
            Ok(rows) => rows
                .iter()
                .filter(|r| {
                    matches!(
                        r.sync_state,
                        outpost_core::SyncState::Saved | outpost_core::SyncState::Syncing
                    )
                })
                .map(|r| format!("order {} is {:?}", r.order.id, r.sync_state))
                .collect(),
            Err(e) => vec![format!("orders unreadable: {e}")],
        };
        DeviceReport {
            name: name.to_owned(),
            outbox,
            integrity,
            stuck,
        }
    }
}

/// Every problem of every device (empty: all invariants hold).
pub fn device_problems(reports: &[DeviceReport]) -> Vec<String> {
    reports.iter().flat_map(DeviceReport::problems).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::{NoteEntry, PartUsed};

    fn order(id: Uuid) -> WorkOrder {
        serde_json::from_value(serde_json::json!({
            "id": id, "title": "t", "priority": "normal", "status": "scheduled",
        }))
        .unwrap()
    }

    fn note(text: &str) -> NoteEntry {
        NoteEntry {
            id: Uuid::new_v4(),
            author: "tech1".into(),
            text: text.into(),
            at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_change_on_the_server_once_is_applied_twice_is_doubled_never_is_lost() {
        let j = Journal::new();
        let id = Uuid::new_v4();
        let (once, twice, never) = (j.unique_text("a"), j.unique_text("b"), j.unique_text("c"));
        for text in [&once, &twice, &never] {
            j.record(
                "tech1",
                Change::Note {
                    order: id,
                    text: text.clone(),
                },
            );
        }
        let q = j.unique_quantity();
        j.record(
            "tech1",
            Change::Part {
                order: id,
                sku: "SKU-1".into(),
                quantity: q,
            },
        );
        let mut o = order(id);
        o.notes = vec![note(&once), note(&twice), note(&twice)];
        o.parts_used = vec![PartUsed {
            id: Uuid::new_v4(),
            sku: "SKU-1".into(),
            quantity: q,
        }];
        let mut state = ServerState::default();
        state.orders.insert(id, o);
        let v = check(&j, &state);
        assert_eq!(v.checked, 4);
        assert_eq!(v.applied, 2);
        assert_eq!(v.lost.len(), 1, "{v:?}");
        assert!(v.lost[0].contains(&never));
        assert_eq!(v.doubled.len(), 1, "{v:?}");
        assert!(v.doubled[0].contains(&twice));
        assert!(!v.is_clean());
    }

    #[test]
    fn an_absent_change_held_as_a_failed_sync_or_unconfirmed_is_not_lost() {
        let j = Journal::new();
        let id = Uuid::new_v4();
        let held = j.unique_text("held");
        let unconfirmed = j.unique_text("killed before saved");
        j.record(
            "tech1",
            Change::Note {
                order: id,
                text: held.clone(),
            },
        );
        j.record_unconfirmed(
            "tech1",
            Change::Note {
                order: id,
                text: unconfirmed,
            },
        );
        let m: Mutation = serde_json::from_value(serde_json::json!({
            "mutation_id": Uuid::new_v4(), "device_id": Uuid::new_v4(),
            "entity": "work_order", "entity_id": id, "kind": "update",
            "base_version": 1, "format": 1, "device_time": "2026-01-01T00:00:00Z",
            "ops": [{"op": "append_note", "note": note(&held)}],
        }))
        .unwrap();
        let mut state = ServerState::default();
        state.orders.insert(id, order(id));
        state.add_device_records([m]);
        let v = check(&j, &state);
        assert_eq!((v.shown, v.unconfirmed_absent), (1, 1), "{v:?}");
        assert!(v.is_clean(), "{v:?}");
    }

    #[test]
    fn only_the_last_reassignment_of_an_order_is_checked() {
        let j = Journal::new();
        let id = Uuid::new_v4();
        for to in ["tech2", "tech3"] {
            j.record(
                "dispatcher",
                Change::Reassign {
                    order: id,
                    to: to.into(),
                },
            );
        }
        let mut o = order(id);
        o.assignee = Some("tech2".into());
        let mut state = ServerState::default();
        state.orders.insert(id, o.clone());
        let v = check(&j, &state);
        assert_eq!(v.superseded, 1);
        assert_eq!(v.lost.len(), 1, "tech3 never got it: {v:?}");
        o.assignee = Some("tech3".into());
        state.orders.insert(id, o);
        assert!(check(&j, &state).is_clean());
    }

    #[test]
    fn a_part_line_applied_once_but_its_stock_taken_twice_is_doubled() {
        let j = Journal::new();
        let id = Uuid::new_v4();
        let q = j.unique_quantity();
        j.set_stock_baseline(HashMap::from([("SKU-1".to_owned(), 10_000)]));
        j.record(
            "tech1",
            Change::Part {
                order: id,
                sku: "SKU-1".into(),
                quantity: q,
            },
        );
        let mut o = order(id);
        o.parts_used = vec![PartUsed {
            id: Uuid::new_v4(),
            sku: "SKU-1".into(),
            quantity: q,
        }];
        let mut state = ServerState::default();
        state.orders.insert(id, o);
        state.stock = Some(HashMap::from([("SKU-1".to_owned(), 10_000 - q.milli())]));
        assert!(check(&j, &state).is_clean());
        state.stock = Some(HashMap::from([(
            "SKU-1".to_owned(),
            10_000 - 2 * q.milli(),
        )]));
        let v = check(&j, &state);
        assert_eq!(v.doubled.len(), 1, "{v:?}");
        assert!(v.doubled[0].contains("stock of SKU-1"));
        state.stock = Some(HashMap::from([("SKU-1".to_owned(), 10_000)]));
        assert_eq!(check(&j, &state).lost.len(), 1);
    }

    #[test]
    fn unique_quantities_never_repeat() {
        let j = Journal::new();
        let mut seen: Vec<i64> = (0..3000).map(|_| j.unique_quantity().milli()).collect();
        assert!(seen.iter().all(|m| m % 1000 != 0));
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3000);
    }
}
