//! Push: apply a batch of mutations, one result each, in one write transaction.
//!
//! Per mutation: the idempotency record is looked up first (same body → the recorded
//! first result as `duplicate`; another body → `mutation_id_reused`); then the merge
//! rules in `outpost_protocol::merge` decide; then the effect (order row, history,
//! change-log rows, stock deltas, conflict or failed-sync record) and the idempotency
//! record are written in the same transaction. `missing_attachments` writes nothing,
//! so the retry after the upload is a first attempt. Stock moves by deltas added to the
//! current quantity under the write lock: commutative, never last-write-wins.
//!
//! Within one push, once a mutation of an order is refused, held whole or waits for its
//! attachments, the order's later mutations are not looked at: they come back
//! `held_behind` it (protocol 1 clients, which do not know that outcome, get
//! `missing_attachments` with no hashes: likewise not acknowledged, sent again) and
//! nothing is written for them. A reused mutation id with another body is refused and
//! kept as a failed sync with the body that was refused. Every change written keeps the
//! device's time beside the server's receive time.

use outpost_protocol::merge::{self, Actor, Base, Current, Decision, Resolvable, ResolveDecision};
use outpost_protocol::mutation::EntityKind;
use outpost_protocol::wire::{
    Applied, AppliedWithConflicts, ConflictField, ConflictKind, ConflictRecord, ErrorCode,
    FailedSyncRecord, LogRange, PushOutcome, RecordStatus, Rejection,
};
use outpost_protocol::{compat, Mutation, MutationKind, Status, WorkOrder};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use crate::auth::{sha256_hex, Principal};
use crate::db::Sql;
use crate::error::Error;
use crate::repo::{self, Audience, ChangeLog, NewChange};
use crate::row_cache::{CachedRow, RowCache};

/// Counts for metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct PushStats {
    pub applied: u64,
    pub conflicts: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub missing: u64,
    pub held: u64,
}

struct Ctx<'a> {
    who: &'a Principal,
    /// The protocol the client announced (what may be sent to it).
    protocol: u32,
    /// The server's epoch (a mutation's `base_epoch` is compared with it).
    epoch: String,
    now: chrono::DateTime<chrono::Utc>,
    now_us: i64,
    cache: &'a RowCache,
    /// The most bytes of open failed-sync records kept for one person.
    failed_sync_budget: u64,
    /// Order rows this batch wrote (for the cache once the batch has committed).
    written: RefCell<HashMap<Uuid, Arc<CachedRow>>>,
    /// Items whose stock this batch moved, written once at its end.
    stock: RefCell<StockMoves>,
}

/// One mutation's result, encoded once: the outcome's JSON without the order row (which
/// is also what the idempotency record keeps) and, apart, the row's JSON as stored.
/// [`encode_response`] splices them into the wire `MutationResult`, so a row is encoded
/// once per push (for the store, the log and the reply alike).
#[derive(Debug, Clone)]
pub struct Encoded {
    pub mutation_id: Uuid,
    pub outcome_json: String,
    pub row_json: Option<String>,
}

/// What a batch did: one encoded result per mutation, counts, and the order rows it
/// wrote, for [`RowCache::insert_committed`] once the transaction has committed.
#[derive(Debug)]
pub struct BatchResult {
    pub results: Vec<Encoded>,
    pub stats: PushStats,
    pub written: Vec<Arc<CachedRow>>,
    /// The change-log sequences the batch wrote, first and last, and the epoch
    /// (the answer's `written`).
    pub log_range: Option<LogRange>,
}

/// Apply `mutations` in order for a client of `protocol`. Runs inside the caller's
/// write transaction; `cache` holds parsed rows of earlier, committed pushes (each
/// checked against the store before use).
pub fn push_batch(
    sql: &mut dyn Sql,
    who: &Principal,
    protocol: u32,
    mutations: &[Mutation],
    now: chrono::DateTime<chrono::Utc>,
    cache: &RowCache,
    failed_sync_budget: u64,
) -> Result<BatchResult, Error> {
    let ctx = Ctx {
        who,
        protocol,
        epoch: repo::epoch(sql)?,
        now,
        now_us: now.timestamp_micros(),
        cache,
        failed_sync_budget,
        written: RefCell::new(HashMap::new()),
        stock: RefCell::new(StockMoves::default()),
    };
    let mut stats = PushStats::default();
    let mut results = Vec::with_capacity(mutations.len());
    // Orders whose later mutations in this push wait, and the mutation they wait behind.
    let mut blocked: HashMap<Uuid, Uuid> = HashMap::new();
    // One change-log sequence range for the whole batch.
    let range = repo::with_change_log(sql, |sql, log| {
        for m in mutations {
            let on_order = m.entity == EntityKind::WorkOrder;
            let (outcome, outcome_json, row_json) =
                match blocked.get(&m.entity_id).filter(|_| on_order) {
                    Some(&behind) => {
                        let outcome = held_behind(ctx.protocol, behind);
                        let json = serde_json::to_string(&outcome)?;
                        (outcome, json, None)
                    }
                    None => push_one(sql, log, &ctx, m)?,
                };
            crate::crash_point!("server:after-mutation");
            if on_order && blocks_later(&outcome) {
                blocked.entry(m.entity_id).or_insert(m.mutation_id);
            }
            match &outcome {
                PushOutcome::Applied(_) => stats.applied += 1,
                PushOutcome::AppliedWithConflicts(_) => stats.conflicts += 1,
                PushOutcome::Duplicate { .. } => stats.duplicates += 1,
                PushOutcome::Rejected(_) => stats.rejected += 1,
                PushOutcome::MissingAttachments { .. } => stats.missing += 1,
                PushOutcome::HeldBehind { .. } => stats.held += 1,
            }
            results.push(Encoded {
                mutation_id: m.mutation_id,
                outcome_json,
                row_json,
            });
        }
        ctx.stock.take().write(sql, log, ctx.now_us)?;
        Ok(log.range())
    })?;
    // Everything written, the transaction not yet committed (the caller commits).
    crate::crash_point!("server:before-commit");
    let log_range = range.map(|(first, last)| LogRange {
        epoch: ctx.epoch.clone(),
        first,
        last,
    });
    Ok(BatchResult {
        results,
        stats,
        written: ctx.written.into_inner().into_values().collect(),
        log_range,
    })
}

