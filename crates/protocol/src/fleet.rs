//! Fleet sync health (issue 21 item 1): one row per technician and device, as the
//! server saw them, for a dispatcher who needs to call the technician whose laptop has
//! not synced for two days.
//!
//! The wire types ([`FleetHealth`], [`DeviceHealth`]) and the two rules both sides use:
//! when a device counts as not seen ([`DeviceHealth::is_stale`]) and the order of the
//! table, worst first ([`sort_worst_first`]). Pure functions: "now" is passed in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long a device may go unseen before the table warns about it, by default.
pub const STALE_AFTER_SECS_DEFAULT: u64 = 24 * 60 * 60;

/// `GET /v1/fleet`: every device the server knows, worst first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetHealth {
    /// The server's time when the table was made.
    #[serde(serialize_with = "crate::time_json::utc")]
    pub as_of: DateTime<Utc>,
    /// Devices not seen for longer than this are `stale`.
    pub stale_after_secs: u64,
    pub items: Vec<DeviceHealth>,
}

/// One technician (or dispatcher) on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceHealth {
    pub username: String,
    pub device_id: Uuid,
    /// First sign-in of this user on this device.
    #[serde(serialize_with = "crate::time_json::utc")]
    pub first_seen: DateTime<Utc>,
    /// The last time the server heard from the device at all (sign-in, token refresh,
    /// push, pull or a report of unsent work).
    #[serde(serialize_with = "crate::time_json::utc")]
    pub last_seen: DateTime<Utc>,
    /// The last push the server answered (within about a minute).
    #[serde(default, serialize_with = "crate::time_json::opt_utc")]
    pub last_push: Option<DateTime<Utc>>,
    /// The last pull page the server answered (within about a minute).
    #[serde(default, serialize_with = "crate::time_json::opt_utc")]
    pub last_pull: Option<DateTime<Utc>>,
    /// Changes the device last reported it has not had accepted (`x-outpost-unsent`);
    /// absent when it never reported (releases before 0.3).
    #[serde(default)]
    pub unsent: Option<u64>,
    /// Of those, set aside by the device itself (the server never saw them).
    #[serde(default)]
    pub unsent_set_aside: Option<u64>,
    /// When the oldest unsent change was made, in the server's time.
    #[serde(default, serialize_with = "crate::time_json::opt_utc")]
    pub oldest_unsent: Option<DateTime<Utc>>,
    /// Open failed syncs of this user made on this device.
    pub open_failed_syncs: u64,
    /// Open conflicts of this user made on this device.
    pub open_conflicts: u64,
    /// The app's version, from the device's last push or pull (its `User-Agent`).
    #[serde(default)]
    pub app_version: Option<String>,
    /// Not seen for longer than `stale_after_secs`.
    pub stale: bool,
}

impl DeviceHealth {
    /// Not seen for longer than `stale_after_secs` at `now`.
    pub fn is_stale(&self, now: DateTime<Utc>, stale_after_secs: u64) -> bool {
        let unseen = now.signed_duration_since(self.last_seen).num_seconds();
        unseen > i64::try_from(stale_after_secs).unwrap_or(i64::MAX)
    }

    /// Work waiting for a person or held on the device: failed syncs, conflicts,
    /// changes the device set aside.
    pub fn needs_a_person(&self) -> u64 {
        self.open_failed_syncs
            .saturating_add(self.open_conflicts)
            .saturating_add(self.unsent_set_aside.unwrap_or(0))
    }
}

/// Worst first: devices not seen for too long (the longest unseen first), then those
/// with work waiting for a person (the most first), then those holding unsent changes
/// (the oldest first), then the rest, least recently seen first. Ties by user and
/// device, so the order is the same on every call.
pub fn sort_worst_first(items: &mut [DeviceHealth]) {
    items.sort_by(|a, b| {
        b.stale
            .cmp(&a.stale)
            .then_with(|| {
                if a.stale {
                    a.last_seen.cmp(&b.last_seen)
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .then_with(|| b.needs_a_person().cmp(&a.needs_a_person()))
            .then_with(|| match (a.oldest_unsent, b.oldest_unsent) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
            .then_with(|| a.last_seen.cmp(&b.last_seen))
            .then_with(|| a.username.cmp(&b.username))
            .then_with(|| a.device_id.cmp(&b.device_id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn device(user: &str, hours_ago: i64) -> DeviceHealth {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 7, 12, 0, 0)
            .single()
            .expect("a valid time");
        let seen = now - chrono::Duration::hours(hours_ago);
        DeviceHealth {
            username: user.into(),
            device_id: Uuid::nil(),
            first_seen: seen,
            last_seen: seen,
            last_push: None,
            last_pull: None,
            unsent: None,
            unsent_set_aside: None,
            oldest_unsent: None,
            open_failed_syncs: 0,
            open_conflicts: 0,
            app_version: None,
            stale: hours_ago > 24,
        }
    }

    #[test]
    fn a_device_unseen_past_the_limit_is_stale_and_one_seen_within_it_is_not() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 7, 12, 0, 0)
            .single()
            .expect("a valid time");
        assert!(device("a", 48).is_stale(now, STALE_AFTER_SECS_DEFAULT));
        assert!(!device("b", 23).is_stale(now, STALE_AFTER_SECS_DEFAULT));
        assert!(device("b", 23).is_stale(now, 3600));
    }

    #[test]
    fn the_table_is_sorted_worst_first() {
        let ok = device("ok", 1);
        let long_gone = device("gone", 72);
        let gone = device("away", 48);
        let mut failing = device("failing", 1);
        failing.open_failed_syncs = 2;
        let mut holding = device("holding", 1);
        holding.unsent = Some(3);
        holding.oldest_unsent = Some(holding.last_seen - chrono::Duration::hours(5));
        let mut items = vec![ok, holding, gone, failing, long_gone];
        sort_worst_first(&mut items);
        let names: Vec<_> = items.iter().map(|d| d.username.as_str()).collect();
        assert_eq!(names, ["gone", "away", "failing", "holding", "ok"]);
    }
}
