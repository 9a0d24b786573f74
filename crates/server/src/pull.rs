//! Pull: snapshot priming, then the change log, in pages bounded by rows and bytes.
//!
//! The cursor is opaque to clients: base64url of `l:<epoch>:<seq>` (following the log)
//! or `p:<epoch>:<S>:<phase>:<done>:<total>:<after>` (priming a snapshot that stands
//! for log sequence S, phase by phase — orders in scope first, then open conflicts and
//! failed syncs, then inventory — keyed by id so each page resumes where the last one
//! stopped). Rows read during priming may be newer than S; the log from S repeats any
//! such change, and applying a row twice is harmless, so the device converges.
//!
//! A cursor of another epoch (another database, or a restore), older than the pruned
//! log, or ahead of the log is answered `resync_required`. Row bodies are sent as
//! stored (raw JSON), which is what keeps a page cheap to build; only for a client of
//! an older protocol are conflict and failed-sync rows re-shaped, so that the mutation
//! they carry has no member that protocol does not know (`Mutation::for_protocol`),
//! and for a technician a conflict of an order that was not theirs when it was opened
//! loses the server's side of its fields ([`conflict_as_seen_by`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use outpost_protocol::compat;
use outpost_protocol::wire::{
    limits, ChangeBody, ConflictRecord, ErrorCode, LogRange, PrimingPhase, PrimingProgress,
};
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::{Row, Sql};
use crate::error::{ApiError, Error};
use crate::repo;

/// A change row as sent: the same JSON as `outpost_protocol::wire::Change`, with the
/// stored body passed through.
#[derive(Debug, Serialize)]
pub struct RawChange {
    pub seq: u64,
    pub entity: String,
    pub id: String,
    pub version: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mutation_ids: Vec<Uuid>,
    pub change: Box<RawValue>,
}

/// A page as sent: the same JSON as `outpost_protocol::wire::PullResponse`.
#[derive(Debug, Serialize)]
pub struct RawPage {
    pub changes: Vec<RawChange>,
    pub cursor: String,
    pub has_more: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priming: Option<PrimingProgress>,
    pub server_time: chrono::DateTime<chrono::Utc>,
    /// For protocol 2 and later: the epoch the page's versions belong to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// A pull cursor as the server writes it: opaque to the device (URL-safe base64 of a
/// small text), public so that the fuzz target `cursor` (fuzz/) can read any string
/// with [`Cursor::decode`] and check that what it accepts writes back the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Log {
        epoch: String,
        seq: u64,
    },
    Prime {
        epoch: String,
        snapshot: u64,
        phase: PrimingPhase,
        done: u64,
        total: u64,
        after: String,
    },
}

const PHASES: [PrimingPhase; 4] = [
    PrimingPhase::Orders,
    PrimingPhase::Conflicts,
    PrimingPhase::FailedSyncs,
    PrimingPhase::Inventory,
];

fn phase_str(p: PrimingPhase) -> &'static str {
    match p {
        PrimingPhase::Orders => "orders",
        PrimingPhase::Conflicts => "conflicts",
        PrimingPhase::FailedSyncs => "failed_syncs",
        PrimingPhase::Inventory => "inventory",
    }
}

impl Cursor {
    /// The cursor as the device receives it.
    pub fn encode(&self) -> String {
        let raw = match self {
            Cursor::Log { epoch, seq } => format!("l:{epoch}:{seq}"),
            Cursor::Prime {
                epoch,
                snapshot,
                phase,
                done,
                total,
                after,
            } => {
                format!(
                    "p:{epoch}:{snapshot}:{}:{done}:{total}:{after}",
                    phase_str(*phase)
                )
            }
        };
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// A cursor the device sent back; `None` for anything this server did not write
    /// (answered `resync_required`).
    pub fn decode(s: &str) -> Option<Cursor> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let mut parts = raw.splitn(7, ':');
        match parts.next()? {
            "l" => {
                let epoch = parts.next()?.to_owned();
                let seq = parts.next()?.parse().ok()?;
                parts.next().is_none().then_some(Cursor::Log { epoch, seq })
            }
            "p" => {
                let epoch = parts.next()?.to_owned();
                let snapshot = parts.next()?.parse().ok()?;
                let name = parts.next()?;
                let phase = PHASES.into_iter().find(|p| phase_str(*p) == name)?;
                let done = parts.next()?.parse().ok()?;
                let total = parts.next()?.parse().ok()?;
                let after = parts.next()?.to_owned();
                Some(Cursor::Prime {
                    epoch,
                    snapshot,
                    phase,
                    done,
                    total,
                    after,
                })
            }
            _ => None,
        }
    }
}