/// The answer for a mutation held behind an earlier one of its order, in a shape the
/// client's protocol knows: `held_behind`, or for protocol 1 `missing_attachments`
/// with no hashes (the one outcome such a client leaves queued and sends again).
fn held_behind(protocol: u32, behind: Uuid) -> PushOutcome {
    if protocol >= compat::since::HELD_BEHIND {
        PushOutcome::HeldBehind { behind }
    } else {
        PushOutcome::MissingAttachments { hashes: Vec::new() }
    }
}

/// Whether the order's later mutations in the same push must wait behind this outcome:
/// a refusal, a whole hold, or a wait for attachments (also seen through `duplicate`).
/// Field-level conflicts hold nothing back.
fn blocks_later(outcome: &PushOutcome) -> bool {
    match outcome.first() {
        PushOutcome::Rejected(_)
        | PushOutcome::MissingAttachments { .. }
        | PushOutcome::HeldBehind { .. } => true,
        PushOutcome::AppliedWithConflicts(c) => c.conflict_kind.holds_whole_mutation(),
        PushOutcome::Applied(_) | PushOutcome::Duplicate { .. } => false,
    }
}

/// The JSON of a `PushResponse` built from encoded results: each outcome object gets
/// its `order` member from the stored row's JSON, unchanged; `written` is the log
/// range the batch wrote, if any.
pub fn encode_response(
    results: &[Encoded],
    server_time: chrono::DateTime<chrono::Utc>,
    written: Option<&LogRange>,
) -> Result<Vec<u8>, Error> {
    let size: usize = results
        .iter()
        .map(|r| r.outcome_json.len() + r.row_json.as_ref().map_or(0, String::len) + 80)
        .sum();
    let mut out = Vec::with_capacity(size + 64);
    out.extend_from_slice(b"{\"results\":[");
    for (i, r) in results.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"mutation_id\":");
        serde_json::to_writer(&mut out, &r.mutation_id)?;
        out.extend_from_slice(b",\"outcome\":");
        match &r.row_json {
            Some(row) => {
                // An outcome is a JSON object with at least its `result` tag, so the
                // row goes in as one more member before its closing brace.
                let body = r
                    .outcome_json
                    .strip_suffix('}')
                    .ok_or_else(|| Error::store("an encoded outcome is not an object"))?;
                out.extend_from_slice(body.as_bytes());
                out.extend_from_slice(b",\"order\":");
                out.extend_from_slice(row.as_bytes());
                out.push(b'}');
            }
            None => out.extend_from_slice(r.outcome_json.as_bytes()),
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"server_time\":");
    serde_json::to_writer(&mut out, &server_time)?;
    if let Some(range) = written {
        out.extend_from_slice(b",\"written\":");
        serde_json::to_writer(&mut out, range)?;
    }
    out.push(b'}');
    Ok(out)
}

