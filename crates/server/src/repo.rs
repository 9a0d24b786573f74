//! Typed reads and writes over [`Sql`], shared by both backends.
//!
//! Rows that clients see (orders, inventory items, conflicts, failed syncs) are stored
//! as their wire JSON, so a pull can send them without re-encoding; the columns beside
//! them exist only to find and scope rows. Every function here runs inside the caller's
//! transaction and never commits on its own.

use outpost_protocol::merge::FieldStamps;
use outpost_protocol::wire::{ConflictRecord, FailedSyncRecord, RecordStatus};
use outpost_protocol::{InventoryItem, Role, WorkOrder};
use uuid::Uuid;

use crate::db::{Row, Sql, V};
use crate::error::Error;
use crate::history;

pub const META_EPOCH: &str = "epoch";
pub const META_LAST_SEQ: &str = "last_seq";
pub const META_LOG_FLOOR: &str = "log_floor";
pub const META_NEXT_NUMBER: &str = "next_number";
/// The secret refresh-token successors are derived with (hex; made on first start).
pub const META_REFRESH_SECRET: &str = "refresh_secret";

/// Create the singleton rows a new database needs (idempotent).
pub fn bootstrap(sql: &mut dyn Sql) -> Result<(), Error> {
    let epoch = Uuid::new_v4().simple().to_string();
    for (k, v) in [
        (META_EPOCH, epoch.as_str()),
        (META_LAST_SEQ, "0"),
        (META_LOG_FLOOR, "0"),
        (META_NEXT_NUMBER, "1"),
    ] {
        sql.exec(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
            &[k.into(), v.into()],
        )?;
    }
    Ok(())
}

pub fn meta_get(sql: &mut dyn Sql, key: &str) -> Result<Option<String>, Error> {
    let rows = sql.query("SELECT value FROM meta WHERE key = ?1", &[key.into()])?;
    rows.first().map(|r| r.text(0)).transpose()
}

pub fn meta_set(sql: &mut dyn Sql, key: &str, value: &str) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[key.into(), value.into()],
    )?;
    Ok(())
}

fn meta_u64(sql: &mut dyn Sql, key: &str) -> Result<u64, Error> {
    meta_get(sql, key)?
        .ok_or_else(|| Error::store(format!("meta {key} missing")))?
        .parse()
        .map_err(|e| Error::store(format!("meta {key}: {e}")))
}

pub fn epoch(sql: &mut dyn Sql) -> Result<String, Error> {
    meta_get(sql, META_EPOCH)?.ok_or_else(|| Error::store("meta epoch missing"))
}

pub fn last_seq(sql: &mut dyn Sql) -> Result<u64, Error> {
    meta_u64(sql, META_LAST_SEQ)
}

pub fn log_floor(sql: &mut dyn Sql) -> Result<u64, Error> {
    meta_u64(sql, META_LOG_FLOOR)
}

/// The next human order number (only inside a write transaction).
pub fn next_number(sql: &mut dyn Sql) -> Result<u64, Error> {
    let n = meta_u64(sql, META_NEXT_NUMBER)?;
    meta_set(sql, META_NEXT_NUMBER, &(n + 1).to_string())?;
    Ok(n)
}

/// Who may see a change-log row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Everyone (inventory).
    All,
    /// Dispatchers, admins, `scope_user` and `scope_user2`.
    Scoped,
    /// Only `scope_user` (a `left_scope` notice).
    User,
}

impl Audience {
    fn as_str(self) -> &'static str {
        match self {
            Audience::All => "all",
            Audience::Scoped => "scoped",
            Audience::User => "user",
        }
    }
}

/// A change-log row to append. `body` is the JSON of a `ChangeBody`.
#[derive(Debug)]
pub struct NewChange<'a> {
    pub entity: &'a str,
    pub entity_id: &'a str,
    pub version: u64,
    pub body: String,
    pub mutation_ids: &'a [Uuid],
    pub audience: Audience,
    pub scope_user: Option<&'a str>,
    pub scope_user2: Option<&'a str>,
    /// The device's clock when the person acted (microseconds), for a change a
    /// mutation made; kept beside the server's receive time (`created_us`).
    pub device_us: Option<i64>,
}

/// Hands out change-log sequences inside one write transaction: `last_seq` is read
/// once (at the first row) and written back once, by [`with_change_log`], instead of a
/// read and a write of the meta row for every row appended. Only inside a write
/// transaction, which the backends serialize, so sequences are gap-free and commit in
/// order. While one is open, every log row of the transaction goes through it: a second
/// one (or [`append_change`]) would start from the same `last_seq`, and its first
/// insert would fail on the primary key rather than reuse a number.
#[derive(Debug, Default)]
pub struct ChangeLog {
    /// The first and the last sequence handed out, once the first row was appended.
    first: Option<u64>,
    last: Option<u64>,
}

impl ChangeLog {
    /// Append a change-log row with the next sequence; returns the sequence.
    pub fn append(
        &mut self,
        sql: &mut dyn Sql,
        c: NewChange<'_>,
        now_us: i64,
    ) -> Result<u64, Error> {
        let seq = match self.last {
            Some(last) => last + 1,
            None => last_seq(sql)? + 1,
        };
        let ids = serde_json::to_string(c.mutation_ids)?;
        sql.exec(
            "INSERT INTO changes (seq, entity, entity_id, version, body, mutation_ids, audience, scope_user, scope_user2, created_us, device_us) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            &[
                seq.into(),
                c.entity.into(),
                c.entity_id.into(),
                c.version.into(),
                c.body.into(),
                ids.into(),
                c.audience.as_str().into(),
                c.scope_user.into(),
                c.scope_user2.into(),
                now_us.into(),
                c.device_us.into(),
            ],
        )?;
        self.first.get_or_insert(seq);
        self.last = Some(seq);
        Ok(seq)
    }

    /// The sequences handed out so far, first and last (none before the first row).
    pub fn range(&self) -> Option<(u64, u64)> {
        self.first.zip(self.last)
    }

    /// Record the last sequence handed out (nothing when no row was appended).
    fn finish(self, sql: &mut dyn Sql) -> Result<(), Error> {
        if let Some(last) = self.last {
            meta_set(sql, META_LAST_SEQ, &last.to_string())?;
        }
        Ok(())
    }
}

/// Run `f` with a [`ChangeLog`] and record the sequences it handed out when `f`
/// succeeds (when it fails the caller's transaction rolls back, rows and all).
pub fn with_change_log<R>(
    sql: &mut dyn Sql,
    f: impl FnOnce(&mut dyn Sql, &mut ChangeLog) -> Result<R, Error>,
) -> Result<R, Error> {
    let mut log = ChangeLog::default();
    let out = f(sql, &mut log)?;
    log.finish(sql)?;
    Ok(out)
}