fn resync(message: &str) -> Error {
    ApiError::new(
        409,
        ErrorCode::ResyncRequired,
        format!("{message}; pull again without a cursor to re-prime"),
    )
    .into()
}

fn raw(s: String) -> Result<Box<RawValue>, Error> {
    RawValue::from_string(s).map_err(|e| Error::store(format!("stored row is not JSON: {e}")))
}

/// A stored change body as a client of `protocol` can read it: a conflict or failed
/// sync whose mutation carries members that protocol does not know is re-encoded
/// without them; everything else passes through untouched.
fn shaped(who: &Principal, protocol: u32, entity: &str, body: String) -> Result<String, Error> {
    let older = protocol < compat::since::BASE_EPOCH_AND_SEEN
        && matches!(entity, "conflict" | "failed_sync")
        && (body.contains("\"base_epoch\"") || body.contains("\"seen\""));
    let redact = !who.is_staff() && entity == "conflict" && body.contains("\"server\"");
    if !older && !redact {
        return Ok(body);
    }
    let change = match serde_json::from_str(&body)? {
        ChangeBody::Conflict(mut c) => {
            c.mutation = c.mutation.for_protocol(protocol).into_owned();
            ChangeBody::Conflict(conflict_as_seen_by(who, c))
        }
        ChangeBody::FailedSync(mut f) => {
            f.mutation = f.mutation.for_protocol(protocol).into_owned();
            ChangeBody::FailedSync(f)
        }
        _ => return Ok(body),
    };
    Ok(serde_json::to_string(&change)?)
}

/// A conflict record as `who` may see it: whole for staff and for the technician the
/// order was assigned to when it was opened; without the server's side of the fields
/// for anyone else (a former assignee sees their own change, not the order as it is
/// now). The pull and `GET /v1/conflicts` both serve records through it.
pub fn conflict_as_seen_by(who: &Principal, c: ConflictRecord) -> ConflictRecord {
    if who.is_staff() || c.shows_server_side_to(&who.username) {
        c
    } else {
        c.without_server_side()
    }
}

/// Rows of one priming phase after `after`, in key order.
fn phase_rows(
    sql: &mut dyn Sql,
    who: &Principal,
    phase: PrimingPhase,
    after: &str,
    limit: u32,
) -> Result<Vec<Row>, Error> {
    let staff = who.is_staff();
    let me = if staff {
        String::new()
    } else {
        who.username.clone()
    };
    let limit = i64::from(limit);
    match phase {
        PrimingPhase::Orders => sql.query(
            "SELECT id, version, body FROM orders WHERE id > ?1 AND (?2 = '' OR assignee = ?2) ORDER BY id LIMIT ?3",
            &[after.into(), me.into(), limit.into()],
        ),
        PrimingPhase::Conflicts => sql.query(
            "SELECT id, 1, body FROM conflicts WHERE id > ?1 AND status = 'open' AND (?2 = '' OR assignee = ?2 OR username = ?2) ORDER BY id LIMIT ?3",
            &[after.into(), me.into(), limit.into()],
        ),
        PrimingPhase::FailedSyncs => sql.query(
            "SELECT id, 1, body FROM failed_syncs WHERE id > ?1 AND status = 'open' AND (?2 = '' OR assignee = ?2 OR username = ?2) ORDER BY id LIMIT ?3",
            &[after.into(), me.into(), limit.into()],
        ),
        PrimingPhase::Inventory => sql.query(
            "SELECT sku, version, body FROM inventory WHERE sku > ?1 ORDER BY sku LIMIT ?2",
            &[after.into(), limit.into()],
        ),
    }
}