/// One mutation: its outcome (with the order row taken out when its stored JSON is in
/// the third member), the outcome's JSON, and the row's JSON.
fn push_one(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    ctx: &Ctx<'_>,
    m: &Mutation,
) -> Result<(PushOutcome, String, Option<String>), Error> {
    let body = m.to_body()?;
    let hash = sha256_hex(&body);
    let who = ctx.who;
    if let Some((stored_hash, result)) =
        repo::get_idempotency(sql, &who.username, who.device_id, m.mutation_id)?
    {
        let outcome = if stored_hash == hash {
            let first: PushOutcome = serde_json::from_str(&result)?;
            PushOutcome::Duplicate {
                first: Box::new(first),
            }
        } else {
            // Kept for a person with the body that was refused; the idempotency record
            // stays the first body's.
            let mut r = Rejection {
                code: ErrorCode::MutationIdReused,
                message: "this mutation id was already used for a different change; the app must make a new id"
                    .into(),
                field_errors: Vec::new(),
                failed_sync_id: None,
                resolution: None,
            };
            record_failed_sync(sql, log, ctx, m, &mut r)?;
            PushOutcome::Rejected(r)
        };
        let json = serde_json::to_string(&outcome)?;
        return Ok((outcome, json, None));
    }
    // A technician refers to someone else's stored file only once they sent its bytes or
    // may read it already: naming a hash grants nothing (issue 19 item 4). An honest
    // device has the bytes and uploads them. A file not stored yet may be referred to
    // (deferred photo uploads); the reference is claimed by its maker, who reads the
    // file only once they send its bytes.
    if !who.is_staff() {
        let hashes = completion_hashes(m, None);
        if !hashes.is_empty() {
            let unreadable = crate::attachments::unreadable(sql, who, &hashes)?;
            if !unreadable.is_empty() {
                let outcome = PushOutcome::MissingAttachments { hashes: unreadable };
                let json = serde_json::to_string(&outcome)?;
                return Ok((outcome, json, None));
            }
            crate::attachments::claim_unstored(sql, who, &hashes)?;
        }
    }
    let (outcome, row_json) = match m.entity {
        EntityKind::WorkOrder => push_order(sql, log, ctx, m)?,
        EntityKind::Conflict | EntityKind::FailedSync => (push_resolve(sql, log, ctx, m)?, None),
    };
    let mut outcome = match outcome {
        PushOutcome::MissingAttachments { .. } => {
            let json = serde_json::to_string(&outcome)?;
            return Ok((outcome, json, None));
        }
        PushOutcome::Rejected(mut r) if r.code != ErrorCode::AlreadyResolved => {
            record_failed_sync(sql, log, ctx, m, &mut r)?;
            PushOutcome::Rejected(r)
        }
        other => other,
    };
    // The record keeps the outcome without the order row (the row is in the log and
    // the orders table; a duplicate needs the version and number, not a stale copy).
    let row = match &mut outcome {
        PushOutcome::Applied(a) => a.order.take(),
        PushOutcome::AppliedWithConflicts(a) => a.order.take(),
        _ => None,
    };
    let result = serde_json::to_string(&outcome)?;
    repo::put_idempotency(
        sql,
        &who.username,
        who.device_id,
        m.mutation_id,
        &hash,
        &result,
        ctx.now_us,
        m.device_time.timestamp_micros(),
    )?;
    // The row's JSON: as stored when the push wrote or read it, else encoded now.
    let row_json = match (row_json, row) {
        (Some(json), _) => Some(json),
        (None, Some(order)) => Some(serde_json::to_string(&order)?),
        (None, None) => None,
    };
    Ok((outcome, result, row_json))
}

fn actor(who: &Principal) -> Actor {
    Actor {
        username: who.username.clone(),
        role: who.role,
        device_id: who.device_id,
    }
}

fn rejected(r: merge::MergeRejected) -> PushOutcome {
    PushOutcome::Rejected(Rejection {
        code: r.code,
        message: r.message,
        field_errors: r.field_errors,
        failed_sync_id: None,
        resolution: None,
    })
}

/// The attachments a completion names (ops and the resulting row).
fn completion_hashes(m: &Mutation, order: Option<&WorkOrder>) -> Vec<String> {
    let mut probe = WorkOrder::blank(m.entity_id);
    let _ = outpost_protocol::apply_ops(&mut probe, &m.ops);
    let mut hashes = probe.attachment_hashes();
    if let Some(o) = order {
        hashes.extend(o.attachment_hashes());
    }
    hashes.sort();
    hashes.dedup();
    hashes
}

