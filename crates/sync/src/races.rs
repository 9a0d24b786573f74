//! The sync races, each a deterministic, named test.
//!
//! [`run_pass`] runs on a real encrypted store (SQLCipher, in a temporary directory)
//! with a fixed clock, against [`FakeServer`]: an in-memory [`Transport`] that applies
//! mutations with the protocol's own rules, keeps a change log, and does exactly what a
//! test scripts at exactly the request it names (lose the reply after committing,
//! refuse the token as expired, answer badly) and can run a local write in the middle of
//! a request, as a person using the app during a sync would. Nothing here depends on
//! timing or on a network.
//!
//! The same scenarios run end to end against the real server, through a proxy that
//! breaks real connections, in `tests/tests/sync.rs`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use outpost_protocol::mutation::EntityKind;
use outpost_protocol::mutation::{ListItem, SetOp};
use outpost_protocol::wire::{
    Applied, AppliedWithConflicts, BatchFileResult, BatchUploadResponse, Change, ChangeBody,
    ChangeEntity, ConflictKind, ConflictRecord, DocumentIndex, DocumentInfo, ErrorCode,
    FailedSyncRecord, LeftScope, MutationResult, PrimingPhase, PrimingProgress, PullRequest,
    PullResponse, PushOutcome, PushResponse, RecordStatus, RefreshRequest, Rejection, Resolution,
    ResolutionOutcome, TokenResponse,
};
use outpost_protocol::{
    apply_mutation, Mutation, MutationKind, NoteEntry, Op, PhotoRef, Role, Signature, Status,
    WorkOrder, FORMAT_VERSION,
};
use outpost_store::{random_bytes, DbKey, OutboxState, Session, Store, StoreError};
use uuid::Uuid;

use crate::error::SyncError;
use crate::pass::{run_pass, PassOptions, PassReport, Progress};
use crate::transport::{Ahead, PushAhead, Transport};

const ME: &str = "tech1";

/// What the scripted server does with one push request (numbered from 0).
#[derive(Debug, Clone, Copy)]
enum PushFault {
    /// Commit the batch, then the connection breaks before the reply arrives.
    LoseReply,
    /// The access token has just expired: 401, nothing committed.
    ExpireToken,
    /// An answer that names fewer mutations than were sent; nothing committed.
    IncompleteAnswer,
    /// 503: the server is overloaded; nothing committed.
    Unavailable,
}

/// How the scripted server (or a reverse proxy in front of it) refuses every request
/// that carries a given mutation, or that is too large, whatever the request's number.
#[derive(Debug, Clone, Default)]
struct Refusals {
    /// 413 for a push whose bodies exceed this many bytes (a proxy's body limit).
    push_bytes: Option<usize>,
    /// 400 `invalid_body` for a push carrying one of these (an op an older server
    /// cannot parse).
    unparseable: HashSet<Uuid>,
    /// An answer that does not match the batch for a push carrying one of these.
    garbled: HashSet<Uuid>,
    /// 413 for an upload request carrying more than this many bytes of files.
    upload_bytes: Option<usize>,
    /// Every upload request fails as the network would (the server went away).
    upload_offline: bool,
}

/// A local write made in the middle of a request (a person using the app meanwhile).
type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    orders: BTreeMap<Uuid, WorkOrder>,
    log: Vec<Change>,
    /// Idempotency records: the body first received under each id, and its outcome.
    seen: HashMap<Uuid, (String, PushOutcome)>,
    access: String,
    refresh: String,
    refreshes: usize,
    /// Every push request's bodies as received, refused ones included.
    pushes: Vec<Vec<String>>,
    faults: HashMap<usize, PushFault>,
    during_push: Option<Hook>,
    during_pull: Option<Hook>,
    /// Runs inside the next attachment upload (evidence on a slow link).
    during_upload: Option<Hook>,
    /// Attachments received whole.
    uploaded: HashSet<String>,
    /// Upload requests, refused ones included.
    upload_requests: usize,
    /// Orders whose mutations are refused (a failed sync for a person).
    refuse: HashSet<Uuid>,
    /// Orders whose mutations are held whole in a conflict for a person.
    hold: HashSet<Uuid>,
    /// The next pull with a cursor gets `resync_required` (a restore from backup).
    resync: bool,
    refusals: Refusals,
    /// Conflict and failed-sync records, as the server keeps them.
    conflicts: BTreeMap<Uuid, ConflictRecord>,
    failed: BTreeMap<Uuid, FailedSyncRecord>,
    /// Technical documents in the index, with their bytes.
    documents: Vec<(DocumentInfo, Vec<u8>)>,
    /// The progress the device last reported (what its window shows), when watched.
    shown: Option<Shown>,
    /// What that progress said as each push and upload request arrived.
    shown_at_requests: Vec<(&'static str, Option<Progress>)>,
    /// Every push and upload request, in the order the server received them.
    requests: Vec<&'static str>,
    /// A push asked for ahead is applied at once, as the real server applies it while
    /// the device goes on (the HTTP client sends it as a task of its own); otherwise
    /// it runs when awaited.
    pushes_at_once: bool,
    /// A connection to the device's store, to see its outbox as each push arrives.
    device: Option<Store>,
    /// The device's counts (changes not acknowledged there, failed syncs) as each push
    /// arrived, when `device` is set.
    outbox_at_push: Vec<(usize, usize)>,
}

/// The device's last reported progress, shared with the scripted server.
type Shown = std::sync::Arc<Mutex<Option<Progress>>>;

impl State {
    fn append(&mut self, entity_id: Uuid, version: u64, mutation_ids: Vec<Uuid>, body: ChangeBody) {
        let seq = self.log.len() as u64 + 1;
        let entity = match &body {
            ChangeBody::Conflict(_) => ChangeEntity::Conflict,
            ChangeBody::FailedSync(_) => ChangeEntity::FailedSync,
            _ => ChangeEntity::WorkOrder,
        };
        self.log.push(Change {
            seq,
            entity,
            id: entity_id.to_string(),
            version,
            mutation_ids,
            change: body,
        });
    }

    /// Refuse `m` as the real server does: a failed-sync record in the log, named by
    /// the rejection.
    fn record_refusal(&mut self, m: &Mutation) -> PushOutcome {
        let record = FailedSyncRecord {
            id: Uuid::now_v7(),
            version: 1,
            status: RecordStatus::Open,
            order_id: m.entity_id,
            assignee: Some(ME.into()),
            username: ME.into(),
            device_id: m.device_id,
            received_at: Utc::now(),
            device_time: Some(m.device_time),
            code: ErrorCode::ValidationFailed,
            message: "refused by the test's server".into(),
            field_errors: Vec::new(),
            mutation: m.clone(),
            resolution: None,
        };
        self.failed.insert(record.id, record.clone());
        self.append(
            record.id,
            1,
            vec![m.mutation_id],
            ChangeBody::FailedSync(record.clone()),
        );
        PushOutcome::Rejected(Rejection {
            failed_sync_id: Some(record.id),
            ..rejection(record.code, &record.message)
        })
    }

    /// Hold `m` whole in an open conflict, as the real server does for a push after a
    /// reassignment.
    fn record_hold(&mut self, m: &Mutation, current: &WorkOrder) -> PushOutcome {
        let record = ConflictRecord {
            id: Uuid::now_v7(),
            version: 1,
            status: RecordStatus::Open,
            kind: ConflictKind::Reassigned,
            order_id: current.id,
            order_number: current.number,
            assignee: current.assignee.clone(),
            username: ME.into(),
            device_id: m.device_id,
            created_at: Utc::now(),
            device_time: Some(m.device_time),
            fields: Vec::new(),
            held_by: None,
            mutation: m.clone(),
            resolution: None,
        };
        self.conflicts.insert(record.id, record.clone());
        self.append(
            record.id,
            1,
            vec![m.mutation_id],
            ChangeBody::Conflict(record.clone()),
        );
        PushOutcome::AppliedWithConflicts(AppliedWithConflicts {
            entity_id: current.id,
            version: current.version,
            number: current.number,
            conflict_id: record.id,
            fields: Vec::new(),
            conflict_kind: ConflictKind::Reassigned,
            order: Some(current.clone()),
        })
    }