/// Append one change-log row with the next sequence (a [`ChangeLog`] of one row).
pub fn append_change(sql: &mut dyn Sql, c: NewChange<'_>, now_us: i64) -> Result<u64, Error> {
    with_change_log(sql, |sql, log| log.append(sql, c, now_us))
}

pub fn change_body(kind: &str, row_json: &str) -> String {
    format!("{{\"kind\":\"{kind}\",\"row\":{row_json}}}")
}

// ---- users and devices -------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct UserRow {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub disabled: bool,
}

fn parse_role(s: &str) -> Result<Role, Error> {
    s.parse().map_err(Error::store)
}

pub fn get_user(sql: &mut dyn Sql, username: &str) -> Result<Option<UserRow>, Error> {
    let rows = sql.query(
        "SELECT username, password_hash, role, disabled FROM users WHERE username = ?1",
        &[username.into()],
    )?;
    rows.first()
        .map(|r| {
            Ok(UserRow {
                username: r.text(0)?,
                password_hash: r.text(1)?,
                role: parse_role(&r.text(2)?)?,
                disabled: r.i64(3)? != 0,
            })
        })
        .transpose()
}

pub fn insert_user(
    sql: &mut dyn Sql,
    username: &str,
    password_hash: &str,
    role: Role,
    now_us: i64,
) -> Result<bool, Error> {
    let n = sql.exec(
        "INSERT INTO users (username, password_hash, role, disabled, created_us) VALUES (?1, ?2, ?3, 0, ?4) \
         ON CONFLICT (username) DO NOTHING",
        &[username.into(), password_hash.into(), role.as_str().into(), now_us.into()],
    )?;
    Ok(n == 1)
}

pub fn set_user_disabled(sql: &mut dyn Sql, username: &str, disabled: bool) -> Result<bool, Error> {
    let n = sql.exec(
        "UPDATE users SET disabled = ?2 WHERE username = ?1",
        &[username.into(), disabled.into()],
    )?;
    Ok(n == 1)
}

/// A new password hash for `username`, and every session of theirs ended: all their
/// refresh tokens revoked and each of their devices' tokens issued until `now_us`
/// refused. `false` when there is no such user.
pub fn reset_password(
    sql: &mut dyn Sql,
    username: &str,
    password_hash: &str,
    now_us: i64,
) -> Result<bool, Error> {
    let n = sql.exec(
        "UPDATE users SET password_hash = ?2 WHERE username = ?1",
        &[username.into(), password_hash.into()],
    )?;
    if n != 1 {
        return Ok(false);
    }
    sql.exec(
        "UPDATE refresh_tokens SET revoked = 1 WHERE username = ?1",
        &[username.into()],
    )?;
    sql.exec(
        "UPDATE devices SET revoked_before_us = ?2 WHERE username = ?1",
        &[username.into(), now_us.into()],
    )?;
    Ok(true)
}

pub fn touch_device(
    sql: &mut dyn Sql,
    device: Uuid,
    username: &str,
    now_us: i64,
) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO devices (device_id, username, revoked_before_us, first_seen_us, last_seen_us) VALUES (?1, ?2, 0, ?3, ?3) \
         ON CONFLICT (device_id, username) DO UPDATE SET last_seen_us = excluded.last_seen_us",
        &[device.into(), username.into(), now_us.into()],
    )?;
    Ok(())
}

/// What a device last reported it has not sent (`x-outpost-unsent`), as the server
/// keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsentFigures {
    pub count: i64,
    pub set_aside: i64,
    /// The server's time minus the reported age of the oldest unsent change.
    pub oldest_unsent_us: Option<i64>,
    /// When the figures were recorded.
    pub reported_us: i64,
}

/// Keep a device's latest report of unsent work (a device not known yet for this user
/// is recorded first, as a sign-in would).
pub fn record_unsent(
    sql: &mut dyn Sql,
    device: Uuid,
    username: &str,
    figures: &UnsentFigures,
) -> Result<(), Error> {
    let params = [
        device.into(),
        username.into(),
        figures.count.into(),
        figures.set_aside.into(),
        figures.oldest_unsent_us.into(),
        figures.reported_us.into(),
    ];
    let update = "UPDATE devices SET unsent_count = ?3, unsent_set_aside = ?4, \
                  oldest_unsent_us = ?5, unsent_reported_us = ?6 \
                  WHERE device_id = ?1 AND username = ?2";
    if sql.exec(update, &params)? == 0 {
        touch_device(sql, device, username, figures.reported_us)?;
        sql.exec(update, &params)?;
    }
    Ok(())
}

/// A device's latest report of unsent work, if it ever sent one.
pub fn device_unsent(
    sql: &mut dyn Sql,
    device: Uuid,
    username: &str,
) -> Result<Option<UnsentFigures>, Error> {
    let rows = sql.query(
        "SELECT unsent_count, unsent_set_aside, oldest_unsent_us, unsent_reported_us \
         FROM devices WHERE device_id = ?1 AND username = ?2",
        &[device.into(), username.into()],
    )?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let (Some(count), Some(reported_us)) = (r.opt_i64(0)?, r.opt_i64(3)?) else {
        return Ok(None);
    };
    Ok(Some(UnsentFigures {
        count,
        set_aside: r.opt_i64(1)?.unwrap_or(0),
        oldest_unsent_us: r.opt_i64(2)?,
        reported_us,
    }))
}

/// What the server answered a device last, for the fleet view (issue 21 item 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    Push,
    Pull,
}

/// Keep the time of a device's latest push or pull, and the app version it named (a
/// device not known yet for this user is recorded first, as a sign-in would).
pub fn record_activity(
    sql: &mut dyn Sql,
    device: Uuid,
    username: &str,
    activity: Activity,
    now_us: i64,
    app_version: Option<&str>,
) -> Result<(), Error> {
    let column = match activity {
        Activity::Push => "last_push_us",
        Activity::Pull => "last_pull_us",
    };
    let update = format!(
        "UPDATE devices SET {column} = ?3, app_version = COALESCE(?4, app_version) \
         WHERE device_id = ?1 AND username = ?2"
    );
    let params = [
        device.into(),
        username.into(),
        now_us.into(),
        app_version.into(),
    ];
    if sql.exec(&update, &params)? == 0 {
        touch_device(sql, device, username, now_us)?;
        sql.exec(&update, &params)?;
    }
    Ok(())
}

/// One row of `devices` as the fleet view reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub device_id: Uuid,
    pub username: String,
    pub first_seen_us: i64,
    /// The latest of every time the server recorded hearing from the device.
    pub last_seen_us: i64,
    pub last_push_us: Option<i64>,
    pub last_pull_us: Option<i64>,
    pub unsent: Option<UnsentFigures>,
    pub app_version: Option<String>,
}