/// A work-order mutation: its outcome and, when the outcome carries the order, the
/// row's stored JSON (the order member of the outcome is then redundant).
fn push_order(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    ctx: &Ctx<'_>,
    m: &Mutation,
) -> Result<(PushOutcome, Option<String>), Error> {
    let current = current_row(sql, ctx, m.entity_id)?;
    let current_json = current.as_ref().map(|r| r.json.clone());
    let actor = actor(ctx.who);
    let same_epoch = m.base_epoch.as_deref().is_none_or(|e| e == ctx.epoch);
    let base = current.as_ref().map_or(Base::Known(0), |r| {
        merge::base_of(&r.order, &r.stamps, m, same_epoch)
    });
    // The row at the base is read only when the merge rules may need it; the order's
    // whole history only for an unknown base pushed by a technician it is not assigned
    // to now.
    let (at_base, ever_assigned) = match (&current, base) {
        (Some(r), Base::Known(v)) if merge::needs_base(&r.order, &r.stamps, m, &actor, base) => {
            (repo::order_at(sql, &r.order, v)?, false)
        }
        (Some(r), Base::Unknown) if merge::not_theirs(&r.order, &actor) => (
            None,
            repo::ever_assigned_to(sql, &r.order, &actor.username)?,
        ),
        _ => (None, false),
    };
    let decision = merge::merge(
        current.as_ref().map(|r| Current {
            order: &r.order,
            stamps: &r.stamps,
            base,
            at_base: at_base.as_ref(),
            ever_assigned,
        }),
        m,
        &actor,
    );
    match decision {
        Decision::Reject(r) => Ok((rejected(r), None)),
        Decision::HoldWhole { kind, fields } => {
            let Some(CachedRow { order, .. }) = current.as_deref() else {
                return Err(Error::store("a held mutation without an order"));
            };
            if m.kind == MutationKind::Complete {
                let missing = repo::missing_attachments(sql, &completion_hashes(m, None))?;
                if !missing.is_empty() {
                    return Ok((PushOutcome::MissingAttachments { hashes: missing }, None));
                }
            }
            if let Some(full) = conflict_full(sql, ctx, order.id, m)? {
                return Ok((full, None));
            }
            let conflict_id = open_conflict(sql, log, ctx, m, order, kind, fields.clone())?;
            let outcome = PushOutcome::AppliedWithConflicts(AppliedWithConflicts {
                entity_id: m.entity_id,
                version: order.version,
                number: order.number,
                conflict_id,
                fields: fields.into_iter().map(|f| f.field).collect(),
                conflict_kind: kind,
                order: None,
            });
            // The order as it is now goes back only to whom it is assigned (or staff):
            // a former assignee pushing on an old base learns nothing new from it.
            let row = if merge::not_theirs(order, &actor) {
                None
            } else {
                current_json
            };
            Ok((outcome, row))
        }
        Decision::Apply(a) => {
            let mut a = *a;
            if m.kind == MutationKind::Complete {
                let missing =
                    repo::missing_attachments(sql, &completion_hashes(m, Some(&a.order)))?;
                if !missing.is_empty() {
                    return Ok((PushOutcome::MissingAttachments { hashes: missing }, None));
                }
            }
            for d in &a.stock {
                if !repo::item_exists(sql, &d.sku)? {
                    let line = a
                        .order
                        .parts_used
                        .iter()
                        .find(|p| p.sku == d.sku)
                        .map(|p| p.id.to_string())
                        .unwrap_or_default();
                    return Ok((
                        rejected(merge::MergeRejected {
                            code: ErrorCode::UnknownSku,
                            message: format!("no inventory item has the SKU {:?}", d.sku),
                            field_errors: vec![outpost_protocol::FieldError {
                                field: format!("parts_used.{line}.sku"),
                                code: "unknown_sku".into(),
                                message: format!("no inventory item has the SKU {:?}", d.sku),
                            }],
                        }),
                        None,
                    ));
                }
            }
            if !a.conflicts.is_empty() {
                if let Some(full) = conflict_full(sql, ctx, m.entity_id, m)? {
                    return Ok((full, None));
                }
            }
            let mut row_json = current_json;
            if a.changed {
                if a.created {
                    a.order.number = Some(repo::next_number(sql)?);
                }
                row_json = Some(write_order(
                    sql,
                    log,
                    ctx.now_us,
                    &a.order,
                    &a.stamps,
                    current.as_ref().map(|r| &r.order),
                    &[m.mutation_id],
                    Some(m.device_time.timestamp_micros()),
                )?);
                let location_hint = a.order.assignee.clone();
                for d in &a.stock {
                    adjust_stock(
                        sql,
                        ctx,
                        &d.sku,
                        d.delta_milli,
                        location_hint.as_deref(),
                        a.order.id,
                        m,
                    )?;
                }
            }
            let outcome = if a.conflicts.is_empty() {
                PushOutcome::Applied(Applied {
                    entity: EntityKind::WorkOrder,
                    entity_id: m.entity_id,
                    version: a.order.version,
                    number: a.order.number,
                    changed: a.changed,
                    order: None,
                })
            } else {
                let conflict_id = open_conflict(
                    sql,
                    log,
                    ctx,
                    m,
                    &a.order,
                    ConflictKind::Fields,
                    a.conflicts.clone(),
                )?;
                PushOutcome::AppliedWithConflicts(AppliedWithConflicts {
                    entity_id: m.entity_id,
                    version: a.order.version,
                    number: a.order.number,
                    conflict_id,
                    fields: a.conflicts.into_iter().map(|f| f.field).collect(),
                    conflict_kind: ConflictKind::Fields,
                    order: None,
                })
            };
            // Not reachable without a row (an applied mutation has one), but never a
            // reply without the order.
            let json = match row_json {
                Some(json) => json,
                None => serde_json::to_string(&a.order)?,
            };
            if a.changed {
                ctx.written.borrow_mut().insert(
                    m.entity_id,
                    Arc::new(CachedRow {
                        version: a.order.version,
                        updated_us: ctx.now_us,
                        order: a.order,
                        stamps: a.stamps,
                        json: json.clone(),
                    }),
                );
            }
            Ok((outcome, Some(json)))
        }
    }
}

/// The order's current row: a parsed row from this batch or from the cache when the
/// store's `version` and `updated_us` say it is still the row, else read and parsed.
fn current_row(
    sql: &mut dyn Sql,
    ctx: &Ctx<'_>,
    id: Uuid,
) -> Result<Option<Arc<CachedRow>>, Error> {
    let known = ctx
        .written
        .borrow()
        .get(&id)
        .cloned()
        .or_else(|| ctx.cache.get(id));
    let (version, updated_us) = known
        .as_ref()
        .map_or((-1, -1), |r| (r.version as i64, r.updated_us));
    let Some(row) = repo::get_order_unless(sql, id, version, updated_us)? else {
        return Ok(None);
    };
    match row {
        repo::OrderRow::Unchanged => Ok(known),
        repo::OrderRow::Read {
            order,
            stamps,
            json,
            updated_us,
        } => Ok(Some(Arc::new(CachedRow {
            version: order.version,
            updated_us,
            order: *order,
            stamps,
            json,
        }))),
    }
}