    /// A dispatcher settles a record elsewhere (keeps the server's state, or
    /// dismisses): version 2, resolved, in the log.
    fn settle(&mut self, record_id: Uuid) {
        let resolution = |outcome| Resolution {
            outcome,
            decided_by: "dispatcher".into(),
            decided_at: Utc::now(),
            mutation_id: Uuid::now_v7(),
            ops: Vec::new(),
            order_version: None,
            reason: None,
        };
        if let Some(c) = self.conflicts.get_mut(&record_id) {
            c.version = 2;
            c.status = RecordStatus::Resolved;
            c.resolution = Some(resolution(ResolutionOutcome::KeptServer));
            let (c, ids) = (c.clone(), vec![c.resolution.as_ref().unwrap().mutation_id]);
            self.append(record_id, 2, ids, ChangeBody::Conflict(c));
        } else if let Some(f) = self.failed.get_mut(&record_id) {
            f.version = 2;
            f.status = RecordStatus::Resolved;
            f.resolution = Some(resolution(ResolutionOutcome::Dismissed));
            let (f, ids) = (f.clone(), vec![f.resolution.as_ref().unwrap().mutation_id]);
            self.append(record_id, 2, ids, ChangeBody::FailedSync(f));
        } else {
            panic!("no record {record_id}");
        }
    }

    /// Apply one mutation body the way the server does: idempotent by mutation id,
    /// checked with the protocol's rules, one version per applied change.
    fn apply(&mut self, body: &str) -> MutationResult {
        let m: Mutation = serde_json::from_str(body).unwrap();
        if let Some((first_body, outcome)) = self.seen.get(&m.mutation_id) {
            let outcome = if first_body == body {
                PushOutcome::Duplicate {
                    first: Box::new(outcome.clone()),
                }
            } else {
                rejected(ErrorCode::MutationIdReused, "another body under this id")
            };
            return MutationResult {
                mutation_id: m.mutation_id,
                outcome,
            };
        }
        let before = self.orders.get(&m.entity_id).cloned();
        let outcome = if self.refuse.contains(&m.entity_id) {
            self.record_refusal(&m)
        } else if let (true, Some(current)) = (self.hold.contains(&m.entity_id), &before) {
            self.record_hold(&m, current)
        } else {
            self.apply_new(&m, before)
        };
        // Like the real server, the idempotency record keeps the outcome without the
        // order row: a duplicate answer names the version, the pull brings the row.
        let mut recorded = outcome.clone();
        match &mut recorded {
            PushOutcome::Applied(a) => a.order = None,
            PushOutcome::AppliedWithConflicts(a) => a.order = None,
            _ => {}
        }
        self.seen.insert(m.mutation_id, (body.to_owned(), recorded));
        MutationResult {
            mutation_id: m.mutation_id,
            outcome,
        }
    }

    fn apply_new(&mut self, m: &Mutation, before: Option<WorkOrder>) -> PushOutcome {
        match apply_mutation(before.as_ref(), m) {
            Ok(mut after) => {
                after.version = before.as_ref().map_or(0, |b| b.version) + 1;
                after.number = before.as_ref().and_then(|b| b.number);
                self.orders.insert(after.id, after.clone());
                self.append(
                    after.id,
                    after.version,
                    vec![m.mutation_id],
                    ChangeBody::WorkOrder(after.clone()),
                );
                PushOutcome::Applied(Applied {
                    entity: EntityKind::WorkOrder,
                    entity_id: after.id,
                    version: after.version,
                    number: after.number,
                    changed: true,
                    order: Some(after),
                })
            }
            Err(e) => rejected(ErrorCode::ValidationFailed, &e.summary()),
        }
    }

    /// An answer for the first mutation only, claiming a row the server never
    /// stored; nothing is committed.
    fn incomplete_answer(&self, bodies: &[&str]) -> PushResponse {
        let m: Mutation = serde_json::from_str(bodies[0]).unwrap();
        let mut order = self.orders[&m.entity_id].clone();
        order.title = "from a broken answer".into();
        order.version += 1;
        let result = MutationResult {
            mutation_id: m.mutation_id,
            outcome: PushOutcome::Applied(Applied {
                entity: EntityKind::WorkOrder,
                entity_id: order.id,
                version: order.version,
                number: order.number,
                changed: true,
                order: Some(order),
            }),
        };
        PushResponse {
            results: if bodies.len() > 1 {
                vec![result]
            } else {
                Vec::new()
            },
            server_time: Utc::now(),
            written: None,
        }
    }

    fn in_scope(change: &Change) -> bool {
        match &change.change {
            ChangeBody::WorkOrder(o) => o.assignee.as_deref() == Some(ME),
            _ => true,
        }
    }
}

fn rejection(code: ErrorCode, message: &str) -> Rejection {
    Rejection {
        code,
        message: message.to_owned(),
        field_errors: Vec::new(),
        failed_sync_id: None,
        resolution: None,
    }
}

fn rejected(code: ErrorCode, message: &str) -> PushOutcome {
    PushOutcome::Rejected(rejection(code, message))
}

/// The scripted server.
struct FakeServer {
    state: Mutex<State>,
}