/// Every device of an enabled user that was used since it was last revoked (a revoked
/// laptop that never signed in again is gone from the fleet, not late).
pub fn fleet_devices(sql: &mut dyn Sql) -> Result<Vec<DeviceRow>, Error> {
    let rows = sql.query(
        "SELECT d.device_id, d.username, d.first_seen_us, d.last_seen_us, d.last_push_us, \
                d.last_pull_us, d.unsent_count, d.unsent_set_aside, d.oldest_unsent_us, \
                d.unsent_reported_us, d.app_version, d.revoked_before_us \
         FROM devices d JOIN users u ON u.username = d.username \
         WHERE u.disabled = 0 ORDER BY d.username, d.device_id",
        &[],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let (push, pull, reported) = (r.opt_i64(4)?, r.opt_i64(5)?, r.opt_i64(9)?);
        let last_seen_us = [Some(r.i64(3)?), push, pull, reported]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0);
        if r.i64(11)? > last_seen_us {
            continue;
        }
        let device_id = Uuid::parse_str(&r.text(0)?)
            .map_err(|e| Error::store(format!("a device id in the store is not a UUID: {e}")))?;
        let unsent = match (r.opt_i64(6)?, reported) {
            (Some(count), Some(reported_us)) => Some(UnsentFigures {
                count,
                set_aside: r.opt_i64(7)?.unwrap_or(0),
                oldest_unsent_us: r.opt_i64(8)?,
                reported_us,
            }),
            _ => None,
        };
        out.push(DeviceRow {
            device_id,
            username: r.text(1)?,
            first_seen_us: r.i64(2)?,
            last_seen_us,
            last_push_us: push,
            last_pull_us: pull,
            unsent,
            app_version: r.opt_text(10)?,
        });
    }
    Ok(out)
}

/// The bodies of every open conflict (`conflicts`) or failed sync (`failed_syncs`).
pub fn open_record_bodies(sql: &mut dyn Sql, table: &str) -> Result<Vec<String>, Error> {
    let table = match table {
        "conflicts" => "conflicts",
        _ => "failed_syncs",
    };
    let rows = sql.query(
        &format!("SELECT body FROM {table} WHERE status = 'open'"),
        &[],
    )?;
    rows.iter().map(|r| r.text(0)).collect()
}

/// Tokens of this device issued at or before this time no longer work.
pub fn device_revoked_before(
    sql: &mut dyn Sql,
    device: Uuid,
    username: &str,
) -> Result<i64, Error> {
    let rows = sql.query(
        "SELECT revoked_before_us FROM devices WHERE device_id = ?1 AND username = ?2",
        &[device.into(), username.into()],
    )?;
    Ok(rows.first().map(|r| r.i64(0)).transpose()?.unwrap_or(0))
}

/// Revoke a device (for every user on it, or one user). Returns the rows touched.
pub fn revoke_device(
    sql: &mut dyn Sql,
    device: Uuid,
    username: Option<&str>,
    now_us: i64,
) -> Result<u64, Error> {
    let n = match username {
        Some(u) => {
            sql.exec(
                "UPDATE refresh_tokens SET revoked = 1 WHERE device_id = ?1 AND username = ?2",
                &[device.into(), u.into()],
            )?;
            sql.exec(
                "UPDATE devices SET revoked_before_us = ?3 WHERE device_id = ?1 AND username = ?2",
                &[device.into(), u.into(), now_us.into()],
            )?
        }
        None => {
            sql.exec(
                "UPDATE refresh_tokens SET revoked = 1 WHERE device_id = ?1",
                &[device.into()],
            )?;
            sql.exec(
                "UPDATE devices SET revoked_before_us = ?2 WHERE device_id = ?1",
                &[device.into(), now_us.into()],
            )?
        }
    };
    Ok(n)
}

// ---- signing keys and refresh tokens -----------------------------------------------

pub fn signing_keys(sql: &mut dyn Sql) -> Result<Vec<(String, String)>, Error> {
    sql.query(
        "SELECT kid, secret_hex FROM signing_keys ORDER BY created_us DESC, kid",
        &[],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, r.text(1)?)))
    .collect()
}

/// When the newest signing key was made.
pub fn newest_signing_key_us(sql: &mut dyn Sql) -> Result<Option<i64>, Error> {
    sql.query("SELECT MAX(created_us) FROM signing_keys", &[])?
        .first()
        .map(|r| r.opt_i64(0))
        .transpose()
        .map(Option::flatten)
}

/// Delete the signing keys a newer key replaced at or before `replaced_before_us`
/// (the newest key is never deleted). Returns how many went.
pub fn retire_signing_keys(sql: &mut dyn Sql, replaced_before_us: i64) -> Result<u64, Error> {
    sql.exec(
        "DELETE FROM signing_keys WHERE EXISTS (SELECT 1 FROM signing_keys n \
         WHERE n.created_us > signing_keys.created_us AND n.created_us <= ?1)",
        &[replaced_before_us.into()],
    )
}

pub fn insert_signing_key(
    sql: &mut dyn Sql,
    kid: &str,
    secret_hex: &str,
    now_us: i64,
) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO signing_keys (kid, secret_hex, created_us) VALUES (?1, ?2, ?3) ON CONFLICT (kid) DO NOTHING",
        &[kid.into(), secret_hex.into(), now_us.into()],
    )?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct RefreshRow {
    pub username: String,
    pub device_id: String,
    pub issued_us: i64,
    pub expires_us: i64,
    pub replaced_by: Option<String>,
    pub replaced_us: Option<i64>,
    pub revoked: bool,
}

pub fn get_refresh(sql: &mut dyn Sql, token_hash: &str) -> Result<Option<RefreshRow>, Error> {
    let rows = sql.query(
        "SELECT username, device_id, issued_us, expires_us, replaced_by, replaced_us, revoked FROM refresh_tokens WHERE token_hash = ?1",
        &[token_hash.into()],
    )?;
    rows.first()
        .map(|r| {
            Ok(RefreshRow {
                username: r.text(0)?,
                device_id: r.text(1)?,
                issued_us: r.i64(2)?,
                expires_us: r.i64(3)?,
                replaced_by: r.opt_text(4)?,
                replaced_us: r.opt_i64(5)?,
                revoked: r.i64(6)? != 0,
            })
        })
        .transpose()
}

pub fn insert_refresh(
    sql: &mut dyn Sql,
    token_hash: &str,
    username: &str,
    device: Uuid,
    issued_us: i64,
    expires_us: i64,
) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO refresh_tokens (token_hash, username, device_id, issued_us, expires_us, revoked) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        &[token_hash.into(), username.into(), device.into(), issued_us.into(), expires_us.into()],
    )?;
    Ok(())
}