/// Write an order's new row (replacing `previous`, the row as it was) with its history
/// and change-log rows (and a `left_scope` row for a technician it was taken from);
/// returns the row's JSON. `device_us`: the device's time of the mutation that made
/// the change, if one did.
#[allow(clippy::too_many_arguments)]
pub fn write_order(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    now_us: i64,
    order: &WorkOrder,
    stamps: &merge::FieldStamps,
    previous: Option<&WorkOrder>,
    mutation_ids: &[Uuid],
    device_us: Option<i64>,
) -> Result<String, Error> {
    let body = repo::put_order(sql, order, stamps, previous, now_us)?;
    let id = order.id.to_string();
    if let Some(old) = previous.and_then(|p| p.assignee.as_deref()) {
        if Some(old) != order.assignee.as_deref() {
            let left = serde_json::to_string(&outpost_protocol::wire::LeftScope {
                now_assigned_to: order.assignee.clone(),
            })?;
            log.append(
                sql,
                NewChange {
                    entity: "work_order",
                    entity_id: &id,
                    version: order.version,
                    body: repo::change_body("left_scope", &left),
                    mutation_ids,
                    audience: Audience::User,
                    scope_user: Some(old),
                    scope_user2: None,
                    device_us,
                },
                now_us,
            )?;
        }
    }
    log.append(
        sql,
        NewChange {
            entity: "work_order",
            entity_id: &id,
            version: order.version,
            body: repo::change_body("work_order", &body),
            mutation_ids,
            audience: Audience::Scoped,
            scope_user: order.assignee.as_deref(),
            scope_user2: None,
            device_us,
        },
        now_us,
    )?;
    Ok(body)
}

/// Add `delta_milli` to an item's stock where `outpost_protocol::stock` puts it (the
/// technician's van when it stocks the item, else the warehouse): the rule the
/// dispatcher's desk previews with. Below zero is allowed and flagged for dispatchers.
/// The move is kept in the stock ledger (`inventory.rs`) at once; the item's row, its
/// alerts (and the log's warning when a place is below zero) and its change-log row are
/// written once per push ([`StockMoves::write`]).
#[allow(clippy::too_many_arguments)]
fn adjust_stock(
    sql: &mut dyn Sql,
    ctx: &Ctx<'_>,
    sku: &str,
    delta_milli: i64,
    assignee: Option<&str>,
    order_id: Uuid,
    m: &Mutation,
) -> Result<(), Error> {
    let mut stock = ctx.stock.borrow_mut();
    let Some(moved) = stock.item(sql, sku)? else {
        return Ok(());
    };
    let device_us = m.device_time.timestamp_micros();
    let step = outpost_protocol::stock::apply_delta(&mut moved.item, delta_milli, assignee);
    let location = step.location;
    if !moved.mutation_ids.contains(&m.mutation_id) {
        moved.mutation_ids.push(m.mutation_id);
    }
    moved.device_us = Some(device_us);
    if !moved.locations.contains(&location) {
        moved.locations.push(location.clone());
    }
    crate::inventory::record_move(
        sql,
        &crate::inventory::NewMove {
            sku,
            location: &location,
            delta_milli,
            kind: crate::inventory::MoveKind::Part,
            order_id: Some(order_id),
            technician: assignee,
            mutation_id: Some(m.mutation_id),
            device_us: Some(device_us),
        },
        ctx.now_us,
    )?;
    Ok(())
}

/// The items one push moved stock of, each read once and written once when the push's
/// mutations are done: a day's completions often use the same few parts, and each
/// move wrote the whole item, its change-log row (the item's whole body, again) and its
/// alert (a reconnect of 1,000 orders using one part wrote that item 1,000 times; each
/// device then pulls one version of it, not hundreds). The stock ledger still keeps
/// every move, and each change row names every mutation that moved its item.
#[derive(Default)]
struct StockMoves {
    items: Vec<MovedItem>,
    at: HashMap<String, usize>,
}

struct MovedItem {
    item: outpost_protocol::InventoryItem,
    /// The version read; the row is written as the next one.
    version: u64,
    mutation_ids: Vec<Uuid>,
    /// The device time of the last mutation that moved it.
    device_us: Option<i64>,
    /// The locations whose quantity moved (their alerts are set again).
    locations: Vec<String>,
}

impl StockMoves {
    /// The item as this push has it so far (`None`: no such item).
    fn item(&mut self, sql: &mut dyn Sql, sku: &str) -> Result<Option<&mut MovedItem>, Error> {
        if let Some(&i) = self.at.get(sku) {
            return Ok(self.items.get_mut(i));
        }
        let Some((item, version)) = repo::get_item(sql, sku)? else {
            return Ok(None);
        };
        self.at.insert(sku.to_owned(), self.items.len());
        self.items.push(MovedItem {
            item,
            version,
            mutation_ids: Vec::new(),
            device_us: None,
            locations: Vec::new(),
        });
        Ok(self.items.last_mut())
    }