fn count_in_scope(sql: &mut dyn Sql, who: &Principal) -> Result<u64, Error> {
    let me = if who.is_staff() {
        String::new()
    } else {
        who.username.clone()
    };
    let mut total = 0;
    for q in [
        "SELECT COUNT(*) FROM orders WHERE (?1 = '' OR assignee = ?1)",
        "SELECT COUNT(*) FROM conflicts WHERE status = 'open' AND (?1 = '' OR assignee = ?1 OR username = ?1)",
        "SELECT COUNT(*) FROM failed_syncs WHERE status = 'open' AND (?1 = '' OR assignee = ?1 OR username = ?1)",
    ] {
        total += sql.query(q, &[me.clone().into()])?.first().map(|r| r.u64(0)).transpose()?.unwrap_or(0);
    }
    total += sql
        .query("SELECT COUNT(*) FROM inventory", &[])?
        .first()
        .map(|r| r.u64(0))
        .transpose()?
        .unwrap_or(0);
    Ok(total)
}

fn entity_of(phase: PrimingPhase) -> (&'static str, &'static str) {
    match phase {
        PrimingPhase::Orders => ("work_order", "work_order"),
        PrimingPhase::Conflicts => ("conflict", "conflict"),
        PrimingPhase::FailedSyncs => ("failed_sync", "failed_sync"),
        PrimingPhase::Inventory => ("inventory_item", "inventory_item"),
    }
}

/// What one pull request asks for (`wire::PullRequest`, borrowed).
#[derive(Debug, Clone, Copy, Default)]
pub struct PageRequest<'a> {
    pub cursor: Option<&'a str>,
    pub limit: Option<u32>,
    pub max_bytes: Option<u64>,
    /// The log ranges of the caller's own pushes whose answers it received and recorded.
    pub confirmed: &'a [LogRange],
}

/// Whether a stored change body is of `kind` (`{"kind":"<kind>",…}`, as
/// [`repo::change_body`] writes it).
fn is_kind(body: &str, kind: &str) -> bool {
    body.strip_prefix("{\"kind\":\"")
        .and_then(|rest| rest.strip_prefix(kind))
        .is_some_and(|rest| rest.starts_with('"'))
}

/// Whether a log row may stand in for an earlier row of the same entity in the same
/// page: a whole order row (not `left_scope`), or any inventory row (the item, or its
/// tombstone). Conflict and failed-sync rows are never collapsed.
fn collapsible(entity: &str, body: &str) -> bool {
    match entity {
        "inventory_item" => true,
        "work_order" => is_kind(body, "work_order"),
        _ => false,
    }
}