impl FakeServer {
    /// A server holding `n` orders assigned to [`ME`], at version 1.
    fn with_orders(n: u64) -> FakeServer {
        let mut state = State {
            access: "access-1".into(),
            refresh: "refresh-1".into(),
            pushes_at_once: true,
            ..State::default()
        };
        for i in 0..n {
            let id = Uuid::from_u128(0x1000 + i as u128);
            let mut o = WorkOrder::blank(id);
            o.title = format!("Order {i}");
            o.assignee = Some(ME.into());
            o.number = Some(100 + i);
            o.version = 1;
            state.orders.insert(id, o);
        }
        FakeServer {
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn order_ids(&self) -> Vec<String> {
        self.lock().orders.keys().map(|k| k.to_string()).collect()
    }

    fn fail_push(&self, request: usize, fault: PushFault) {
        self.lock().faults.insert(request, fault);
    }

    fn during_push(&self, hook: impl FnOnce() + Send + 'static) {
        self.lock().during_push = Some(Box::new(hook));
    }

    fn during_pull(&self, hook: impl FnOnce() + Send + 'static) {
        self.lock().during_pull = Some(Box::new(hook));
    }

    fn during_upload(&self, hook: impl FnOnce() + Send + 'static) {
        self.lock().during_upload = Some(Box::new(hook));
    }

    /// Look at the device's outbox through `device` as each push arrives.
    fn watch_outbox(&self, device: Store) {
        self.lock().device = Some(device);
    }

    /// Watch `shown` (the device's last reported progress) at every push and upload.
    fn watch_progress(&self, shown: Shown) {
        self.lock().shown = Some(shown);
    }

    /// Note what the watched progress says as a `what` request arrives.
    fn note_shown(&self, what: &'static str) {
        let mut s = self.lock();
        s.requests.push(what);
        if let Some(shown) = s.shown.clone() {
            let now = shown.lock().unwrap().clone();
            s.shown_at_requests.push((what, now));
        }
    }

    /// Take the upload hook, if one waits, and run it (outside the lock).
    fn run_upload_hook(&self) {
        let hook = self.lock().during_upload.take();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// A dispatcher reassigns an order: the row moves on, and this device's log
    /// carries `left_scope`.
    fn reassign(&self, id: &str, to: &str) {
        let mut s = self.lock();
        let id = Uuid::parse_str(id).unwrap();
        let mut o = s.orders[&id].clone();
        o.assignee = Some(to.into());
        o.version += 1;
        s.orders.insert(id, o.clone());
        s.append(id, o.version, Vec::new(), ChangeBody::WorkOrder(o.clone()));
        s.append(
            id,
            o.version,
            Vec::new(),
            ChangeBody::LeftScope(LeftScope {
                now_assigned_to: Some(to.into()),
            }),
        );
    }

    fn notes(&self, id: &str, text: &str) -> usize {
        let id = Uuid::parse_str(id).unwrap();
        self.lock().orders[&id]
            .notes
            .iter()
            .filter(|n| n.text == text)
            .count()
    }

    fn version(&self, id: &str) -> u64 {
        self.lock().orders[&Uuid::parse_str(id).unwrap()].version
    }

    fn pushes(&self) -> Vec<Vec<String>> {
        self.lock().pushes.clone()
    }

    /// A dispatcher edits an order's title: a new version in the log.
    fn retitle(&self, id: &str, title: &str) {
        let mut s = self.lock();
        let id = Uuid::parse_str(id).unwrap();
        let mut o = s.orders[&id].clone();
        o.title = title.into();
        o.version += 1;
        s.orders.insert(id, o.clone());
        s.append(id, o.version, Vec::new(), ChangeBody::WorkOrder(o));
    }

    /// An administrator attaches a manual to an order.
    fn attach_manual(&self, order: &str, bytes: &[u8]) {
        let info = DocumentInfo {
            id: Uuid::now_v7(),
            version: 1,
            name: "manual.txt".into(),
            media_type: "text/plain".into(),
            size: bytes.len() as u64,
            sha256: outpost_protocol::digest::sha256_hex(bytes),
            orders: vec![Uuid::parse_str(order).unwrap()],
        };
        self.lock().documents.push((info, bytes.to_vec()));
    }
}

/// A refusal of the whole request, as the server (or a proxy) answers it.
fn refused(status: u16, code: ErrorCode, message: &str) -> SyncError {
    SyncError::Server {
        status,
        code,
        message: message.into(),
        retry_after: None,
    }
}

fn expired() -> SyncError {
    SyncError::Unauthorized("the access token has expired".into())
}

impl Transport for FakeServer {
    async fn refresh(&self, req: &RefreshRequest) -> Result<TokenResponse, SyncError> {
        let mut s = self.lock();
        if req.refresh_token != s.refresh {
            return Err(SyncError::SignInRequired(
                "this device was signed out on the server".into(),
            ));
        }
        s.refreshes += 1;
        s.access = format!("access-{}", s.refreshes + 1);
        s.refresh = format!("refresh-{}", s.refreshes + 1);
        let now = Utc::now();
        Ok(TokenResponse {
            access_token: s.access.clone(),
            access_expires_at: now + Duration::hours(1),
            refresh_token: s.refresh.clone(),
            refresh_expires_at: now + Duration::days(30),
            username: ME.into(),
            role: Role::Technician,
            device_id: req.device_id,
            server_time: now,
        })
    }

    async fn push(&self, token: &str, bodies: &[&str]) -> Result<(PushResponse, usize), SyncError> {
        self.note_shown("push");
        let hook = {
            let mut s = self.lock();
            s.pushes
                .push(bodies.iter().map(|b| (*b).to_owned()).collect());
            s.during_push.take()
        };
        if let Some(hook) = hook {
            hook();
        }
        let mut s = self.lock();
        if let Some(device) = &s.device {
            let counts = device.sync_counts().unwrap();
            s.outbox_at_push.push((counts.pending, counts.failed));
        }
        let request = s.pushes.len() - 1;
        let fault = s.faults.remove(&request);
        if token != s.access {
            return Err(expired());
        }
        let sent: usize = bodies.iter().map(|b| b.len()).sum();
        let ids: Vec<Uuid> = bodies
            .iter()
            .map(|b| serde_json::from_str::<Mutation>(b).unwrap().mutation_id)
            .collect();
        if s.refusals.push_bytes.is_some_and(|limit| sent > limit) {
            return Err(refused(
                413,
                ErrorCode::PayloadTooLarge,
                "request body too large",
            ));
        }
        if ids.iter().any(|id| s.refusals.unparseable.contains(id)) {
            return Err(refused(
                400,
                ErrorCode::InvalidBody,
                "unknown variant `stamp`, expected one of `set`, `add`, `remove`, `append_note`",
            ));
        }
        match fault {
            Some(PushFault::ExpireToken) => {
                s.access = "expired".into();
                return Err(expired());
            }
            Some(PushFault::Unavailable) => {
                return Err(refused(503, ErrorCode::Unavailable, "overloaded"));
            }
            Some(PushFault::IncompleteAnswer) => return Ok((s.incomplete_answer(bodies), sent)),
            _ if ids.iter().any(|id| s.refusals.garbled.contains(id)) => {
                return Ok((s.incomplete_answer(bodies), sent))
            }
            _ => {}
        }
        let results = bodies.iter().map(|b| s.apply(b)).collect();
        if let Some(PushFault::LoseReply) = fault {
            return Err(SyncError::Offline("connection reset by peer".into()));
        }
        Ok((
            PushResponse {
                results,
                server_time: Utc::now(),
                written: None,
            },
            sent,
        ))
    }

    fn push_ahead(&self, token: String, bodies: Vec<String>) -> PushAhead<'_> {
        let push = async move {
            let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
            self.push(&token, &bodies).await
        };
        if !self.lock().pushes_at_once {
            return Ahead::new(push);
        }
        // The scripted server never waits: one poll runs the request to its end.
        let mut push = std::pin::pin!(push);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::future::Future::poll(push.as_mut(), &mut cx) {
            std::task::Poll::Ready(answer) => Ahead::new(std::future::ready(answer)),
            std::task::Poll::Pending => unreachable!("the scripted server never waits"),
        }
    }

    async fn pull(
        &self,
        token: &str,
        req: &PullRequest,
    ) -> Result<(PullResponse, usize), SyncError> {
        let hook = self.lock().during_pull.take();
        if let Some(hook) = hook {
            hook();
        }
        let mut s = self.lock();
        if token != s.access {
            return Err(expired());
        }
        if s.resync && req.cursor.is_some() {
            s.resync = false;
            return Err(SyncError::ResyncRequired);
        }
        let head = s.log.len();
        let cursor = format!("fake:{head}");
        let page = match req.cursor.as_deref() {
            None => {
                // Orders in scope, then the open conflicts and failed syncs.
                let snapshot = |entity, id: Uuid, version, change| Change {
                    seq: 0,
                    entity,
                    id: id.to_string(),
                    version,
                    mutation_ids: Vec::new(),
                    change,
                };
                let changes: Vec<Change> = s
                    .orders
                    .values()
                    .filter(|o| o.assignee.as_deref() == Some(ME))
                    .map(|o| {
                        snapshot(
                            ChangeEntity::WorkOrder,
                            o.id,
                            o.version,
                            ChangeBody::WorkOrder(o.clone()),
                        )
                    })
                    .chain(
                        s.conflicts
                            .values()
                            .filter(|c| c.status == RecordStatus::Open)
                            .map(|c| {
                                snapshot(
                                    ChangeEntity::Conflict,
                                    c.id,
                                    c.version,
                                    ChangeBody::Conflict(c.clone()),
                                )
                            }),
                    )
                    .chain(
                        s.failed
                            .values()
                            .filter(|f| f.status == RecordStatus::Open)
                            .map(|f| {
                                snapshot(
                                    ChangeEntity::FailedSync,
                                    f.id,
                                    f.version,
                                    ChangeBody::FailedSync(f.clone()),
                                )
                            }),
                    )
                    .collect();
                let n = changes.len() as u64;
                PullResponse {
                    changes,
                    cursor,
                    has_more: false,
                    priming: Some(PrimingProgress {
                        phase: PrimingPhase::Orders,
                        done: n,
                        total: n,
                        snapshot_seq: head as u64,
                    }),
                    server_time: Utc::now(),
                    epoch: None,
                }
            }
            Some(c) => {
                let from: usize = c.trim_start_matches("fake:").parse().unwrap();
                PullResponse {
                    changes: s.log[from..]
                        .iter()
                        .filter(|c| State::in_scope(c))
                        .cloned()
                        .collect(),
                    cursor,
                    has_more: false,
                    priming: None,
                    server_time: Utc::now(),
                    epoch: None,
                }
            }
        };
        let size = serde_json::to_vec(&page).map(|b| b.len()).unwrap_or(0);
        Ok((page, size))
    }

    async fn document_index(&self, _token: &str) -> Result<DocumentIndex, SyncError> {
        Ok(DocumentIndex {
            items: self
                .lock()
                .documents
                .iter()
                .map(|(d, _)| d.clone())
                .collect(),
            budget_bytes: None,
        })
    }

    async fn document_range(
        &self,
        _token: &str,
        id: &str,
        _sha256: &str,
        range: (u64, u64),
    ) -> Result<Vec<u8>, SyncError> {
        let s = self.lock();
        let (_, bytes) = s
            .documents
            .iter()
            .find(|(d, _)| d.id.to_string() == id)
            .ok_or_else(|| SyncError::BadAnswer(format!("no document {id} here")))?;
        Ok(bytes[range.0 as usize..range.1 as usize].to_vec())
    }

    async fn download(&self, _token: &str, hash: &str) -> Result<Vec<u8>, SyncError> {
        Err(SyncError::BadAnswer(format!("{hash}: no attachments here")))
    }

    async fn upload_batch(
        &self,
        _token: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<BatchUploadResponse, SyncError> {
        self.note_shown("upload");
        self.run_upload_hook();
        let mut s = self.lock();
        s.upload_requests += 1;
        if s.refusals.upload_offline {
            return Err(SyncError::Offline("connection refused".into()));
        }
        let bytes: usize = files.iter().map(|(_, d)| d.len()).sum();
        if s.refusals.upload_bytes.is_some_and(|limit| bytes > limit) {
            return Err(refused(
                413,
                ErrorCode::PayloadTooLarge,
                "request body too large",
            ));
        }
        let results = files
            .iter()
            .map(|(hash, data)| {
                assert_eq!(&outpost_protocol::attachment_hash(data), hash);
                s.uploaded.insert(hash.clone());
                BatchFileResult {
                    hash: hash.clone(),
                    complete: true,
                    error: None,
                }
            })
            .collect();
        Ok(BatchUploadResponse { results })
    }

    async fn upload_resumable(
        &self,
        _token: &str,
        hash: &str,
        data: &[u8],
        chunk: usize,
    ) -> Result<usize, SyncError> {
        self.run_upload_hook();
        assert_eq!(outpost_protocol::attachment_hash(data), hash);
        let mut s = self.lock();
        s.upload_requests += 1;
        if s.refusals.upload_offline {
            return Err(SyncError::Offline("connection refused".into()));
        }
        if s.refusals
            .upload_bytes
            .is_some_and(|limit| chunk.min(data.len()) > limit)
        {
            return Err(refused(
                413,
                ErrorCode::PayloadTooLarge,
                "request body too large",
            ));
        }
        s.uploaded.insert(hash.to_owned());
        Ok(data.len())
    }
}

/// A signed-in device on its own encrypted data directory, primed from `server`.
struct Device {
    dir: tempfile::TempDir,
    key: [u8; 32],
    store: Store,
    /// The fixed clock every pass reads.
    now: DateTime<Utc>,
}

impl Device {
    async fn primed(server: &FakeServer) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let key = random_bytes::<32>().unwrap();
        let mut store = Store::create(dir.path(), &DbKey::from_bytes(key)).unwrap();
        let now = Utc::now();
        let device_id = store.device_id(now).unwrap();
        store
            .set_session(&Session {
                server_url: "http://127.0.0.1:9".into(),
                username: ME.into(),
                role: Role::Technician,
                device_id,
                access_token: "access-1".into(),
                access_expires_at: now + Duration::hours(1),
                refresh_token: "refresh-1".into(),
                refresh_expires_at: now + Duration::days(30),
                needs_sign_in: None,
            })
            .unwrap();
        let mut dev = Device {
            dir,
            key,
            store,
            now,
        };
        let report = dev.pass(server, false).await.unwrap();
        assert_eq!(report.pulled_rows, server.lock().orders.len(), "primed");
        dev
    }

    /// Another connection to the same data directory: the app's own, while the
    /// engine's pass holds its connection.
    fn app_connection(&self) -> Store {
        Store::open(self.dir.path(), &DbKey::from_bytes(self.key)).unwrap()
    }

    /// One pass; `manual` is "sync now" (every unacknowledged mutation tried once).
    async fn pass(&mut self, server: &FakeServer, manual: bool) -> Result<PassReport, SyncError> {
        let opts = PassOptions {
            ignore_backoff: manual,
            batch_count: 2,
            ..PassOptions::default()
        };
        self.pass_with(server, &opts).await
    }

    async fn pass_with(
        &mut self,
        server: &FakeServer,
        opts: &PassOptions,
    ) -> Result<PassReport, SyncError> {
        let now = self.now;
        let clock = move || now;
        run_pass(&mut self.store, server, &clock, opts, &mut |_| {}).await
    }

    fn notes(&self, id: &str, text: &str) -> usize {
        notes_in(&self.store, id, text)
    }
}

fn notes_in(store: &Store, id: &str, text: &str) -> usize {
    store
        .order(id)
        .unwrap()
        .order
        .notes
        .iter()
        .filter(|n| n.text == text)
        .count()
}

/// A technician's note on an order, saved locally as the app saves it.
fn add_note(store: &mut Store, id: &str, text: &str) -> Result<(), StoreError> {
    let order = store.order(id)?.order;
    let now = Utc::now();
    store.record(
        Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: Uuid::nil(),
            entity: EntityKind::WorkOrder,
            entity_id: order.id,
            kind: MutationKind::Update,
            base_version: order.version,
            format: FORMAT_VERSION,
            device_time: now,
            ops: vec![Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::new_v4(),
                    author: ME.into(),
                    text: text.into(),
                    at: now,
                },
            }],
            base_epoch: None,
            reason: None,
            seen: Vec::new(),
        },
        now,
    )?;
    Ok(())
}