    /// Write each moved item once: its row, the alerts of the locations that moved,
    /// and one change-log row naming the mutations that moved it.
    fn write(self, sql: &mut dyn Sql, log: &mut ChangeLog, now_us: i64) -> Result<(), Error> {
        for moved in self.items {
            let sku = moved.item.sku.as_str();
            for location in &moved.locations {
                let quantity = moved
                    .item
                    .stock
                    .iter()
                    .find(|level| level.location == *location)
                    .map_or(0, |level| level.quantity.0);
                if quantity < 0 {
                    // Once per item and place per push, not per move (a day's
                    // completions from one bin logged a line each).
                    tracing::warn!(sku, location = %location, quantity_milli = quantity, "stock below zero");
                }
                repo::set_stock_alert(sql, sku, location, &moved.item.name, quantity)?;
            }
            let version = moved.version + 1;
            let body = repo::put_item(sql, &moved.item, version)?;
            log.append(
                sql,
                NewChange {
                    entity: "inventory_item",
                    entity_id: sku,
                    version,
                    body: repo::change_body("inventory_item", &body),
                    mutation_ids: &moved.mutation_ids,
                    audience: Audience::All,
                    scope_user: None,
                    scope_user2: None,
                    device_us: moved.device_us,
                },
                now_us,
            )?;
        }
        Ok(())
    }
}

/// The refusal for `m` when the device's open conflict on the order cannot take it: its
/// held mutation would grow past the ops one mutation may carry (a client pushing on an
/// old base again and again must not grow one record without end). The person is told
/// to have the conflict settled first; nothing is written for `m` but its failed sync.
fn conflict_full(
    sql: &mut dyn Sql,
    ctx: &Ctx<'_>,
    order_id: Uuid,
    m: &Mutation,
) -> Result<Option<PushOutcome>, Error> {
    let Some(open) = repo::open_conflict_of(sql, order_id, &ctx.who.username, ctx.who.device_id)?
    else {
        return Ok(None);
    };
    if open.mutation.op_count() + m.op_count() <= outpost_protocol::limits::OPS_PER_MUTATION_MAX {
        return Ok(None);
    }
    let message = "too many changes of this order wait in its open conflict; ask a dispatcher to settle it, then make the change again";
    Ok(Some(rejected(merge::MergeRejected {
        code: ErrorCode::ValidationFailed,
        message: message.into(),
        field_errors: vec![outpost_protocol::FieldError {
            field: "ops".into(),
            code: "too_many".into(),
            message: message.into(),
        }],
    })))
}

fn open_conflict(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    ctx: &Ctx<'_>,
    m: &Mutation,
    order: &WorkOrder,
    kind: ConflictKind,
    fields: Vec<ConflictField>,
) -> Result<Uuid, Error> {
    let mut fields = fields;
    repo::stamp_conflict_fields(sql, order.id, &mut fields)?;
    let held_by = repo::held_by(sql, order.id, kind)?;
    // One open conflict per device and order: a later hold is absorbed into it.
    if let Some(mut open) =
        repo::open_conflict_of(sql, order.id, &ctx.who.username, ctx.who.device_id)?
    {
        open.absorb(m, kind, fields);
        if held_by.is_some() {
            open.held_by = held_by;
        }
        write_conflict(sql, log, ctx, &open, m)?;
        return Ok(open.id);
    }
    let record = ConflictRecord {
        id: Uuid::now_v7(),
        version: 1,
        status: RecordStatus::Open,
        kind,
        order_id: order.id,
        order_number: order.number,
        assignee: order.assignee.clone(),
        username: ctx.who.username.clone(),
        device_id: ctx.who.device_id,
        created_at: ctx.now,
        device_time: Some(m.device_time),
        fields,
        held_by,
        mutation: m.clone(),
        resolution: None,
    };
    write_conflict(sql, log, ctx, &record, m)?;
    Ok(record.id)
}

/// Write a conflict record (new or settled by `m`) and its change-log row.
fn write_conflict(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    ctx: &Ctx<'_>,
    c: &ConflictRecord,
    m: &Mutation,
) -> Result<(), Error> {
    let now_us = ctx.now_us;
    let body = repo::put_conflict(sql, c, now_us)?;
    log.append(
        sql,
        NewChange {
            entity: "conflict",
            entity_id: &c.id.to_string(),
            version: c.version,
            body: repo::change_body("conflict", &body),
            mutation_ids: &[m.mutation_id],
            audience: Audience::Scoped,
            scope_user: c.assignee.as_deref(),
            scope_user2: Some(&c.username),
            device_us: Some(m.device_time.timestamp_micros()),
        },
        now_us,
    )?;
    Ok(())
}