/// Build one page for `who`, a client of `protocol`. Runs inside a read transaction
/// (one snapshot).
///
/// Following the log, a page leaves out two kinds of rows and still moves the cursor
/// past them (docs/protocol.md, "What a page leaves out"): a whole order row inside a
/// range of `confirmed` (the caller's own push, whose answer carried that row), and
/// an earlier row of an entity the same page carries later (one row per entity per
/// page, at its latest version; an order row keeps the mutation ids of the rows it
/// stands for). Rows left out are read but not counted against `limit` and
/// `max_bytes`; a page reads at most `limit × PULL_SCAN_PER_ROW` log rows.
pub fn pull_page(
    sql: &mut dyn Sql,
    who: &Principal,
    protocol: u32,
    req: &PageRequest<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<RawPage, Error> {
    let cursor = req.cursor;
    let limit = req.limit.unwrap_or(limits::PULL_LIMIT_DEFAULT);
    let max_bytes = req.max_bytes.unwrap_or(limits::PULL_BYTES_DEFAULT);
    if limit == 0 || limit > limits::PULL_LIMIT_MAX {
        return Err(ApiError::bad_request(
            ErrorCode::OutOfRange,
            format!("limit must be between 1 and {}", limits::PULL_LIMIT_MAX),
        )
        .into());
    }
    if max_bytes == 0 || max_bytes > limits::PULL_BYTES_MAX {
        return Err(ApiError::bad_request(
            ErrorCode::OutOfRange,
            format!("max_bytes must be between 1 and {}", limits::PULL_BYTES_MAX),
        )
        .into());
    }
    if req.confirmed.len() > limits::CONFIRMED_RANGES_MAX {
        return Err(ApiError::bad_request(
            ErrorCode::OutOfRange,
            format!(
                "at most {} confirmed ranges per pull",
                limits::CONFIRMED_RANGES_MAX
            ),
        )
        .into());
    }
    let epoch = repo::epoch(sql)?;
    let last = repo::last_seq(sql)?;
    let mut cur = match cursor {
        None => Cursor::Prime {
            epoch: epoch.clone(),
            snapshot: last,
            phase: PrimingPhase::Orders,
            done: 0,
            total: count_in_scope(sql, who)?,
            after: String::new(),
        },
        Some(s) => {
            let c = Cursor::decode(s).ok_or_else(|| {
                Error::from(ApiError::bad_request(
                    ErrorCode::InvalidBody,
                    format!("the cursor is not one this server made: {s}"),
                ))
            })?;
            let (c_epoch, seq) = match &c {
                Cursor::Log { epoch, seq } => (epoch, *seq),
                Cursor::Prime {
                    epoch, snapshot, ..
                } => (epoch, *snapshot),
            };
            if *c_epoch != epoch {
                return Err(resync("the server's data was replaced (another epoch)"));
            }
            if seq > last {
                return Err(resync("the cursor is ahead of the server's log"));
            }
            if seq < repo::log_floor(sql)? {
                return Err(resync("the cursor is older than the server keeps its log"));
            }
            c
        }
    };

    // Confirmations count only for a device that follows the log already (a snapshot
    // sends current rows; a device priming has pushed nothing this server answered
    // for its copy).
    let honour_confirmed = matches!(cur, Cursor::Log { .. });
    let mut changes = Vec::new();
    let mut bytes: u64 = 0;
    let room =
        |changes: &Vec<RawChange>, bytes: u64| (changes.len() as u32) < limit && bytes < max_bytes;
    let mut priming = None;

    // Priming phases.
    while let Cursor::Prime {
        epoch: e,
        snapshot,
        phase,
        done,
        total,
        after,
    } = &mut cur
    {
        priming = Some(PrimingProgress {
            phase: *phase,
            done: *done,
            total: *total,
            snapshot_seq: *snapshot,
        });
        if !room(&changes, bytes) {
            break;
        }
        let want = limit - changes.len() as u32;
        let rows = phase_rows(sql, who, *phase, after, want)?;
        let fetched = rows.len();
        let exhausted = (fetched as u32) < want;
        let (entity, kind) = entity_of(*phase);
        let mut pushed = 0;
        for mut r in rows {
            if !room(&changes, bytes) {
                break;
            }
            let id = r.text(0)?;
            let version = r.u64(1)?;
            let body = shaped(
                who,
                protocol,
                entity,
                repo::change_body(kind, &r.take_text(2)?),
            )?;
            bytes += body.len() as u64;
            *after = id.clone();
            *done += 1;
            pushed += 1;
            changes.push(RawChange {
                seq: 0,
                entity: entity.to_owned(),
                id,
                version,
                mutation_ids: Vec::new(),
                change: raw(body)?,
            });
        }
        priming = Some(PrimingProgress {
            phase: *phase,
            done: *done,
            total: *total,
            snapshot_seq: *snapshot,
        });
        if exhausted && pushed == fetched {
            // Next phase, or the log from S once every phase is sent.
            match PHASES
                .iter()
                .position(|p| p == phase)
                .and_then(|i| PHASES.get(i + 1))
            {
                Some(next) => {
                    *phase = *next;
                    after.clear();
                }
                None => {
                    cur = Cursor::Log {
                        epoch: e.clone(),
                        seq: *snapshot,
                    };
                }
            }
        }
    }

    // The log.
    let mut has_more = matches!(cur, Cursor::Prime { .. });
    if let Cursor::Log { epoch: _, seq } = &mut cur {
        // Ranges of another epoch (a restore since the push) name other rows: ignored.
        let confirmed: Vec<(u64, u64)> = req
            .confirmed
            .iter()
            .filter(|r| honour_confirmed && r.epoch == epoch)
            .map(|r| (r.first, r.last))
            .collect();
        let echo = |s: u64| confirmed.iter().any(|&(a, b)| a <= s && s <= b);
        let scan_max = limit.saturating_mul(limits::PULL_SCAN_PER_ROW);
        let mut scanned: u32 = 0;
        let mut live = changes.len() as u32;
        // The page's log rows; `None` where a later row of the entity stands in.
        let mut slots: Vec<Option<RawChange>> = Vec::new();
        let mut latest: HashMap<(String, String), usize> = HashMap::new();
        has_more = false;
        loop {
            if live >= limit || bytes >= max_bytes || scanned >= scan_max {
                // Full page: whether more follows is unknown without a read; say so
                // cheaply.
                has_more = !sql
                    .query(
                        "SELECT 1 FROM changes WHERE seq > ?1 LIMIT 1",
                        &[(*seq).into()],
                    )?
                    .is_empty();
                break;
            }
            let want = (limit - live).min(scan_max - scanned) + 1;
            let rows = if who.is_staff() {
                sql.query(
                    "SELECT seq, entity, entity_id, version, body, mutation_ids FROM changes \
                     WHERE seq > ?1 AND audience <> 'user' ORDER BY seq LIMIT ?2",
                    &[(*seq).into(), i64::from(want).into()],
                )?
            } else {
                sql.query(
                    "SELECT seq, entity, entity_id, version, body, mutation_ids FROM changes \
                     WHERE seq > ?1 AND (audience = 'all' OR scope_user = ?2 OR scope_user2 = ?2) ORDER BY seq LIMIT ?3",
                    &[(*seq).into(), who.username.clone().into(), i64::from(want).into()],
                )?
            };
            let fetched = rows.len();
            let mut used = 0;
            for mut r in rows {
                if live >= limit || bytes >= max_bytes || scanned >= scan_max {
                    break;
                }
                scanned += 1;
                used += 1;
                let row_seq = r.u64(0)?;
                *seq = row_seq;
                let entity = r.text(1)?;
                let stored = r.take_text(4)?;
                if entity == "work_order" && echo(row_seq) && is_kind(&stored, "work_order") {
                    // The caller's own push wrote it, and its answer carried this row.
                    continue;
                }
                let id = r.text(2)?;
                let keep = collapsible(&entity, &stored);
                let body = shaped(who, protocol, &entity, stored)?;
                let mut ids: Vec<Uuid> = serde_json::from_str(&r.text(5)?)?;
                let key = (entity, id);
                match latest.remove(&key) {
                    Some(i) if keep => {
                        if let Some(earlier) = slots.get_mut(i).and_then(Option::take) {
                            bytes -= earlier.change.get().len() as u64;
                            live -= 1;
                            if key.0 == "work_order" {
                                // The later row acknowledges what the earlier one did.
                                let mut all = earlier.mutation_ids;
                                for m in ids {
                                    if !all.contains(&m) {
                                        all.push(m);
                                    }
                                }
                                ids = all;
                            }
                        }
                    }
                    _ => {}
                }
                bytes += body.len() as u64;
                live += 1;
                if keep {
                    latest.insert(key.clone(), slots.len());
                }
                let (entity, id) = key;
                slots.push(Some(RawChange {
                    seq: row_seq,
                    entity,
                    id,
                    version: r.u64(3)?,
                    mutation_ids: ids,
                    change: raw(body)?,
                }));
            }
            if used < fetched {
                has_more = true;
                break;
            }
            if (fetched as u32) < want {
                break; // the end of the log
            }
        }
        changes.extend(slots.into_iter().flatten());
    }
    Ok(RawPage {
        changes,
        cursor: cur.encode(),
        has_more,
        priming,
        server_time: now,
        epoch: (protocol >= compat::since::BASE_EPOCH_AND_SEEN).then_some(epoch),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for c in [
            Cursor::Log {
                epoch: "e1".into(),
                seq: 42,
            },
            Cursor::Prime {
                epoch: "e1".into(),
                snapshot: 7,
                phase: PrimingPhase::Inventory,
                done: 3,
                total: 9,
                after: "SKU:with:colons".into(),
            },
        ] {
            assert_eq!(Cursor::decode(&c.encode()), Some(c));
        }
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("l:e:x")), None);
    }

    mod pages {
        //! The rule of "What a page leaves out" (docs/protocol.md) as a property: for
        //! any log of order and item rows, any confirmed ranges and any page size, a
        //! device that took the confirmed order rows from its push answers and then
        //! applies every page (never an order change older than a row it took) ends
        //! where the log ends, every mutation id reaches it, the cursor reaches the end,
        //! and no page is larger than asked or carries an order or item twice.

        use std::collections::{HashMap, HashSet};

        use outpost_protocol::Role;
        use proptest::prelude::*;

        use super::super::*;
        use crate::db::sqlite::SqliteBackend;
        use crate::db::Backend;
        use crate::repo::{with_change_log, Audience, NewChange};

        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum State {
            Row(u64),
            Gone(u64),
        }

        struct Logged {
            seq: u64,
            order: bool,
            id: String,
            version: u64,
            whole: bool,
            mutation: Uuid,
        }

        fn write_log(db: &SqliteBackend, rows: &[(bool, u8, bool)]) -> Vec<Logged> {
            let mut versions: HashMap<String, u64> = HashMap::new();
            let mut out = Vec::new();
            db.write(&mut |sql| {
                crate::repo::reset_epoch(sql)?;
                with_change_log(sql, |sql, log| {
                    for (i, &(order, n, special)) in rows.iter().enumerate() {
                        let id = if order {
                            Uuid::from_u128(u128::from(n) + 1).to_string()
                        } else {
                            format!("SKU-{n}")
                        };
                        let v = versions.entry(id.clone()).or_insert(0);
                        *v += 1;
                        let version = *v;
                        let mutation = Uuid::from_u128(1_000 + i as u128);
                        let (body, audience) = match (order, special) {
                            (true, false) => (
                                format!(r#"{{"kind":"work_order","row":{{"v":{version}}}}}"#),
                                Audience::Scoped,
                            ),
                            (true, true) => (
                                r#"{"kind":"left_scope","row":{"now_assigned_to":null}}"#
                                    .to_owned(),
                                Audience::User,
                            ),
                            (false, false) => (
                                format!(r#"{{"kind":"inventory_item","row":{{"v":{version}}}}}"#),
                                Audience::All,
                            ),
                            (false, true) => (r#"{"kind":"tombstone"}"#.to_owned(), Audience::All),
                        };
                        let seq = log.append(
                            sql,
                            NewChange {
                                entity: if order {
                                    "work_order"
                                } else {
                                    "inventory_item"
                                },
                                entity_id: &id,
                                version,
                                body,
                                mutation_ids: &[mutation],
                                audience,
                                scope_user: Some("t"),
                                scope_user2: None,
                                device_us: None,
                            },
                            1,
                        )?;
                        out.push(Logged {
                            seq,
                            order,
                            id: id.clone(),
                            version,
                            whole: !special,
                            mutation,
                        });
                    }
                    Ok(())
                })
            })
            .expect("write the log");
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn a_device_ends_where_the_log_ends_whatever_the_pages_leave_out(
                rows in prop::collection::vec((any::<bool>(), 0u8..3, prop::bool::weighted(0.2)), 1..40),
                ranges in prop::collection::vec((1u64..40, 0u64..8), 0..3),
                limit in 1u32..6,
            ) {
                let dir = tempfile::tempdir().expect("temp dir");
                let db = SqliteBackend::open(&dir.path().join("log.db")).expect("open");
                let log = write_log(&db, &rows);
                let last = log.last().map_or(0, |r| r.seq);
                let mut epoch = String::new();
                db.read(&mut |sql| {
                    epoch = repo::epoch(sql)?;
                    Ok(())
                })
                .expect("epoch");
                let confirmed: Vec<LogRange> = ranges
                    .iter()
                    .map(|&(first, len)| LogRange { epoch: epoch.clone(), first, last: first + len })
                    .collect();
                let in_range = |s: u64| confirmed.iter().any(|r| r.first <= s && s <= r.last);

                // The truth: each entity's last row.
                let mut truth: HashMap<String, State> = HashMap::new();
                for r in &log {
                    truth.insert(r.id.clone(), if r.whole { State::Row(r.version) } else { State::Gone(r.version) });
                }
                // The device: the confirmed order rows taken from the answers.
                let mut device: HashMap<String, State> = HashMap::new();
                let mut taken: HashMap<String, u64> = HashMap::new();
                let mut acked: HashSet<Uuid> = HashSet::new();
                for r in log.iter().filter(|r| r.order && r.whole && in_range(r.seq)) {
                    device.insert(r.id.clone(), State::Row(r.version));
                    taken.insert(r.id.clone(), r.version);
                    acked.insert(r.mutation);
                }
                let who = Principal { username: "t".into(), role: Role::Technician, device_id: Uuid::nil() };
                let mut cursor = Cursor::Log { epoch: epoch.clone(), seq: 0 }.encode();
                let now = chrono::DateTime::<chrono::Utc>::from_timestamp(1_700_000_000, 0).expect("time");
                for round in 0.. {
                    prop_assert!(round < 200, "the pull ends");
                    let mut page = None;
                    db.read(&mut |sql| {
                        page = Some(pull_page(sql, &who, compat::since::BASE_EPOCH_AND_SEEN, &PageRequest {
                            cursor: Some(&cursor),
                            limit: Some(limit),
                            max_bytes: None,
                            confirmed: &confirmed,
                        }, now)?);
                        Ok(())
                    })
                    .expect("a page");
                    let page = page.expect("a page");
                    prop_assert!(page.changes.len() <= limit as usize);
                    let mut seen = HashSet::new();
                    for c in &page.changes {
                        let body: serde_json::Value = serde_json::from_str(c.change.get()).expect("json");
                        let kind = body["kind"].as_str().unwrap_or_default().to_owned();
                        // Whole rows of one entity are collapsed, except across a
                        // `left_scope` row.
                        if kind == "left_scope" {
                            seen.remove(&c.id);
                        } else {
                            prop_assert!(seen.insert(c.id.clone()), "{} twice in a page", c.id);
                        }
                        if c.entity == "work_order" {
                            acked.extend(c.mutation_ids.iter().copied());
                            if taken.get(&c.id).is_some_and(|v| *v > c.version) {
                                continue; // older than the row taken from an answer
                            }
                        }
                        let state = if kind == "left_scope" || kind == "tombstone" {
                            State::Gone(c.version)
                        } else {
                            State::Row(c.version)
                        };
                        device.insert(c.id.clone(), state);
                    }
                    cursor = page.cursor;
                    if !page.has_more {
                        break;
                    }
                }
                prop_assert_eq!(device, truth);
                prop_assert_eq!(
                    Cursor::decode(&cursor),
                    Some(Cursor::Log { epoch, seq: last })
                );
                for r in log.iter().filter(|r| r.order) {
                    prop_assert!(acked.contains(&r.mutation), "mutation of {} v{} never reached the device", r.id, r.version);
                }
            }
        }
    }
}