/// A completion saved as the app saves it: the signature and a photo kept as
/// attachment files (the photo large enough to go through the resumable upload), and
/// one `complete` mutation naming them.
fn complete_with_evidence(store: &mut Store, id: &str) -> Result<(), StoreError> {
    complete_with(store, id, true)
}

/// A completion with its signature and, when `photo`, a photo (see
/// [`complete_with_evidence`]).
fn complete_with(store: &mut Store, id: &str, photo: bool) -> Result<(), StoreError> {
    let order = store.order(id)?.order;
    let now = Utc::now();
    let signature = format!("signature of {id}").into_bytes();
    let sig = store.put_attachment(&signature, "image/png", now)?;
    let mut ops = vec![Op::Set(SetOp::Signature(Some(Signature {
        hash: sig.hash,
        signer: "Customer".into(),
    })))];
    if photo {
        let mut bytes = id.as_bytes().to_vec();
        bytes.extend((0..100_000u32).map(|i| (i % 251) as u8));
        let photo = store.put_attachment(&bytes, "image/jpeg", now)?;
        ops.push(Op::Add(ListItem::Photos(PhotoRef {
            hash: photo.hash,
            caption: "after.jpg".into(),
            media_type: "image/jpeg".into(),
        })));
    }
    ops.push(Op::Set(SetOp::CompletedAt(Some(now))));
    store.record(
        Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: Uuid::nil(),
            entity: EntityKind::WorkOrder,
            entity_id: order.id,
            kind: MutationKind::Complete,
            base_version: order.version,
            format: FORMAT_VERSION,
            device_time: now,
            ops,
            base_epoch: None,
            reason: None,
            seen: Vec::new(),
        },
        now,
    )?;
    Ok(())
}

#[tokio::test]
async fn an_edit_saved_while_a_completions_evidence_uploads_reaches_the_server() {
    let server = FakeServer::with_orders(3);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    let (a, b) = (ids[0].clone(), ids[1].clone());
    complete_with_evidence(&mut dev.store, &a).unwrap();
    add_note(&mut dev.store, &b, "before the sync").unwrap();
    // One batch: [complete A, note on B]. While A's photo uploads (seconds to minutes
    // on a slow link) the technician adds another note to B in the app.
    let mut app = dev.app_connection();
    let id = b.clone();
    server.during_upload(move || add_note(&mut app, &id, "saved during the upload").unwrap());

    dev.pass(&server, false).await.unwrap();
    dev.pass(&server, false).await.unwrap();
    dev.pass(&server, true).await.unwrap();

    assert_eq!(
        server.lock().orders[&Uuid::parse_str(&a).unwrap()].status,
        Status::Completed
    );
    assert_eq!(server.notes(&b, "before the sync"), 1);
    assert_eq!(
        server.notes(&b, "saved during the upload"),
        1,
        "the note saved during the upload reached the server"
    );
    assert_eq!(
        dev.notes(&b, "saved during the upload"),
        1,
        "and is on the device"
    );
    assert!(
        dev.store.outbox().unwrap().is_empty(),
        "nothing left waiting"
    );
    // Every request carried exactly what the store had sealed under its id.
    for push in server.pushes() {
        for body in push {
            let m: Mutation = serde_json::from_str(&body).unwrap();
            let seen = server.lock().seen[&m.mutation_id].0.clone();
            assert_eq!(seen, body, "one body per mutation id");
        }
    }
}

/// Issue 24 item 4: the desktop's reconnect after a day of completions. What the sync
/// indicator shows while the engine waits on the server is the progress last
/// reported; each batch's signatures used to be reported as read ("Uploading photos and
/// signatures: 50 of 50" before a byte was sent), and that hid the push's count for
/// the whole push.
#[tokio::test]
async fn while_completions_and_their_signatures_are_sent_the_progress_shown_is_the_push_counting_what_was_sent(
) {
    let server = FakeServer::with_orders(6);
    let mut dev = Device::primed(&server).await;
    for id in server.order_ids() {
        complete_with(&mut dev.store, &id, false).unwrap();
    }
    let shown: Shown = std::sync::Arc::default();
    server.watch_progress(shown.clone());
    let opts = PassOptions {
        ignore_backoff: true,
        batch_count: 2,
        ..PassOptions::default()
    };
    let now = dev.now;
    run_pass(&mut dev.store, &server, &move || now, &opts, &mut |p| {
        *shown.lock().unwrap() = Some(p);
    })
    .await
    .unwrap();

    let seen = server.lock().shown_at_requests.clone();
    assert_eq!(
        seen.iter().filter(|(what, _)| *what == "push").count(),
        3,
        "three batches of two: {seen:?}"
    );
    let mut last_done = 0;
    for (what, progress) in &seen {
        match progress {
            Some(Progress::Pushing { done, total: 6, .. }) if *done >= last_done => last_done = *done,
            other => panic!("while a {what} request waited, the window showed {other:?}, not the push's count (all: {seen:?})"),
        }
    }
    assert_eq!(
        last_done, 4,
        "the count moved on as batches were answered: {seen:?}"
    );
    assert!(dev.store.outbox().unwrap().is_empty(), "everything sent");
}

