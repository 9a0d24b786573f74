//! Fleet sync health (issue 21 item 1): what the server saw of each device, for the
//! dispatcher's Fleet screen and `outpost fleet`.
//!
//! Two halves. [`seen`] keeps, per device and user, the time of the last push and the
//! last pull page the server answered, and the app version the device named in its
//! `User-Agent` (`outpost/<version>`). A device pulls page after page and syncs every
//! few seconds, so a time is written at most once a minute per device and kind
//! ([`Ledger`], one per process; the table is "within about a minute"), never inside the
//! push's own transaction. [`health`] builds the table: the devices of enabled users,
//! what they last reported unsent (`crate::unsent`), their open failed syncs and
//! conflicts (counted from the open records' device ids), and whether each has gone
//! unseen too long, sorted worst first by `outpost_protocol::fleet`.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use outpost_protocol::fleet::{sort_worst_first, DeviceHealth, FleetHealth};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::Principal;
use crate::db::Sql;
use crate::error::Error;
use crate::http::AppState;
use crate::repo::{self, Activity};

/// A time already written less than this long ago is not written again.
const WRITE_EVERY_US: i64 = 60 * 1_000_000;

/// The longest app version kept from a `User-Agent`.
const VERSION_MAX: usize = 40;

/// Whose time it is: a device, its user, and push or pull.
type Key = (Uuid, String, Activity);

/// What this process last wrote per device, user and kind: when, and the version.
#[derive(Debug, Default)]
pub struct Ledger {
    last: Mutex<HashMap<Key, (i64, Option<String>)>>,
}

impl Ledger {
    fn needs_write(&self, key: &Key, now_us: i64, version: &Option<String>) -> bool {
        let Ok(last) = self.last.lock() else {
            return true;
        };
        match last.get(key) {
            None => true,
            Some((at, v)) => now_us - at >= WRITE_EVERY_US || v != version,
        }
    }

    fn written(&self, key: Key, now_us: i64, version: Option<String>) {
        if let Ok(mut last) = self.last.lock() {
            last.insert(key, (now_us, version));
        }
    }
}

/// The app version in a `User-Agent` of the form `outpost/<version>` (what the device
/// crates send), bounded and printable; anything else is not a version.
pub fn app_version(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(header::USER_AGENT)?.to_str().ok()?;
    let v = ua.split_whitespace().next()?.strip_prefix("outpost/")?;
    (!v.is_empty()
        && v.len() <= VERSION_MAX
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c)))
    .then(|| v.to_owned())
}

/// Note that the server answered `who`'s push or pull. Never fails the request: a
/// store error is logged.
pub async fn seen(app: &AppState, who: &Principal, activity: Activity, headers: &HeaderMap) {
    let now_us = app.cfg.now_us();
    let version = app_version(headers);
    let key = (who.device_id, who.username.clone(), activity);
    if !app.fleet.needs_write(&key, now_us, &version) {
        return;
    }
    let (device, username, v) = (who.device_id, who.username.clone(), version.clone());
    match app
        .db
        .write(move |sql| {
            repo::record_activity(sql, device, &username, activity, now_us, v.as_deref())
        })
        .await
    {
        Ok(()) => app.fleet.written(key, now_us, version),
        Err(e) => tracing::warn!(user = %who.username, device = %who.device_id,
            "the time of the device's {activity:?} was not kept: {e}"),
    }
}

/// The part of a conflict's or failed sync's body that says whose it is.
#[derive(Deserialize)]
struct RecordHead {
    username: String,
    device_id: Uuid,
}

fn time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Open records per device and user, from their bodies. A body that does not read
/// is left out of the counts (and logged), never a failed table.
fn open_per_device(sql: &mut dyn Sql, table: &str) -> Result<HashMap<(Uuid, String), u64>, Error> {
    let mut out = HashMap::new();
    for body in repo::open_record_bodies(sql, table)? {
        match serde_json::from_str::<RecordHead>(&body) {
            Ok(h) => *out.entry((h.device_id, h.username)).or_insert(0) += 1,
            Err(e) => tracing::warn!("an open record in {table} does not read: {e}"),
        }
    }
    Ok(out)
}

/// The fleet's health at `now`, worst first.
pub fn health(
    sql: &mut dyn Sql,
    now: DateTime<Utc>,
    stale_after_secs: u64,
) -> Result<FleetHealth, Error> {
    let failed = open_per_device(sql, "failed_syncs")?;
    let conflicts = open_per_device(sql, "conflicts")?;
    let mut items: Vec<DeviceHealth> = repo::fleet_devices(sql)?
        .into_iter()
        .map(|d| {
            let key = (d.device_id, d.username.clone());
            let mut h = DeviceHealth {
                username: d.username,
                device_id: d.device_id,
                first_seen: time(d.first_seen_us),
                last_seen: time(d.last_seen_us),
                last_push: d.last_push_us.map(time),
                last_pull: d.last_pull_us.map(time),
                unsent: d.unsent.as_ref().map(|u| u.count.max(0) as u64),
                unsent_set_aside: d.unsent.as_ref().map(|u| u.set_aside.max(0) as u64),
                oldest_unsent: d.unsent.as_ref().and_then(|u| u.oldest_unsent_us).map(time),
                open_failed_syncs: failed.get(&key).copied().unwrap_or(0),
                open_conflicts: conflicts.get(&key).copied().unwrap_or(0),
                app_version: d.app_version,
                stale: false,
            };
            h.stale = h.is_stale(now, stale_after_secs);
            h
        })
        .collect();
    sort_worst_first(&mut items);
    Ok(FleetHealth {
        as_of: now,
        stale_after_secs,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ua(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_str(v).expect("a header value"),
        );
        h
    }

    #[test]
    fn the_app_version_is_read_from_an_outpost_user_agent_only() {
        assert_eq!(app_version(&ua("outpost/0.3.0")).as_deref(), Some("0.3.0"));
        assert_eq!(app_version(&ua("curl/8.0")), None);
        assert_eq!(app_version(&ua("outpost/<script>")), None);
        assert_eq!(app_version(&HeaderMap::new()), None);
    }

    #[test]
    fn a_time_is_written_again_only_after_a_minute_or_with_a_new_version() {
        let ledger = Ledger::default();
        let key = (Uuid::nil(), "tech1".to_owned(), Activity::Pull);
        let v = Some("0.3.0".to_owned());
        assert!(ledger.needs_write(&key, 0, &v));
        ledger.written(key.clone(), 0, v.clone());
        assert!(!ledger.needs_write(&key, 59_000_000, &v));
        assert!(ledger.needs_write(&key, 60_000_000, &v));
        assert!(ledger.needs_write(&key, 1, &Some("0.4.0".to_owned())));
    }
}