pub fn mark_refresh_replaced(
    sql: &mut dyn Sql,
    token_hash: &str,
    by: &str,
    now_us: i64,
) -> Result<(), Error> {
    sql.exec(
        "UPDATE refresh_tokens SET replaced_by = ?2, replaced_us = COALESCE(replaced_us, ?3) WHERE token_hash = ?1",
        &[token_hash.into(), by.into(), now_us.into()],
    )?;
    Ok(())
}

pub fn revoke_refresh(sql: &mut dyn Sql, token_hash: &str) -> Result<(), Error> {
    sql.exec(
        "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = ?1",
        &[token_hash.into()],
    )?;
    Ok(())
}

// ---- orders -------------------------------------------------------------------------

pub fn get_order(sql: &mut dyn Sql, id: Uuid) -> Result<Option<(WorkOrder, FieldStamps)>, Error> {
    Ok(get_order_json(sql, id)?.map(|(order, stamps, _)| (order, stamps)))
}

/// Fill in who set each field's current value and when (the field's stamp: its
/// version and device; that version's change-log row: the receive and device times; the
/// device's user), for the dispatcher's desk. A field whose stamp or row is gone (a
/// pruned log) keeps `server_set` empty.
pub fn stamp_conflict_fields(
    sql: &mut dyn Sql,
    order_id: Uuid,
    fields: &mut [outpost_protocol::wire::ConflictField],
) -> Result<(), Error> {
    let Some((_, stamps)) = get_order(sql, order_id)? else {
        return Ok(());
    };
    for f in fields.iter_mut().filter(|f| f.server.is_some()) {
        f.server_set = field_change(sql, order_id, &stamps, &f.field)?;
    }
    Ok(())
}

/// Who made the server-side change that holds a whole mutation of `kind` (the
/// cancellation or the reassignment: [`ConflictKind::held_by_field`]) and when, as
/// [`stamp_conflict_fields`] finds it for a field; `None` for field conflicts or when
/// the stamp or its log row is gone.
pub fn held_by(
    sql: &mut dyn Sql,
    order_id: Uuid,
    kind: outpost_protocol::wire::ConflictKind,
) -> Result<Option<outpost_protocol::wire::FieldChange>, Error> {
    let Some(field) = kind.held_by_field() else {
        return Ok(None);
    };
    let Some((_, stamps)) = get_order(sql, order_id)? else {
        return Ok(None);
    };
    field_change(sql, order_id, &stamps, field)
}

/// The last change of `field` of an order: its stamp's change-log row (receive and
/// device times) and the stamping device's user.
fn field_change(
    sql: &mut dyn Sql,
    order_id: Uuid,
    stamps: &FieldStamps,
    field: &str,
) -> Result<Option<outpost_protocol::wire::FieldChange>, Error> {
    let Some(stamp) = stamps.get(field) else {
        return Ok(None);
    };
    let version = i64::try_from(stamp.version).unwrap_or(i64::MAX);
    let rows = sql.query(
        "SELECT created_us, device_us FROM changes
         WHERE entity = 'work_order' AND entity_id = ?1 AND version = ?2
         ORDER BY seq LIMIT 1",
        &[order_id.to_string().into(), version.into()],
    )?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let (received_us, device_us) = (row.i64(0)?, row.opt_i64(1)?);
    let users = sql.query(
        "SELECT username FROM devices WHERE device_id = ?1 ORDER BY last_seen_us DESC LIMIT 1",
        &[stamp.device_id.to_string().into()],
    )?;
    let Some(user) = users.first() else {
        return Ok(None);
    };
    let Some(received_at) = chrono::DateTime::from_timestamp_micros(received_us) else {
        return Ok(None);
    };
    Ok(Some(outpost_protocol::wire::FieldChange {
        username: user.text(0)?,
        device_time: device_us.and_then(chrono::DateTime::from_timestamp_micros),
        received_at,
    }))
}

/// The order, its field stamps and the row's stored JSON (which is exactly the order's
/// serialization, so it can be sent on without encoding it again).
pub fn get_order_json(
    sql: &mut dyn Sql,
    id: Uuid,
) -> Result<Option<(WorkOrder, FieldStamps, String)>, Error> {
    let mut rows = sql.query(
        "SELECT body, stamps FROM orders WHERE id = ?1",
        &[id.into()],
    )?;
    let Some(r) = rows.first_mut() else {
        return Ok(None);
    };
    let body = r.take_text(0)?;
    let order = serde_json::from_str(&body)?;
    let stamps = serde_json::from_str(&r.text(1)?)?;
    Ok(Some((order, stamps, body)))
}

/// An order row read unless it is the one the caller holds.
#[derive(Debug)]
pub enum OrderRow {
    /// The row is still at the version and write time the caller gave.
    Unchanged,
    Read {
        order: Box<WorkOrder>,
        stamps: FieldStamps,
        json: String,
        updated_us: i64,
    },
}

/// The order's row, or [`OrderRow::Unchanged`] when it is still at `version` written
/// at `updated_us` (then its JSON is neither read nor parsed); `None`: no such order.
pub fn get_order_unless(
    sql: &mut dyn Sql,
    id: Uuid,
    version: i64,
    updated_us: i64,
) -> Result<Option<OrderRow>, Error> {
    let mut rows = sql.query(
        "SELECT updated_us, CASE WHEN version = ?2 AND updated_us = ?3 THEN NULL ELSE body END, \
         CASE WHEN version = ?2 AND updated_us = ?3 THEN NULL ELSE stamps END FROM orders WHERE id = ?1",
        &[id.into(), version.into(), updated_us.into()],
    )?;
    let Some(r) = rows.first_mut() else {
        return Ok(None);
    };
    let updated_us = r.i64(0)?;
    let Some(body) = r.opt_text(1)? else {
        return Ok(Some(OrderRow::Unchanged));
    };
    Ok(Some(OrderRow::Read {
        order: Box::new(serde_json::from_str(&body)?),
        stamps: serde_json::from_str(&r.text(2)?)?,
        json: body,
        updated_us,
    }))
}

/// The order as it was at `version`, rebuilt from `current` (the row now) and the
/// history diffs between (see [`crate::history`]); `None` when the server never had
/// that version or no longer has its history.
pub fn order_at(
    sql: &mut dyn Sql,
    current: &WorkOrder,
    version: u64,
) -> Result<Option<WorkOrder>, Error> {
    if version == current.version {
        return Ok(Some(current.clone()));
    }
    if version == 0 || version > current.version {
        return Ok(None);
    }
    let rows = sql.query(
        "SELECT version, body FROM order_history WHERE order_id = ?1 AND version >= ?2 AND version < ?3 \
         ORDER BY version DESC",
        &[current.id.into(), version.into(), current.version.into()],
    )?;
    if rows.last().map(|r| r.u64(0)).transpose()? != Some(version) {
        return Ok(None);
    }
    let serde_json::Value::Object(mut order) = serde_json::to_value(current)? else {
        return Err(Error::store("an order is not a JSON object"));
    };
    for r in &rows {
        match history::parse_entry(&r.text(1)?)? {
            history::Entry::Diff(d) => history::apply_back(&mut order, d)?,
            history::Entry::Full(full) => order = full,
        }
    }
    Ok(Some(serde_json::from_value(serde_json::Value::Object(
        order,
    ))?))
}