/// Write a failed-sync record (new or settled by `m`) and its change-log row.
fn write_failed(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    ctx: &Ctx<'_>,
    f: &FailedSyncRecord,
    m: &Mutation,
) -> Result<(), Error> {
    let now_us = ctx.now_us;
    let body = repo::put_failed_sync(sql, f, now_us)?;
    log.append(
        sql,
        NewChange {
            entity: "failed_sync",
            entity_id: &f.id.to_string(),
            version: f.version,
            body: repo::change_body("failed_sync", &body),
            mutation_ids: &[m.mutation_id],
            audience: Audience::Scoped,
            scope_user: f.assignee.as_deref(),
            scope_user2: Some(&f.username),
            device_us: Some(m.device_time.timestamp_micros()),
        },
        now_us,
    )?;
    Ok(())
}

/// Keep a refusal for a person as a failed-sync record, and name it in `r`. Past the
/// person's budget of open records (`ServerConfig::failed_sync_budget_bytes`) nothing
/// is stored and `r`'s message says so: the refusal is still answered with its own
/// code, so the device sets the change aside in front of the technician, who sends it
/// again once a dispatcher has decided the waiting ones (issue 19 item 7).
fn record_failed_sync(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    ctx: &Ctx<'_>,
    m: &Mutation,
    r: &mut Rejection,
) -> Result<(), Error> {
    // The order it was about, when there is one: for a resolution, the record's order.
    let order_id = match m.entity {
        EntityKind::WorkOrder => m.entity_id,
        EntityKind::Conflict => {
            repo::get_conflict(sql, m.entity_id)?.map_or(m.entity_id, |c| c.order_id)
        }
        EntityKind::FailedSync => {
            repo::get_failed_sync(sql, m.entity_id)?.map_or(m.entity_id, |f| f.order_id)
        }
    };
    let assignee = repo::get_order(sql, order_id)?.and_then(|(o, _)| o.assignee);
    let record = FailedSyncRecord {
        id: Uuid::now_v7(),
        version: 1,
        status: RecordStatus::Open,
        order_id,
        // A technician must not learn about an order that is not theirs through a
        // failed sync: the assignee is kept only for staff or the assignee themself.
        assignee: if ctx.who.is_staff() || assignee.as_deref() == Some(ctx.who.username.as_str()) {
            assignee
        } else {
            None
        },
        username: ctx.who.username.clone(),
        device_id: ctx.who.device_id,
        received_at: ctx.now,
        device_time: Some(m.device_time),
        code: r.code,
        message: r.message.clone(),
        field_errors: r.field_errors.clone(),
        mutation: m.clone(),
        resolution: None,
    };
    let size = serde_json::to_string(&record)?.len() as u64;
    let kept = repo::open_failed_sync_bytes(sql, &ctx.who.username)?;
    if kept.saturating_add(size) > ctx.failed_sync_budget {
        r.message = format!(
            "{} — The server already keeps {} of your refused changes waiting for a dispatcher, the most it keeps for one person, so this one was not recorded there: it stays on this device, under Failed syncs. Send it again once a dispatcher has decided the waiting ones.",
            r.message,
            human_bytes(kept)
        );
        return Ok(());
    }
    write_failed(sql, log, ctx, &record, m)?;
    r.failed_sync_id = Some(record.id);
    Ok(())
}

/// `n` bytes in words ("3.2 MB").
fn human_bytes(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1} MB", n as f64 / 1e6)
    } else {
        format!("{} KB", n.div_ceil(1000))
    }
}