#[tokio::test]
async fn a_completion_whose_evidence_cannot_upload_offline_stays_saved_on_the_device() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    complete_with_evidence(&mut dev.store, &a).unwrap();
    server.lock().refusals.upload_offline = true;

    let err = dev.pass(&server, false).await.unwrap_err();
    assert!(err.is_offline(), "{err}");
    assert!(server.lock().upload_requests > 0, "the upload was tried");
    assert!(server.pushes().is_empty(), "no push request was made");
    let rows = dev.store.outbox().unwrap();
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r.state == OutboxState::Pending),
        "never sent, so not sealed: {:?}",
        rows.iter().map(|r| r.state).collect::<Vec<_>>()
    );
    assert_eq!(
        dev.store.order(&a).unwrap().sync_state,
        outpost_store::SyncState::Saved,
        "shown as saved on this device, not syncing"
    );

    server.lock().refusals.upload_offline = false;
    dev.pass(&server, true).await.unwrap();
    assert!(
        dev.store.outbox().unwrap().is_empty(),
        "sent once back online"
    );
    assert_eq!(
        server.lock().orders[&Uuid::parse_str(&a).unwrap()].status,
        Status::Completed
    );
}

#[tokio::test]
async fn a_lost_reply_after_the_server_committed_is_acknowledged_by_the_byte_identical_resend() {
    let server = FakeServer::with_orders(3);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    add_note(&mut dev.store, &a, "lost reply").unwrap();
    server.fail_push(0, PushFault::LoseReply);

    let err = dev.pass(&server, false).await.unwrap_err();
    assert!(err.is_offline(), "{err}");
    assert_eq!(server.notes(&a, "lost reply"), 1, "the server committed");
    let rows = dev.store.outbox().unwrap();
    assert_eq!(rows.len(), 1, "still unacknowledged on the device");
    assert_eq!(rows[0].state, OutboxState::Sent, "sealed");
    assert!(rows[0].next_attempt_at.is_some(), "deferred with backoff");

    // "Sync now" resends at once, whatever the backoff.
    let report = dev.pass(&server, true).await.unwrap();
    let pushes = server.pushes();
    assert_eq!(pushes.len(), 2);
    assert_eq!(pushes[1], pushes[0], "resent byte for byte");
    assert_eq!(
        report.acknowledged, 1,
        "the duplicate answer acknowledges it"
    );
    assert_eq!(server.notes(&a, "lost reply"), 1, "applied once, not twice");
    assert!(dev.store.outbox().unwrap().is_empty());
    assert_eq!(dev.notes(&a, "lost reply"), 1);
    assert_eq!(
        dev.store.order(&a).unwrap().order.version,
        server.version(&a)
    );
}

#[tokio::test]
async fn a_pull_that_brings_back_the_devices_own_pending_mutation_acknowledges_it() {
    let server = FakeServer::with_orders(3);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[1].clone();
    add_note(&mut dev.store, &a, "came back").unwrap();
    server.fail_push(0, PushFault::LoseReply);
    dev.pass(&server, false).await.unwrap_err();

    // The timer's next pass: the mutation waits for its retry time, so nothing is
    // pushed; the pulled row names it, and that acknowledges it.
    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(report.pushed, 0, "still backing off: {report:?}");
    assert_eq!(server.pushes().len(), 1, "no resend was needed");
    assert_eq!(report.acknowledged, 1, "{report:?}");
    assert!(dev.store.outbox().unwrap().is_empty());
    let row = dev.store.order(&a).unwrap();
    assert_eq!(row.order.version, 2, "the server's row");
    assert_eq!(
        dev.notes(&a, "came back"),
        1,
        "the pulled row is not rebased on its own mutation a second time"
    );
}

#[tokio::test]
async fn an_edit_made_while_its_orders_mutation_is_in_flight_is_kept_and_sent_after_it() {
    let server = FakeServer::with_orders(3);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[2].clone();
    add_note(&mut dev.store, &a, "first").unwrap();
    let mut app = dev.app_connection();
    let id = a.clone();
    server.during_push(move || add_note(&mut app, &id, "second").unwrap());

    let report = dev.pass(&server, false).await.unwrap();
    let pushes = server.pushes();
    assert_eq!(pushes.len(), 2, "the edit went in its own request, after");
    let second: Mutation = serde_json::from_str(&pushes[1][0]).unwrap();
    assert_eq!(
        second.base_version, 1,
        "made on version 1; rebase never changes a base version"
    );
    assert_eq!(report.acknowledged, 2);
    assert_eq!(server.notes(&a, "first"), 1);
    assert_eq!(server.notes(&a, "second"), 1);
    assert!(dev.store.outbox().unwrap().is_empty());
    assert_eq!(dev.notes(&a, "first"), 1);
    assert_eq!(dev.notes(&a, "second"), 1);
    assert_eq!(dev.store.order(&a).unwrap().order.version, 3);
}

#[tokio::test]
async fn a_reassignment_arriving_while_an_edit_is_pending_keeps_the_order_until_the_edit_is_sent() {
    let server = FakeServer::with_orders(3);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    server.reassign(&a, "tech2");
    // The technician adds a note while the pass is pulling the reassignment.
    let mut app = dev.app_connection();
    let id = a.clone();
    server.during_pull(move || add_note(&mut app, &id, "on site").unwrap());

    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(report.removed, 0, "{report:?}");
    let row = dev.store.order(&a).unwrap();
    assert_eq!(
        row.reassigned_to.as_deref(),
        Some("tech2"),
        "shown as reassigned"
    );
    assert_eq!(dev.notes(&a, "on site"), 1, "the edit is kept");
    let rows = dev.store.outbox().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, OutboxState::Pending);
    assert_eq!(rows[0].base_version, 1);

    // The next pass sends it; with nothing left to send, the order leaves the device.
    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(report.acknowledged, 1, "{report:?}");
    assert_eq!(server.notes(&a, "on site"), 1);
    assert!(dev.store.outbox().unwrap().is_empty());
    assert!(
        matches!(dev.store.order(&a), Err(StoreError::OrderNotFound(_))),
        "an order out of scope stays only while it carries unsynced work"
    );
    // The others are untouched.
    assert_eq!(dev.store.orders().unwrap().len(), 2);
}

#[tokio::test]
async fn an_order_reassigned_away_and_back_while_an_edit_is_pending_stays_in_scope() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    server.reassign(&a, "tech2");
    let mut app = dev.app_connection();
    let id = a.clone();
    server.during_pull(move || add_note(&mut app, &id, "kept").unwrap());
    dev.pass(&server, false).await.unwrap();
    assert_eq!(
        dev.store.order(&a).unwrap().reassigned_to.as_deref(),
        Some("tech2")
    );

    server.reassign(&a, ME);
    dev.pass(&server, false).await.unwrap();
    let row = dev.store.order(&a).unwrap();
    assert_eq!(row.reassigned_to, None, "back in scope");
    assert_eq!(row.order.assignee.as_deref(), Some(ME));
    assert_eq!(dev.notes(&a, "kept"), 1);
    assert!(dev.store.outbox().unwrap().is_empty());
}

#[tokio::test]
async fn a_token_that_expires_mid_batch_is_refreshed_once_and_the_batch_resent_byte_for_byte() {
    let server = FakeServer::with_orders(5);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    for id in &ids {
        add_note(&mut dev.store, id, "expiry").unwrap();
    }
    // Batches of two: [a b] [c d] [e]; the token expires as the second is sent.
    server.fail_push(1, PushFault::ExpireToken);

    let report = dev.pass(&server, false).await.unwrap();
    let pushes = server.pushes();
    assert_eq!(pushes.len(), 4, "one request refused, then resent");
    assert_eq!(pushes[1], pushes[2], "the same bytes after the refresh");
    assert_eq!(server.lock().refreshes, 1, "refreshed once");
    assert_eq!(report.acknowledged, 5);
    for id in &ids {
        assert_eq!(server.notes(id, "expiry"), 1, "order {id}");
    }
    assert!(dev.store.outbox().unwrap().is_empty());
    let session = dev.store.session().unwrap().unwrap();
    assert_eq!(
        session.access_token,
        server.lock().access,
        "new tokens kept in the store"
    );
    assert_eq!(session.refresh_token, server.lock().refresh);
}