/// Whether `username` was the order's assignee at any version the server keeps: the
/// current row, then each older version rebuilt from the history diffs, newest first
/// (for a push whose base the server cannot place, after a restore).
pub fn ever_assigned_to(
    sql: &mut dyn Sql,
    current: &WorkOrder,
    username: &str,
) -> Result<bool, Error> {
    if current.assignee.as_deref() == Some(username) {
        return Ok(true);
    }
    let rows = sql.query(
        "SELECT body FROM order_history WHERE order_id = ?1 ORDER BY version DESC",
        &[current.id.into()],
    )?;
    let serde_json::Value::Object(mut order) = serde_json::to_value(current)? else {
        return Err(Error::store("an order is not a JSON object"));
    };
    for r in &rows {
        match history::parse_entry(&r.text(0)?)? {
            history::Entry::Diff(d) => history::apply_back(&mut order, d)?,
            history::Entry::Full(full) => order = full,
        }
        if order.get("assignee").and_then(|a| a.as_str()) == Some(username) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Write the order's current row and, when it replaces `previous`, the history diff
/// that gets `previous` back (see [`crate::history`]); returns the row's JSON.
pub fn put_order(
    sql: &mut dyn Sql,
    order: &WorkOrder,
    stamps: &FieldStamps,
    previous: Option<&WorkOrder>,
    now_us: i64,
) -> Result<String, Error> {
    let mut params: [V; 7] = [
        order.id.into(),
        order.number.map(|n| n as i64).into(),
        order.version.into(),
        order.assignee.clone().into(),
        serde_json::to_string(order)?.into(),
        serde_json::to_string(stamps)?.into(),
        now_us.into(),
    ];
    // A row the caller read is updated in place; an upsert would first try the insert
    // (building the record, with its whole body) and only then update.
    let updated = previous.is_some()
        && sql.exec(
            "UPDATE orders SET number = ?2, version = ?3, assignee = ?4, body = ?5, stamps = ?6, updated_us = ?7 \
             WHERE id = ?1",
            &params,
        )? == 1;
    if !updated {
        sql.exec(
            "INSERT INTO orders (id, number, version, assignee, body, stamps, updated_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (id) DO UPDATE SET number = excluded.number, version = excluded.version, assignee = excluded.assignee, \
             body = excluded.body, stamps = excluded.stamps, updated_us = excluded.updated_us",
            &params,
        )?;
    }
    // The body, bound above without a copy.
    let V::T(Some(body)) = std::mem::replace(&mut params[4], V::T(None)) else {
        return Err(Error::store("an order body is not text"));
    };
    if let Some(prev) = previous.filter(|p| p.version < order.version) {
        let diff = serde_json::to_string(&history::back_diff(prev, order)?)?;
        sql.exec(
            "INSERT INTO order_history (order_id, version, body) VALUES (?1, ?2, ?3) ON CONFLICT (order_id, version) DO NOTHING",
            &[order.id.into(), prev.version.into(), diff.into()],
        )?;
    }
    let hashes = order.attachment_hashes();
    if previous.is_none_or(|p| p.attachment_hashes() != hashes) {
        sql.exec(
            "DELETE FROM order_attachments WHERE order_id = ?1",
            &[order.id.into()],
        )?;
        for hash in hashes {
            sql.exec(
                "INSERT INTO order_attachments (hash, order_id) VALUES (?1, ?2) ON CONFLICT (hash, order_id) DO NOTHING",
                &[hash.into(), order.id.into()],
            )?;
        }
    }
    Ok(body)
}

pub fn order_exists(sql: &mut dyn Sql, id: Uuid) -> Result<bool, Error> {
    Ok(!sql
        .query("SELECT 1 FROM orders WHERE id = ?1", &[id.into()])?
        .is_empty())
}

// ---- inventory ----------------------------------------------------------------------

pub fn get_item(sql: &mut dyn Sql, sku: &str) -> Result<Option<(InventoryItem, u64)>, Error> {
    let rows = sql.query(
        "SELECT body, version FROM inventory WHERE sku = ?1",
        &[sku.into()],
    )?;
    rows.first()
        .map(|r| Ok((serde_json::from_str(&r.text(0)?)?, r.u64(1)?)))
        .transpose()
}

/// Insert or replace an item; returns its JSON.
pub fn put_item(sql: &mut dyn Sql, item: &InventoryItem, version: u64) -> Result<String, Error> {
    let body = serde_json::to_string(item)?;
    sql.exec(
        "INSERT INTO inventory (sku, version, body) VALUES (?1, ?2, ?3) \
         ON CONFLICT (sku) DO UPDATE SET version = excluded.version, body = excluded.body",
        &[item.sku.clone().into(), version.into(), body.clone().into()],
    )?;
    Ok(body)
}

/// Discontinue an item: its row goes, and a tombstone in the change log tells every
/// device to drop it. Orders that used it keep their parts lines; a later push that
/// uses it is rejected as `unknown_sku` and shown as a failed sync. Returns false when
/// no such item exists.
pub fn discontinue_item(sql: &mut dyn Sql, sku: &str, now_us: i64) -> Result<bool, Error> {
    with_change_log(sql, |sql, log| discontinue_item_in(sql, log, sku, now_us))
}

/// [`discontinue_item`] inside a write transaction that numbers its log rows with `log`.
pub fn discontinue_item_in(
    sql: &mut dyn Sql,
    log: &mut ChangeLog,
    sku: &str,
    now_us: i64,
) -> Result<bool, Error> {
    let Some((_, version)) = get_item(sql, sku)? else {
        return Ok(false);
    };
    sql.exec("DELETE FROM inventory WHERE sku = ?1", &[sku.into()])?;
    log.append(
        sql,
        NewChange {
            entity: "inventory_item",
            entity_id: sku,
            version: version + 1,
            body: r#"{"kind":"tombstone"}"#.to_owned(),
            mutation_ids: &[],
            audience: Audience::All,
            scope_user: None,
            scope_user2: None,
            device_us: None,
        },
        now_us,
    )?;
    Ok(true)
}

pub fn item_exists(sql: &mut dyn Sql, sku: &str) -> Result<bool, Error> {
    Ok(!sql
        .query("SELECT 1 FROM inventory WHERE sku = ?1", &[sku.into()])?
        .is_empty())
}

pub fn set_stock_alert(
    sql: &mut dyn Sql,
    sku: &str,
    location: &str,
    name: &str,
    quantity_milli: i64,
) -> Result<(), Error> {
    if quantity_milli < 0 {
        sql.exec(
            "INSERT INTO stock_alerts (sku, location, name, quantity_milli) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (sku, location) DO UPDATE SET quantity_milli = excluded.quantity_milli, name = excluded.name",
            &[sku.into(), location.into(), name.into(), quantity_milli.into()],
        )?;
    } else {
        sql.exec(
            "DELETE FROM stock_alerts WHERE sku = ?1 AND location = ?2",
            &[sku.into(), location.into()],
        )?;
    }
    Ok(())
}

pub fn stock_alerts(sql: &mut dyn Sql) -> Result<Vec<Row>, Error> {
    sql.query(
        "SELECT sku, location, name, quantity_milli FROM stock_alerts ORDER BY sku, location LIMIT 10000",
        &[],
    )
}

// ---- idempotency --------------------------------------------------------------------

pub fn get_idempotency(
    sql: &mut dyn Sql,
    username: &str,
    device: Uuid,
    mutation_id: Uuid,
) -> Result<Option<(String, String)>, Error> {
    let rows = sql.query(
        "SELECT body_hash, result FROM idempotency WHERE username = ?1 AND device_id = ?2 AND mutation_id = ?3",
        &[username.into(), device.into(), mutation_id.into()],
    )?;
    rows.first()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .transpose()
}

/// Record a mutation's first outcome under its key: the body's hash, the outcome, the
/// server's receive time and the device's time.
#[allow(clippy::too_many_arguments)]
pub fn put_idempotency(
    sql: &mut dyn Sql,
    username: &str,
    device: Uuid,
    mutation_id: Uuid,
    body_hash: &str,
    result: &str,
    now_us: i64,
    device_us: i64,
) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO idempotency (username, device_id, mutation_id, body_hash, result, created_us, device_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &[
            username.into(),
            device.into(),
            mutation_id.into(),
            body_hash.into(),
            result.into(),
            now_us.into(),
            device_us.into(),
        ],
    )?;
    Ok(())
}

// ---- conflicts and failed syncs ------------------------------------------------------

fn status_str(s: RecordStatus) -> &'static str {
    match s {
        RecordStatus::Open => "open",
        RecordStatus::Resolved => "resolved",
    }
}