fn push_resolve(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    ctx: &Ctx<'_>,
    m: &Mutation,
) -> Result<PushOutcome, Error> {
    let unknown = || {
        rejected(merge::MergeRejected {
            code: ErrorCode::UnknownEntity,
            message: format!("no such {}", m.entity.as_str().replace('_', " ")),
            field_errors: Vec::new(),
        })
    };
    let (conflict, failed) = match m.entity {
        EntityKind::Conflict => match repo::get_conflict(sql, m.entity_id)? {
            Some(c) => (Some(c), None),
            None => return Ok(unknown()),
        },
        _ => match repo::get_failed_sync(sql, m.entity_id)? {
            Some(f) => (None, Some(f)),
            None => return Ok(unknown()),
        },
    };
    // Technicians see only their own records; anything else is "no such".
    if !ctx.who.is_staff() {
        let visible = conflict.as_ref().is_some_and(|c| {
            c.assignee.as_deref() == Some(ctx.who.username.as_str())
                || c.username == ctx.who.username
        }) || failed
            .as_ref()
            .is_some_and(|f| f.username == ctx.who.username);
        if !visible {
            return Ok(unknown());
        }
    }
    let order_id = conflict
        .as_ref()
        .map(|c| c.order_id)
        .or(failed.as_ref().map(|f| f.order_id));
    let current = match order_id {
        Some(id) => repo::get_order(sql, id)?,
        None => None,
    };
    let target = match (&conflict, &failed) {
        (Some(c), _) => Resolvable::Conflict(c),
        (_, Some(f)) => Resolvable::FailedSync(f),
        _ => return Ok(unknown()),
    };
    let decision = merge::resolve(
        target,
        current.as_ref().map(|(order, stamps)| Current {
            order,
            stamps,
            base: Base::Known(m.base_version),
            at_base: None,
            ever_assigned: false,
        }),
        m,
        &actor(ctx.who),
        ctx.now,
    );
    match decision {
        ResolveDecision::Reject(r) => Ok(rejected(r)),
        ResolveDecision::AlreadyResolved(resolution) => Ok(PushOutcome::Rejected(Rejection {
            code: ErrorCode::AlreadyResolved,
            message: format!(
                "already settled by {} ({:?})",
                resolution.decided_by, resolution.outcome
            ),
            field_errors: Vec::new(),
            failed_sync_id: None,
            resolution: Some(resolution),
        })),
        ResolveDecision::Resolved(done) => {
            let done = *done;
            let mut order_out = None;
            // A resolution that completes the order needs its evidence on the server,
            // as a completion pushed does.
            let completes = current.as_ref().is_some_and(|(before, _)| {
                before.status != Status::Completed && done.order.status == Status::Completed
            });
            if completes {
                let hashes = completion_hashes(m, Some(&done.order));
                let missing = repo::missing_attachments(sql, &hashes)?;
                if !missing.is_empty() {
                    return Ok(PushOutcome::MissingAttachments { hashes: missing });
                }
            }
            if done.changed {
                if let Some((before, _)) = &current {
                    for d in &done.stock {
                        if !repo::item_exists(sql, &d.sku)? {
                            return Ok(rejected(merge::MergeRejected {
                                code: ErrorCode::UnknownSku,
                                message: format!("no inventory item has the SKU {:?}", d.sku),
                                field_errors: Vec::new(),
                            }));
                        }
                    }
                    write_order(
                        sql,
                        log,
                        ctx.now_us,
                        &done.order,
                        &done.stamps,
                        Some(before),
                        &[m.mutation_id],
                        Some(m.device_time.timestamp_micros()),
                    )?;
                    for d in &done.stock {
                        adjust_stock(
                            sql,
                            ctx,
                            &d.sku,
                            d.delta_milli,
                            done.order.assignee.as_deref(),
                            done.order.id,
                            m,
                        )?;
                    }
                }
            }
            // The `set`s of fields that changed after the person looked are not
            // applied: they wait in a new conflict of the order.
            if !done.conflicts.is_empty() && current.is_some() {
                open_conflict(
                    sql,
                    log,
                    ctx,
                    m,
                    &done.order,
                    ConflictKind::Fields,
                    done.conflicts.clone(),
                )?;
            }
            if current.is_some() {
                order_out = Some(done.order.clone());
            }
            let (entity, id) = match (conflict, failed) {
                (Some(mut c), _) => {
                    c.status = RecordStatus::Resolved;
                    c.version += 1;
                    c.resolution = Some(done.resolution.clone());
                    write_conflict(sql, log, ctx, &c, m)?;
                    (EntityKind::Conflict, c.id)
                }
                (_, Some(mut f)) => {
                    f.status = RecordStatus::Resolved;
                    f.version += 1;
                    f.resolution = Some(done.resolution.clone());
                    write_failed(sql, log, ctx, &f, m)?;
                    (EntityKind::FailedSync, f.id)
                }
                _ => return Ok(unknown()),
            };
            Ok(PushOutcome::Applied(Applied {
                entity,
                entity_id: id,
                version: m.base_version + 1,
                number: order_out.as_ref().and_then(|o| o.number),
                changed: true,
                order: order_out,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::wire::{MutationResult, PushResponse};

    /// The spliced reply is the same document serde would write for the same results.
    #[test]
    fn an_encoded_response_reads_back_as_the_push_response() {
        let mut order = WorkOrder::blank(Uuid::from_u128(7));
        order.title = "Pump \"seal\" }".into();
        order.version = 3;
        let applied = PushOutcome::Applied(Applied {
            entity: EntityKind::WorkOrder,
            entity_id: order.id,
            version: 3,
            number: Some(12),
            changed: true,
            order: Some(order.clone()),
        });
        let missing = PushOutcome::MissingAttachments {
            hashes: vec!["ab".repeat(32)],
        };
        let now = chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 5_000)
            .expect("valid time");
        let expected = PushResponse {
            results: vec![
                MutationResult {
                    mutation_id: Uuid::from_u128(1),
                    outcome: applied.clone(),
                },
                MutationResult {
                    mutation_id: Uuid::from_u128(2),
                    outcome: missing.clone(),
                },
            ],
            server_time: now,
            written: Some(LogRange {
                epoch: "e1".into(),
                first: 41,
                last: 43,
            }),
        };
        let mut bare = applied;
        if let PushOutcome::Applied(a) = &mut bare {
            a.order = None;
        }
        let encoded = vec![
            Encoded {
                mutation_id: Uuid::from_u128(1),
                outcome_json: serde_json::to_string(&bare).expect("json"),
                row_json: Some(serde_json::to_string(&order).expect("json")),
            },
            Encoded {
                mutation_id: Uuid::from_u128(2),
                outcome_json: serde_json::to_string(&missing).expect("json"),
                row_json: None,
            },
        ];
        let bytes = encode_response(&encoded, now, expected.written.as_ref()).expect("encode");
        let back: PushResponse = serde_json::from_slice(&bytes).expect("valid JSON");
        assert_eq!(back, expected);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("json"),
            serde_json::to_value(&expected).expect("json"),
            "the same document, member for member"
        );
    }
}