#[tokio::test]
async fn a_refresh_the_server_refuses_asks_for_sign_in_and_keeps_the_work() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    add_note(&mut dev.store, &a, "kept").unwrap();
    server.lock().refresh = "revoked".into();
    server.fail_push(0, PushFault::ExpireToken);

    let err = dev.pass(&server, false).await.unwrap_err();
    assert!(matches!(err, SyncError::SignInRequired(_)), "{err}");
    let session = dev.store.session().unwrap().unwrap();
    assert!(session.needs_sign_in.is_some(), "the session says so");
    assert_eq!(dev.store.outbox().unwrap().len(), 1, "the work is kept");
    assert_eq!(dev.notes(&a, "kept"), 1);

    // Until the person signs in again, a pass sends nothing.
    let err = dev.pass(&server, true).await.unwrap_err();
    assert!(matches!(err, SyncError::SignInRequired(_)), "{err}");
    assert_eq!(server.pushes().len(), 1);
}

#[tokio::test]
async fn a_push_answer_that_does_not_match_the_batch_changes_nothing() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    for id in &ids {
        add_note(&mut dev.store, id, "answer").unwrap();
    }
    let before: Vec<_> = ids
        .iter()
        .map(|id| dev.store.order(id).unwrap().order)
        .collect();
    server.fail_push(0, PushFault::IncompleteAnswer);
    // The answer does not match the batch: nothing is taken from it, and the batch is
    // sent again in halves (issue 15 item 4), each answered properly.
    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(report.acknowledged, 2, "{report:?}");
    let after: Vec<_> = ids
        .iter()
        .map(|id| dev.store.order(id).unwrap().order)
        .collect();
    assert!(after.iter().all(|o| o.title != "from a broken answer"));
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a.title, b.title, "no order took anything from that answer");
    }
    assert!(dev.store.outbox().unwrap().is_empty());
    let pushes = server.pushes();
    assert_eq!(pushes.len(), 3, "the batch, then each half");
    assert_eq!(
        [pushes[1].clone(), pushes[2].clone()].concat(),
        pushes[0],
        "the halves carry the bytes of the batch"
    );
    for id in &ids {
        assert_eq!(server.notes(id, "answer"), 1);
        assert_eq!(dev.notes(id, "answer"), 1);
    }
}

#[tokio::test]
async fn a_resync_keeps_queued_failed_and_conflicted_work_on_orders_the_snapshot_no_longer_has() {
    let server = FakeServer::with_orders(5);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    let (queued, failed, held) = (ids[0].clone(), ids[1].clone(), ids[2].clone());
    {
        let mut s = server.lock();
        s.refuse.insert(Uuid::parse_str(&failed).unwrap());
        s.hold.insert(Uuid::parse_str(&held).unwrap());
    }
    // Batches of two: [failed held] are answered; [queued]'s reply is lost.
    add_note(&mut dev.store, &failed, "refused").unwrap();
    add_note(&mut dev.store, &held, "held").unwrap();
    add_note(&mut dev.store, &queued, "queued").unwrap();
    server.fail_push(1, PushFault::LoseReply);
    dev.pass(&server, false).await.unwrap_err();
    let counts = dev.store.sync_counts().unwrap();
    assert_eq!((counts.pending, counts.failed, counts.conflicts), (1, 1, 1));

    // The server is restored from a backup in which the three are someone else's.
    for id in [&queued, &failed, &held] {
        server.reassign(id, "tech2");
    }
    server.lock().resync = true;
    let report = dev.pass(&server, false).await.unwrap();
    assert!(report.resynced, "{report:?}");
    for id in [&queued, &failed, &held] {
        let row = dev.store.order(id).unwrap();
        assert!(
            row.reassigned_to.is_some(),
            "{id} is kept for its work and shown as no longer this technician's"
        );
    }
    assert_eq!(dev.notes(&queued, "queued"), 1);
    assert_eq!(dev.notes(&failed, "refused"), 1);
    assert_eq!(dev.store.orders().unwrap().len(), 5);
    let counts = dev.store.sync_counts().unwrap();
    assert_eq!((counts.pending, counts.failed, counts.conflicts), (1, 1, 1));

    // "Sync now" resends the queued edit (the server has it: a duplicate); with its
    // work acknowledged that order goes, the two waiting for a person stay.
    dev.pass(&server, true).await.unwrap();
    assert!(matches!(
        dev.store.order(&queued),
        Err(StoreError::OrderNotFound(_))
    ));
    assert!(dev.store.order(&failed).is_ok());
    assert!(dev.store.order(&held).is_ok());
    assert_eq!(server.notes(&queued, "queued"), 1);
}

fn uuid(id: &str) -> Uuid {
    Uuid::parse_str(id).unwrap()
}

#[tokio::test]
async fn a_held_mutation_whose_reply_is_lost_is_acknowledged_by_its_pulled_conflict() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    server.lock().hold.insert(uuid(&a));
    add_note(&mut dev.store, &a, "held").unwrap();
    server.fail_push(0, PushFault::LoseReply);
    dev.pass(&server, false).await.unwrap_err();
    // A dispatcher settles the conflict before the device hears of it.
    let conflict = *server.lock().conflicts.keys().next().unwrap();
    server.lock().settle(conflict);

    // The timer's pass: the mutation waits for its retry time; the pull brings the
    // conflict (open, then resolved), which names it.
    dev.pass(&server, false).await.unwrap();
    // "Sync now" afterwards: nothing is left to resend.
    dev.pass(&server, true).await.unwrap();

    let records = dev.store.conflicts().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        records[0].status, "resolved",
        "the dispatcher's decision stands"
    );
    assert!(
        records[0].body.get("pending_pull").is_none(),
        "the full record, not a placeholder: {}",
        records[0].body
    );
    assert_eq!(dev.store.sync_counts().unwrap().conflicts, 0);
    assert_eq!(
        server.pushes().len(),
        1,
        "the held mutation was never resent"
    );
    assert!(dev.store.outbox().unwrap().is_empty());
    assert_eq!(server.lock().conflicts.len(), 1);
}

/// The device records a push's answer while the server applies the next push (issue
/// 24: the reconnect's time was the device's work and the server's one after the
/// other). Every change still reaches the server once and is acknowledged once.
#[tokio::test]
async fn the_next_push_leaves_before_the_previous_answer_is_recorded() {
    let server = FakeServer::with_orders(6);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    for id in &ids {
        add_note(&mut dev.store, id, "overlap").unwrap();
    }
    server.watch_outbox(dev.app_connection());

    // Batches of two: [a b] [c d] [e f].
    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(
        server.lock().outbox_at_push,
        vec![(6, 0), (6, 0), (4, 0)],
        "each push after the first left before the answer to the one before it was recorded"
    );
    assert_eq!((report.pushed, report.acknowledged), (6, 6), "{report:?}");
    for id in &ids {
        assert_eq!(server.notes(id, "overlap"), 1, "order {id}");
        assert_eq!(dev.notes(id, "overlap"), 1, "order {id}");
        assert_eq!(
            dev.store.order(id).unwrap().order.version,
            2,
            "the server's row"
        );
    }
    assert!(dev.store.outbox().unwrap().is_empty());
}

/// While the server applies a push, the device uploads the files the next batch's
/// completions need: the next push leaves without waiting for them.
#[tokio::test]
async fn the_next_batchs_files_are_uploaded_while_the_server_applies_a_push() {
    let server = FakeServer::with_orders(4);
    // Each request runs when the device awaits it: the order below is the device's.
    server.lock().pushes_at_once = false;
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    for id in &ids {
        complete_with(&mut dev.store, id, false).unwrap();
    }
    server.lock().requests.clear();

    // Batches of two: [a b] [c d], a signature each.
    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(
        server.lock().requests,
        vec!["upload", "upload", "push", "push"],
        "the second batch's signatures went up while the first push was on its way"
    );
    assert_eq!((report.pushed, report.acknowledged), (4, 4), "{report:?}");
    assert_eq!(server.lock().uploaded.len(), 4, "each signature once");
    assert!(dev.store.outbox().unwrap().is_empty());
    for id in &ids {
        assert!(dev.store.order(id).unwrap().order.signature.is_some());
    }
}

/// An answer that refuses a change is recorded before anything else is sent: the
/// order's later change waits behind the failed sync, as it always did.
#[tokio::test]
async fn an_answer_that_refuses_a_change_is_recorded_before_the_next_push_leaves() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    let (a, b) = (ids[0].clone(), ids[1].clone());
    server.lock().refuse.insert(uuid(&a));
    add_note(&mut dev.store, &a, "refused").unwrap();
    complete_with(&mut dev.store, &a, false).unwrap();
    add_note(&mut dev.store, &b, "fine").unwrap();
    server.watch_outbox(dev.app_connection());

    // One change per request: a's note (refused), then b's; a's completion waits.
    let opts = PassOptions {
        batch_count: 1,
        ..PassOptions::default()
    };
    let report = dev.pass_with(&server, &opts).await.unwrap();
    assert_eq!(
        server.lock().outbox_at_push,
        vec![(3, 0), (2, 1)],
        "the refusal was recorded before the next push left"
    );
    assert_eq!(server.pushes().len(), 2, "a's completion was never sent");
    assert_eq!((report.acknowledged, report.rejected), (1, 1), "{report:?}");
    let counts = dev.store.sync_counts().unwrap();
    assert_eq!((counts.pending, counts.failed), (1, 1), "{counts:?}");
    assert_eq!(server.notes(&b, "fine"), 1);
}