pub fn put_conflict(sql: &mut dyn Sql, c: &ConflictRecord, now_us: i64) -> Result<String, Error> {
    let body = serde_json::to_string(c)?;
    sql.exec(
        "INSERT INTO conflicts (id, order_id, status, assignee, username, body, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body",
        &[
            c.id.into(),
            c.order_id.into(),
            status_str(c.status).into(),
            c.assignee.clone().into(),
            c.username.clone().into(),
            body.clone().into(),
            now_us.into(),
        ],
    )?;
    Ok(body)
}

pub fn get_conflict(sql: &mut dyn Sql, id: Uuid) -> Result<Option<ConflictRecord>, Error> {
    let rows = sql.query("SELECT body FROM conflicts WHERE id = ?1", &[id.into()])?;
    rows.first()
        .map(|r| Ok(serde_json::from_str(&r.text(0)?)?))
        .transpose()
}

/// The open conflict `username`'s device `device_id` has on `order_id`, if any (one per
/// device and order: later held pushes are absorbed into it).
pub fn open_conflict_of(
    sql: &mut dyn Sql,
    order_id: Uuid,
    username: &str,
    device_id: Uuid,
) -> Result<Option<ConflictRecord>, Error> {
    let rows = sql.query(
        "SELECT body FROM conflicts WHERE order_id = ?1 AND username = ?2 AND status = 'open' ORDER BY created_us, id",
        &[order_id.into(), username.into()],
    )?;
    for r in rows {
        let c: ConflictRecord = serde_json::from_str(&r.text(0)?)?;
        if c.device_id == device_id {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

pub fn put_failed_sync(
    sql: &mut dyn Sql,
    f: &FailedSyncRecord,
    now_us: i64,
) -> Result<String, Error> {
    let body = serde_json::to_string(f)?;
    sql.exec(
        "INSERT INTO failed_syncs (id, order_id, status, assignee, username, body, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, body = excluded.body",
        &[
            f.id.into(),
            f.order_id.into(),
            status_str(f.status).into(),
            f.assignee.clone().into(),
            f.username.clone().into(),
            body.clone().into(),
            now_us.into(),
        ],
    )?;
    Ok(body)
}

/// The bytes of `username`'s open failed-sync records (their stored bodies).
pub fn open_failed_sync_bytes(sql: &mut dyn Sql, username: &str) -> Result<u64, Error> {
    let rows = sql.query(
        "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM failed_syncs WHERE username = ?1 AND status = 'open'",
        &[username.into()],
    )?;
    Ok(rows
        .first()
        .map(|r| r.i64(0))
        .transpose()?
        .unwrap_or(0)
        .max(0) as u64)
}

pub fn get_failed_sync(sql: &mut dyn Sql, id: Uuid) -> Result<Option<FailedSyncRecord>, Error> {
    let rows = sql.query("SELECT body FROM failed_syncs WHERE id = ?1", &[id.into()])?;
    rows.first()
        .map(|r| Ok(serde_json::from_str(&r.text(0)?)?))
        .transpose()
}

/// List conflicts or failed syncs (`table` is one of the two), newest first, filtered
/// by status (`None`: all) and, for technicians, by who may see them; at most `limit`
/// records and about `budget` bytes of them (at least one). The second value: records
/// were left out for the budget. Their sizes are read first, so bodies past the budget
/// are never loaded.
pub fn list_records(
    sql: &mut dyn Sql,
    table: &str,
    status: Option<RecordStatus>,
    visible_to: Option<&str>,
    (limit, budget): (u32, usize),
) -> Result<(Vec<String>, bool), Error> {
    let table = match table {
        "conflicts" => "conflicts",
        _ => "failed_syncs",
    };
    let filter = format!(
        "FROM {table} WHERE (?1 = '' OR status = ?1) AND (?2 = '' OR assignee = ?2 OR username = ?2) \
         ORDER BY created_us DESC, id LIMIT ?3"
    );
    let params = |n: u32| {
        [
            status.map(status_str).unwrap_or("").into(),
            visible_to.unwrap_or("").into(),
            i64::from(n).into(),
        ]
    };
    let sizes = sql.query(&format!("SELECT LENGTH(body) {filter}"), &params(limit))?;
    let mut bytes = 0usize;
    let mut fit = 0u32;
    for r in &sizes {
        bytes = bytes.saturating_add(usize::try_from(r.u64(0)?).unwrap_or(usize::MAX));
        if fit > 0 && bytes > budget {
            break;
        }
        fit += 1;
    }
    let more = (fit as usize) < sizes.len();
    let rows = sql.query(&format!("SELECT body {filter}"), &params(fit))?;
    Ok((
        rows.iter().map(|r| r.text(0)).collect::<Result<_, _>>()?,
        more,
    ))
}

// ---- attachments --------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct AttachmentRow {
    pub total: Option<u64>,
    pub received: u64,
    pub complete: bool,
    pub uploaded_by: String,
}

pub fn get_attachment(sql: &mut dyn Sql, hash: &str) -> Result<Option<AttachmentRow>, Error> {
    let rows = sql.query(
        "SELECT total, received, complete, uploaded_by FROM attachments WHERE hash = ?1",
        &[hash.into()],
    )?;
    rows.first()
        .map(|r| {
            Ok(AttachmentRow {
                total: r.opt_i64(0)?.map(|t| t as u64),
                received: r.u64(1)?,
                complete: r.i64(2)? != 0,
                uploaded_by: r.text(3)?,
            })
        })
        .transpose()
}

pub fn put_attachment(
    sql: &mut dyn Sql,
    hash: &str,
    a: &AttachmentRow,
    now_us: i64,
) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO attachments (hash, total, received, complete, uploaded_by, created_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (hash) DO UPDATE SET total = excluded.total, received = excluded.received, complete = excluded.complete",
        &[
            hash.into(),
            a.total.map(|t| t as i64).into(),
            a.received.into(),
            a.complete.into(),
            a.uploaded_by.clone().into(),
            now_us.into(),
        ],
    )?;
    Ok(())
}

pub fn put_chunk(sql: &mut dyn Sql, hash: &str, offset: u64, data: Vec<u8>) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO attachment_chunks (hash, offset_bytes, data) VALUES (?1, ?2, ?3) \
         ON CONFLICT (hash, offset_bytes) DO UPDATE SET data = excluded.data",
        &[hash.into(), offset.into(), V::B(Some(data))],
    )?;
    Ok(())
}

