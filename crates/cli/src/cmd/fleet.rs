//! `outpost fleet`: every technician's device as the server saw it, worst first — the
//! laptop that has not synced for two days at the top (issue 21). Dispatchers only.
//!
//! The table is the server's (`GET /v1/fleet`, through `core`); this module prints it.
//! Ages are counted from the table's own `as_of` (the server's time), so a wrong clock
//! on this computer does not make a device look late.

use std::path::Path;

use chrono::{DateTime, Utc};
use outpost_core::{ClientOptions, CoreError};
use outpost_protocol::fleet::{DeviceHealth, FleetHealth};

use super::open;
use super::sync::runtime;
use crate::print::{outln, print_json};

pub(crate) fn run(dir: &Path, stale_after: Option<u64>, json: bool) -> Result<(), CoreError> {
    let app = open(dir)?;
    app.require_dispatcher("the fleet view")?;
    let table = runtime()?.block_on(app.fleet_health(&ClientOptions::default(), stale_after))?;
    if json {
        return print_json(&table.items);
    }
    print_table(&table);
    Ok(())
}

/// How long ago, in the largest whole unit: `3m`, `5h`, `2d`.
pub(crate) fn ago(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let secs = now.signed_duration_since(t).num_seconds().max(0);
    match secs {
        s if s < 60 => "now".into(),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// "not seen for 2 days" and the like, for the warning column.
fn unseen(now: DateTime<Utc>, d: &DeviceHealth) -> String {
    let secs = now.signed_duration_since(d.last_seen).num_seconds().max(0);
    let (n, unit) = if secs >= 86_400 {
        (secs / 86_400, "day")
    } else {
        (secs / 3600, "hour")
    };
    format!("not seen for {n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn print_table(t: &FleetHealth) {
    if t.items.is_empty() {
        outln!("No devices have signed in yet.");
        return;
    }
    let now = t.as_of;
    let opt = |x: Option<DateTime<Utc>>| x.map(|x| ago(now, x)).unwrap_or_else(|| "-".into());
    outln!(
        "{:<12} {:<8} {:>6} {:>6} {:>6} {:>7} {:>6} {:>9} {:<9} WARNING",
        "USER",
        "DEVICE",
        "PUSH",
        "PULL",
        "UNSENT",
        "OLDEST",
        "FAILED",
        "CONFLICTS",
        "VERSION"
    );
    for d in &t.items {
        let mut warnings = Vec::new();
        if d.stale {
            warnings.push(unseen(now, d));
        }
        if d.unsent_set_aside.unwrap_or(0) > 0 {
            warnings.push(format!(
                "{} set aside on the device",
                d.unsent_set_aside.unwrap_or(0)
            ));
        }
        outln!(
            "{:<12} {:<8} {:>6} {:>6} {:>6} {:>7} {:>6} {:>9} {:<9} {}",
            d.username,
            &d.device_id.to_string()[..8],
            opt(d.last_push),
            opt(d.last_pull),
            d.unsent
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            opt(d.oldest_unsent),
            d.open_failed_syncs,
            d.open_conflicts,
            d.app_version.as_deref().unwrap_or("?"),
            warnings.join("; ")
        );
    }
    outln!(
        "(ages from the server's clock; devices not seen for {} are flagged)",
        ago(
            now,
            now - chrono::Duration::seconds(t.stale_after_secs as i64)
        )
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_given_in_their_largest_whole_unit() {
        let now = DateTime::from_timestamp(1_000_000, 0).expect("a time");
        let before = |s: i64| now - chrono::Duration::seconds(s);
        assert_eq!(ago(now, before(10)), "now");
        assert_eq!(ago(now, before(600)), "10m");
        assert_eq!(ago(now, before(5 * 3600)), "5h");
        assert_eq!(ago(now, before(2 * 86_400 + 5)), "2d");
    }
}