#[tokio::test]
async fn a_rejected_mutation_whose_reply_is_lost_becomes_a_failed_sync_from_its_pulled_record() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    server.lock().refuse.insert(uuid(&a));
    add_note(&mut dev.store, &a, "refused").unwrap();
    server.fail_push(0, PushFault::LoseReply);
    dev.pass(&server, false).await.unwrap_err();

    // The timer's pass pulls the failed-sync record that names the mutation.
    dev.pass(&server, false).await.unwrap();
    let counts = dev.store.sync_counts().unwrap();
    assert_eq!(
        (counts.pending, counts.failed),
        (0, 1),
        "shown as a failed sync at once, not waiting to be resent"
    );
    let failed = dev.store.failed_syncs().unwrap();
    assert_eq!(failed[0].message, "refused by the test's server");

    // A dispatcher dismisses it; the device learns it and the change is settled.
    let record = *server.lock().failed.keys().next().unwrap();
    server.lock().settle(record);
    dev.pass(&server, true).await.unwrap();
    assert!(dev.store.failed_syncs().unwrap().is_empty());
    assert!(dev.store.outbox().unwrap().is_empty());
    assert_eq!(server.pushes().len(), 1, "never resent");
    assert_eq!(
        server.lock().failed.len(),
        1,
        "one failed sync on the server"
    );
}

#[tokio::test]
async fn a_resync_closes_conflicts_and_failed_syncs_the_server_no_longer_has_open() {
    let server = FakeServer::with_orders(3);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    let (held, refused) = (ids[0].clone(), ids[1].clone());
    {
        let mut s = server.lock();
        s.hold.insert(uuid(&held));
        s.refuse.insert(uuid(&refused));
    }
    add_note(&mut dev.store, &held, "held").unwrap();
    add_note(&mut dev.store, &refused, "refused").unwrap();
    dev.pass(&server, false).await.unwrap();
    let open = |dev: &Device, entity: &str| {
        dev.store
            .records(entity)
            .unwrap()
            .into_iter()
            .filter(|r| r.status == "open")
            .count()
    };
    assert_eq!((open(&dev, "conflict"), open(&dev, "failed_sync")), (1, 1));

    // Both are settled on the server while the device's cursor becomes unusable (the
    // log it would have read them from was pruned): the device must re-prime.
    {
        let mut s = server.lock();
        let c = *s.conflicts.keys().next().unwrap();
        let f = *s.failed.keys().next().unwrap();
        s.settle(c);
        s.settle(f);
        s.resync = true;
    }
    let report = dev.pass(&server, false).await.unwrap();
    assert!(report.resynced, "{report:?}");
    assert_eq!(
        (open(&dev, "conflict"), open(&dev, "failed_sync")),
        (0, 0),
        "records the snapshot did not bring are no longer open on the device"
    );
    assert_eq!(dev.store.sync_counts().unwrap().conflicts, 0);
    // The technician's own refused change stays for them to retry or discard.
    assert_eq!(dev.store.failed_syncs().unwrap().len(), 1);
    assert_eq!(dev.notes(&refused, "refused"), 1);
}

/// "Sync now" with batches of up to 100 mutations.
fn manual_large_batches() -> PassOptions {
    PassOptions {
        ignore_backoff: true,
        ..PassOptions::default()
    }
}

/// A note on each of `ids`, `long` on the one at `bad` (about 9 KB of text).
fn notes_with_one_odd(store: &mut Store, ids: &[String], bad: usize) {
    for (i, id) in ids.iter().enumerate() {
        let text = if i == bad {
            "x".repeat(9_000)
        } else {
            format!("note {i}")
        };
        add_note(store, id, &text).unwrap();
    }
}

/// The scenario of a batch the server refuses because of one mutation in it: the
/// others go through in the first pass, and the offending one, refused alone again
/// and again, is set aside as a failed sync with the reason.
async fn one_bad_mutation_is_isolated(refuse: impl FnOnce(&mut Refusals, Uuid), code: &str) {
    let server = FakeServer::with_orders(6);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    notes_with_one_odd(&mut dev.store, &ids, 3);
    let bad = dev.store.outbox().unwrap()[3].mutation.mutation_id;
    refuse(&mut server.lock().refusals, bad);

    let first = dev.pass_with(&server, &manual_large_batches()).await;
    for (i, id) in ids.iter().enumerate() {
        if i != 3 {
            assert_eq!(
                server.notes(id, &format!("note {i}")),
                1,
                "order {i} went through in the first pass ({first:?})"
            );
        }
    }
    let rows = dev.store.outbox().unwrap();
    assert_eq!(rows.len(), 1, "only the offending change waits: {rows:?}");
    assert_eq!(rows[0].mutation.mutation_id, bad);

    // Tried again alone a bounded number of times, then set aside for a person.
    for _ in 0..5 {
        if dev.store.sync_counts().unwrap().failed == 1 {
            break;
        }
        let _ = dev.pass_with(&server, &manual_large_batches()).await;
    }
    let failed = dev.store.failed_syncs().unwrap();
    assert_eq!(failed.len(), 1, "set aside as a failed sync");
    assert_eq!(failed[0].mutation.mutation_id, bad);
    assert_eq!(failed[0].code, code, "{failed:?}");
    assert!(!failed[0].message.is_empty());
    let counts = dev.store.sync_counts().unwrap();
    assert_eq!((counts.pending, counts.failed), (0, 1));
    // Once set aside, a pass is clean again and sends nothing more.
    let before = server.pushes().len();
    dev.pass_with(&server, &manual_large_batches())
        .await
        .unwrap();
    assert_eq!(server.pushes().len(), before);
}

#[tokio::test]
async fn a_batch_refused_as_too_large_is_split_and_only_the_oversized_change_is_set_aside() {
    one_bad_mutation_is_isolated(|r, _| r.push_bytes = Some(4_000), "payload_too_large").await;
}

#[tokio::test]
async fn a_batch_the_server_cannot_parse_is_split_and_only_the_unparseable_change_is_set_aside() {
    one_bad_mutation_is_isolated(
        |r, bad| {
            r.unparseable.insert(bad);
        },
        "invalid_body",
    )
    .await;
}

#[tokio::test]
async fn a_push_answer_that_never_matches_is_split_and_only_that_change_is_set_aside() {
    one_bad_mutation_is_isolated(
        |r, bad| {
            r.garbled.insert(bad);
        },
        "unknown",
    )
    .await;
}

/// Where the store keeps an attachment's file (`attachments/<2 hex>/<keyed name>`).
fn attachment_file(dev: &Device, hash: &str) -> std::path::PathBuf {
    let name = dev.store.private_file_name(hash);
    let path = dev
        .dir
        .path()
        .join("attachments")
        .join(&name[..2])
        .join(&name);
    assert!(path.exists(), "{}", path.display());
    path
}

fn evidence_of(store: &Store, id: &str) -> Vec<String> {
    let rows = store.outbox().unwrap();
    let row = rows.iter().find(|r| r.entity_id == id).unwrap();
    store
        .attachments_to_upload(std::slice::from_ref(row))
        .unwrap()
}

#[tokio::test]
async fn a_missing_or_damaged_attachment_file_sets_aside_only_its_own_completion() {
    let server = FakeServer::with_orders(4);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    for id in &ids[..3] {
        complete_with_evidence(&mut dev.store, id).unwrap();
    }
    add_note(&mut dev.store, &ids[3], "plain edit").unwrap();
    // The photo of the first completion is gone; the second's is damaged.
    let gone = evidence_of(&dev.store, &ids[0]);
    std::fs::remove_file(attachment_file(&dev, &gone[1])).unwrap();
    let damaged = evidence_of(&dev.store, &ids[1]);
    std::fs::write(attachment_file(&dev, &damaged[1]), b"not what was saved").unwrap();

    let report = dev.pass(&server, true).await;
    dev.pass(&server, true).await.unwrap();

    let status = |i: usize| server.lock().orders[&uuid(&ids[i])].status;
    assert_eq!(
        status(2),
        Status::Completed,
        "the sound completion went ({report:?})"
    );
    assert_eq!(server.notes(&ids[3], "plain edit"), 1, "so did the edit");
    assert_ne!(status(0), Status::Completed);
    assert_ne!(status(1), Status::Completed);
    let failed = dev.store.failed_syncs().unwrap();
    assert_eq!(failed.len(), 2, "{failed:?}");
    for f in &failed {
        assert!(
            f.message.contains("photo") || f.message.contains("attachment"),
            "the reason names the file: {}",
            f.message
        );
    }
    assert_eq!(dev.store.sync_counts().unwrap().pending, 0);
}