pub fn chunks(sql: &mut dyn Sql, hash: &str) -> Result<Vec<Vec<u8>>, Error> {
    sql.query(
        "SELECT data FROM attachment_chunks WHERE hash = ?1 ORDER BY offset_bytes",
        &[hash.into()],
    )?
    .iter()
    .map(|r| r.blob(0))
    .collect()
}

/// A user's upload in progress: `(total, received)`.
pub fn get_upload(
    sql: &mut dyn Sql,
    hash: &str,
    username: &str,
) -> Result<Option<(u64, u64)>, Error> {
    let rows = sql.query(
        "SELECT total, received FROM attachment_uploads WHERE hash = ?1 AND username = ?2",
        &[hash.into(), username.into()],
    )?;
    rows.first().map(|r| Ok((r.u64(0)?, r.u64(1)?))).transpose()
}

/// Record a chunk of `username`'s upload in progress and its new `received`.
pub fn put_upload_chunk(
    sql: &mut dyn Sql,
    hash: &str,
    username: &str,
    (offset, total): (u64, u64),
    data: Vec<u8>,
    now_us: i64,
) -> Result<(), Error> {
    let received = offset + data.len() as u64;
    sql.exec(
        "INSERT INTO attachment_upload_chunks (hash, username, offset_bytes, data) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (hash, username, offset_bytes) DO UPDATE SET data = excluded.data",
        &[hash.into(), username.into(), offset.into(), V::B(Some(data))],
    )?;
    sql.exec(
        "INSERT INTO attachment_uploads (hash, username, total, received, created_us) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (hash, username) DO UPDATE SET received = excluded.received",
        &[hash.into(), username.into(), total.into(), received.into(), now_us.into()],
    )?;
    Ok(())
}

/// The chunks of `username`'s upload in progress, in order.
pub fn upload_chunks(sql: &mut dyn Sql, hash: &str, username: &str) -> Result<Vec<Vec<u8>>, Error> {
    sql.query(
        "SELECT data FROM attachment_upload_chunks WHERE hash = ?1 AND username = ?2 ORDER BY offset_bytes",
        &[hash.into(), username.into()],
    )?
    .iter()
    .map(|r| r.blob(0))
    .collect()
}

/// Make `username`'s finished, verified upload the stored file (when no one stored it
/// first), then drop the upload.
pub fn promote_upload(
    sql: &mut dyn Sql,
    hash: &str,
    username: &str,
    store: bool,
) -> Result<(), Error> {
    if store {
        sql.exec(
            "INSERT INTO attachment_chunks (hash, offset_bytes, data) \
             SELECT hash, offset_bytes, data FROM attachment_upload_chunks WHERE hash = ?1 AND username = ?2",
            &[hash.into(), username.into()],
        )?;
    }
    delete_upload(sql, hash, username)
}

/// Drop `username`'s upload in progress (no one else's).
pub fn delete_upload(sql: &mut dyn Sql, hash: &str, username: &str) -> Result<(), Error> {
    sql.exec(
        "DELETE FROM attachment_upload_chunks WHERE hash = ?1 AND username = ?2",
        &[hash.into(), username.into()],
    )?;
    sql.exec(
        "DELETE FROM attachment_uploads WHERE hash = ?1 AND username = ?2",
        &[hash.into(), username.into()],
    )?;
    Ok(())
}

/// The bytes `username`'s storage quota counts: the files they hold (sent the verified
/// bytes of) and the full size of each of their uploads in progress.
pub fn storage_used(sql: &mut dyn Sql, username: &str) -> Result<u64, Error> {
    let rows = sql.query(
        "SELECT CAST(COALESCE((SELECT SUM(a.total) FROM attachment_holders h \
         JOIN attachments a ON a.hash = h.hash WHERE h.username = ?1), 0) \
         + COALESCE((SELECT SUM(u.total) FROM attachment_uploads u WHERE u.username = ?1), 0) AS BIGINT)",
        &[username.into()],
    )?;
    rows.first().map_or(Ok(0), |r| r.u64(0))
}

/// `username` sent the verified bytes of `hash` (their claim on it, if any, is met).
pub fn add_holder(sql: &mut dyn Sql, hash: &str, username: &str) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO attachment_holders (hash, username) VALUES (?1, ?2) ON CONFLICT (hash, username) DO NOTHING",
        &[hash.into(), username.into()],
    )?;
    sql.exec(
        "DELETE FROM attachment_claims WHERE hash = ?1 AND username = ?2",
        &[hash.into(), username.into()],
    )?;
    Ok(())
}