#[tokio::test]
async fn a_completion_set_aside_holds_back_only_what_its_order_queued_after_it() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    add_note(&mut dev.store, &a, "before").unwrap();
    complete_with_evidence(&mut dev.store, &a).unwrap();
    let rows = dev.store.outbox().unwrap();
    let completion = rows.iter().find(|r| r.kind == "complete").unwrap();
    let gone = dev
        .store
        .attachments_to_upload(std::slice::from_ref(completion))
        .unwrap();
    std::fs::remove_file(attachment_file(&dev, &gone[1])).unwrap();
    // A note after the completion cannot fold into it (another kind): its own row.
    add_note(&mut dev.store, &a, "after").unwrap();
    assert_eq!(dev.store.outbox().unwrap().len(), 3);

    dev.pass(&server, true).await.unwrap();
    assert_eq!(
        server.notes(&a, "before"),
        1,
        "queued before the completion: sent"
    );
    assert_eq!(
        server.notes(&a, "after"),
        0,
        "queued after it: waits behind it"
    );
    let failed = dev.store.failed_syncs().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].kind, "complete");
    assert_eq!(dev.store.sync_counts().unwrap().pending, 1);
    // Still waiting after another pass: the order's sequence is kept.
    dev.pass(&server, true).await.unwrap();
    assert_eq!(server.notes(&a, "after"), 0);
}

#[tokio::test]
async fn the_pull_still_runs_when_the_push_fails() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    add_note(&mut dev.store, &ids[0], "waits").unwrap();
    server.reassign(&ids[1], "tech2");
    server.fail_push(0, PushFault::Unavailable);

    let err = dev.pass(&server, false).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Server { status: 503, .. }),
        "{err}"
    );
    assert!(
        matches!(dev.store.order(&ids[1]), Err(StoreError::OrderNotFound(_))),
        "the reassignment arrived although the push failed"
    );
    assert_eq!(
        dev.store.outbox().unwrap().len(),
        1,
        "the edit waits for its retry"
    );
}

#[tokio::test]
async fn an_upload_refused_as_too_large_is_retried_in_smaller_requests() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let ids = server.order_ids();
    complete_with_evidence(&mut dev.store, &ids[0]).unwrap();
    // Small photos that go in batched uploads, three in one request by default.
    let order = dev.store.order(&ids[1]).unwrap().order;
    let now = Utc::now();
    let mut ops = Vec::new();
    for i in 0..3u8 {
        let bytes = vec![i; 20_000];
        let meta = dev.store.put_attachment(&bytes, "image/jpeg", now).unwrap();
        ops.push(Op::Add(ListItem::Photos(PhotoRef {
            hash: meta.hash,
            caption: format!("{i}.jpg"),
            media_type: "image/jpeg".into(),
        })));
    }
    let sig = dev.store.put_attachment(b"sig", "image/png", now).unwrap();
    ops.push(Op::Set(SetOp::Signature(Some(Signature {
        hash: sig.hash,
        signer: "Customer".into(),
    }))));
    dev.store
        .record(
            Mutation {
                mutation_id: Uuid::now_v7(),
                device_id: Uuid::nil(),
                entity: EntityKind::WorkOrder,
                entity_id: order.id,
                kind: MutationKind::Complete,
                base_version: order.version,
                format: FORMAT_VERSION,
                device_time: now,
                ops,
                base_epoch: None,
                reason: None,
                seen: Vec::new(),
            },
            now,
        )
        .unwrap();
    // A reverse proxy in front of the server takes at most 40 kB per request.
    server.lock().refusals.upload_bytes = Some(40_000);

    dev.pass(&server, true).await.unwrap();
    for id in &ids {
        assert_eq!(
            server.lock().orders[&uuid(id)].status,
            Status::Completed,
            "{id}"
        );
    }
    assert_eq!(server.lock().uploaded.len(), 1 + 1 + 3 + 1);
    assert!(dev.store.outbox().unwrap().is_empty());
    assert!(
        server.lock().upload_requests < 30,
        "the sizes shrink by halves, not byte by byte"
    );
}

#[tokio::test]
async fn a_clock_set_back_delays_a_deferred_change_by_at_most_the_longest_retry_delay() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    add_note(&mut dev.store, &a, "after the clock change").unwrap();
    server.fail_push(0, PushFault::Unavailable);
    dev.pass(&server, false).await.unwrap_err();

    // The computer's clock is set back by an hour (a time zone fixed by hand).
    dev.now -= Duration::hours(1);
    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(report.pushed, 0, "still within its retry delay");
    let longest = PassOptions::default().retry_delay_ms_max as i64;
    dev.now += Duration::milliseconds(longest + 1_000);
    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(
        report.acknowledged, 1,
        "retried no later than the longest retry delay after the clock went back"
    );
    assert_eq!(server.notes(&a, "after the clock change"), 1);
}

// Issue 25 item 3: the window re-reads what it shows only when a pass changed local
// data; an idle pass must not say it did.

#[tokio::test]
async fn a_pass_that_changes_nothing_does_not_signal_a_change_and_one_that_pulls_a_row_does() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let quiet = dev.pass(&server, false).await.unwrap();
    assert!(
        !quiet.changed_local_data(),
        "an idle pass said it changed local data: {quiet:?}"
    );

    let a = server.order_ids()[0].clone();
    server.retitle(&a, "Boiler, second visit");
    let pulled = dev.pass(&server, false).await.unwrap();
    assert_eq!(pulled.pulled_rows, 1, "{pulled:?}");
    assert!(pulled.changed_local_data(), "{pulled:?}");
    assert!(!dev.pass(&server, false).await.unwrap().changed_local_data());
}

#[tokio::test]
async fn a_pass_whose_push_is_acknowledged_signals_a_change() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    let a = server.order_ids()[0].clone();
    add_note(&mut dev.store, &a, "parts ordered").unwrap();
    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(report.acknowledged, 1, "{report:?}");
    assert!(report.changed_local_data(), "{report:?}");
}

/// Files nothing needs any more are deleted by a pass at most once an hour: finding
/// them reads every order's body (on a device with thousands of orders, most of an
/// idle pass's work), and a file kept an hour longer costs only its disk space.
#[tokio::test]
async fn a_pass_deletes_the_files_nothing_needs_at_most_once_an_hour() {
    let server = FakeServer::with_orders(1);
    let mut dev = Device::primed(&server).await;
    let orphan = dev
        .store
        .put_attachment(b"nobody needs this", "image/png", dev.now)
        .unwrap();
    dev.store.mark_uploaded(&orphan.hash).unwrap();

    dev.pass(&server, false).await.unwrap();
    assert!(
        dev.store.attachment(&orphan.hash).is_ok(),
        "kept: the priming pass looked less than an hour ago"
    );
    dev.now += Duration::minutes(61);
    dev.pass(&server, false).await.unwrap();
    assert!(
        dev.store.attachment(&orphan.hash).is_err(),
        "deleted by the first pass an hour later"
    );

    // A clock set back does not put the next look off.
    let kept = dev
        .store
        .put_attachment(b"nobody needs this either", "image/png", dev.now)
        .unwrap();
    dev.store.mark_uploaded(&kept.hash).unwrap();
    dev.now -= Duration::days(1);
    dev.pass(&server, false).await.unwrap();
    assert!(
        dev.store.attachment(&kept.hash).is_err(),
        "deleted: the last look is in this clock's future"
    );
}

#[tokio::test]
async fn a_pass_that_brings_a_new_manual_signals_a_change_for_the_documents_panel() {
    let server = FakeServer::with_orders(2);
    let mut dev = Device::primed(&server).await;
    assert!(!dev.pass(&server, false).await.unwrap().changed_local_data());

    let a = server.order_ids()[0].clone();
    server.attach_manual(&a, b"turn the valve left");
    let report = dev.pass(&server, false).await.unwrap();
    assert_eq!(report.pulled_rows, 0, "no order row moved: {report:?}");
    assert!(
        report.changed_local_data(),
        "the manual arrived but the pass said nothing changed: {report:?}"
    );
    assert!(dev.store.order_documents(&a).unwrap()[0].available_offline);
    assert!(!dev.pass(&server, false).await.unwrap().changed_local_data());
}