/// `username` pushed a reference to `hash` before the server stored it: they may read
/// it only once they send its bytes themselves (issue 19 item 4).
pub fn add_claim(sql: &mut dyn Sql, hash: &str, username: &str) -> Result<(), Error> {
    sql.exec(
        "INSERT INTO attachment_claims (hash, username) VALUES (?1, ?2) ON CONFLICT (hash, username) DO NOTHING",
        &[hash.into(), username.into()],
    )?;
    Ok(())
}

/// Whether `username` sent the verified bytes of `hash`.
pub fn is_holder(sql: &mut dyn Sql, hash: &str, username: &str) -> Result<bool, Error> {
    Ok(!sql
        .query(
            "SELECT 1 FROM attachment_holders WHERE hash = ?1 AND username = ?2",
            &[hash.into(), username.into()],
        )?
        .is_empty())
}

/// Whether a technician may see an attachment: an order assigned to them refers to it.
pub fn attachment_visible_to(sql: &mut dyn Sql, hash: &str, username: &str) -> Result<bool, Error> {
    Ok(!sql
        .query(
            "SELECT 1 FROM order_attachments oa JOIN orders o ON o.id = oa.order_id WHERE oa.hash = ?1 AND o.assignee = ?2 \
             AND NOT EXISTS (SELECT 1 FROM attachment_claims c WHERE c.hash = oa.hash AND c.username = ?2) LIMIT 1",
            &[hash.into(), username.into()],
        )?
        .is_empty())
}

/// Of `hashes`, those not stored and verified.
pub fn missing_attachments(sql: &mut dyn Sql, hashes: &[String]) -> Result<Vec<String>, Error> {
    let mut missing = Vec::new();
    for h in hashes {
        let ok = get_attachment(sql, h)?.is_some_and(|a| a.complete);
        if !ok && !missing.contains(h) {
            missing.push(h.clone());
        }
    }
    Ok(missing)
}

// ---- maintenance ---------------------------------------------------------------------

/// Drop change-log rows, idempotency records and unfinished uploads older than
/// `before_us`. Devices whose cursor is older than what was dropped get
/// `resync_required`.
pub fn prune(sql: &mut dyn Sql, before_us: i64) -> Result<(u64, u64), Error> {
    let rows = sql.query(
        "SELECT COALESCE(MAX(seq), 0) FROM changes WHERE created_us < ?1",
        &[before_us.into()],
    )?;
    let floor = rows.first().map(|r| r.u64(0)).transpose()?.unwrap_or(0);
    let mut dropped = 0;
    if floor > 0 {
        dropped = sql.exec("DELETE FROM changes WHERE seq <= ?1", &[floor.into()])?;
        if floor > log_floor(sql)? {
            meta_set(sql, META_LOG_FLOOR, &floor.to_string())?;
        }
    }
    let idem = sql.exec(
        "DELETE FROM idempotency WHERE created_us < ?1",
        &[before_us.into()],
    )?;
    prune_uploads(sql, before_us)?;
    Ok((dropped, idem))
}

/// Drop the uploads in progress started before `before_us` (never finished: their bytes
/// must not stay for ever; the device starts again from byte 0). Returns how many.
pub fn prune_uploads(sql: &mut dyn Sql, before_us: i64) -> Result<u64, Error> {
    sql.exec(
        "DELETE FROM attachment_upload_chunks WHERE EXISTS (SELECT 1 FROM attachment_uploads u \
         WHERE u.hash = attachment_upload_chunks.hash AND u.username = attachment_upload_chunks.username \
         AND u.created_us < ?1)",
        &[before_us.into()],
    )?;
    sql.exec(
        "DELETE FROM attachment_uploads WHERE created_us < ?1",
        &[before_us.into()],
    )
}

/// A new epoch: every device's cursor becomes foreign and re-primes (after a restore).
pub fn reset_epoch(sql: &mut dyn Sql) -> Result<String, Error> {
    let epoch = Uuid::new_v4().simple().to_string();
    meta_set(sql, META_EPOCH, &epoch)?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::sqlite::SqliteBackend;
    use crate::db::Backend;

    fn change(id: &str) -> NewChange<'_> {
        NewChange {
            entity: "inventory_item",
            entity_id: id,
            version: 1,
            body: r#"{"kind":"tombstone"}"#.to_owned(),
            mutation_ids: &[],
            audience: Audience::All,
            scope_user: None,
            scope_user2: None,
            device_us: None,
        }
    }

    fn seqs(db: &SqliteBackend) -> Result<(u64, Vec<u64>), Error> {
        let mut out = (0, Vec::new());
        db.read(&mut |sql| {
            out.0 = last_seq(sql)?;
            out.1 = sql
                .query("SELECT seq FROM changes ORDER BY seq", &[])?
                .iter()
                .map(|r| r.u64(0))
                .collect::<Result<_, _>>()?;
            Ok(())
        })?;
        Ok(out)
    }

    /// A range is numbered from `last_seq`, recorded once at the end, and rolled back
    /// with its rows; a second writer inside an open range fails instead of reusing a
    /// number.
    #[test]
    fn a_change_log_range_is_gap_free_and_rolls_back_whole() -> Result<(), Error> {
        let dir = tempfile::tempdir().map_err(|e| Error::store(e.to_string()))?;
        let db = SqliteBackend::open(&dir.path().join("log.db"))?;
        db.write(&mut |sql| {
            with_change_log(sql, |sql, log| {
                assert_eq!(log.append(sql, change("a"), 1)?, 1);
                assert_eq!(log.append(sql, change("b"), 1)?, 2);
                assert_eq!(last_seq(sql)?, 0, "written once, at the end");
                Ok(())
            })
        })?;
        assert_eq!(seqs(&db)?, (2, vec![1, 2]));

        let failed = db.write(&mut |sql| {
            with_change_log(sql, |sql, log| {
                log.append(sql, change("c"), 1)?;
                Err(Error::store("the push failed"))
            })
        });
        assert!(failed.is_err());
        assert_eq!(seqs(&db)?, (2, vec![1, 2]), "rows and number rolled back");

        let nested = db.write(&mut |sql| {
            with_change_log(sql, |sql, log| {
                log.append(sql, change("d"), 1)?;
                append_change(sql, change("e"), 1)?;
                Ok(())
            })
        });
        assert!(
            nested.is_err(),
            "a second range in the same transaction fails"
        );
        assert_eq!(seqs(&db)?, (2, vec![1, 2]));

        let mut seq = 0;
        db.write(&mut |sql| {
            seq = append_change(sql, change("f"), 1)?;
            Ok(())
        })?;
        assert_eq!(seq, 3, "the next range follows on");
        assert_eq!(seqs(&db)?, (3, vec![1, 2, 3]));
        Ok(())
    }
}
