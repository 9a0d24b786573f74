//! What each device reports it has not sent (the `x-outpost-unsent` header, issue 15
//! item 5), kept per device and user so that a fleet view can show a device that holds
//! work back: changes waiting, changes the device set aside itself (which the server
//! never saw), and how old the oldest is.
//!
//! Every authenticated request may carry the header ([`record`], called by the auth
//! guard in `http.rs`). It is optional (devices of earlier releases never send it) and
//! an unreadable value never fails a request: the figures are then only not recorded.
//! A device repeats the same figures on every request, so they are written only when
//! they change, when the oldest change's time moves by more than a minute, or when the
//! stored ones are five minutes old ([`Ledger`], one per server process; two processes
//! over one database each write on their own schedule, which is harmless). Left out on
//! purpose: showing the figures (the fleet view's job, #16: `repo::device_unsent`).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use outpost_protocol::unsent::UnsentReport;
use outpost_protocol::wire::UNSENT_HEADER;
use uuid::Uuid;

use crate::auth::Principal;
use crate::http::AppState;
use crate::repo::{self, UnsentFigures};

/// Stored figures older than this are written again even when unchanged, so that the
/// time they were reported stays recent for a device that keeps syncing.
const REFRESH_US: i64 = 5 * 60 * 1_000_000;

/// The oldest change's time (server time minus the reported age) moves by the length
/// of a request between two reports; more than this is a change worth writing.
const OLDEST_DRIFT_US: i64 = 60 * 1_000_000;

/// The figures last written for each device and user by this process.
#[derive(Debug, Default)]
pub struct Ledger {
    last: Mutex<HashMap<(Uuid, String), UnsentFigures>>,
}

impl Ledger {
    /// Whether `new` differs enough from what this process last wrote to write it.
    fn needs_write(&self, key: &(Uuid, String), new: &UnsentFigures) -> bool {
        let Ok(last) = self.last.lock() else {
            return true;
        };
        let Some(old) = last.get(key) else {
            return true;
        };
        let drifted = match (old.oldest_unsent_us, new.oldest_unsent_us) {
            (Some(a), Some(b)) => (a - b).abs() > OLDEST_DRIFT_US,
            (a, b) => a.is_some() != b.is_some(),
        };
        old.count != new.count
            || old.set_aside != new.set_aside
            || drifted
            || new.reported_us - old.reported_us > REFRESH_US
    }

    fn written(&self, key: (Uuid, String), figures: UnsentFigures) {
        if let Ok(mut last) = self.last.lock() {
            last.insert(key, figures);
        }
    }
}

/// The figures to keep for a report received at `now_us`.
pub fn figures(report: &UnsentReport, now_us: i64) -> UnsentFigures {
    UnsentFigures {
        count: report.count.min(i64::MAX as u64) as i64,
        set_aside: report.set_aside.min(i64::MAX as u64) as i64,
        oldest_unsent_us: report.oldest_secs.map(|s| {
            now_us.saturating_sub((s.min(i64::MAX as u64 / 1_000_000) as i64) * 1_000_000)
        }),
        reported_us: now_us,
    }
}

/// Keep the report a request from `who` carries, if it carries a readable one. Never
/// fails the request: a store error is logged.
pub async fn record(app: &AppState, who: &Principal, headers: &HeaderMap) {
    let Some(value) = headers.get(UNSENT_HEADER) else {
        return;
    };
    let Some(report) = value.to_str().ok().and_then(UnsentReport::parse) else {
        tracing::debug!(user = %who.username, device = %who.device_id, "unreadable {UNSENT_HEADER} header ignored");
        return;
    };
    let new = figures(&report, app.cfg.now_us());
    let key = (who.device_id, who.username.clone());
    if !app.unsent.needs_write(&key, &new) {
        return;
    }
    let (device, username, stored) = (who.device_id, who.username.clone(), new.clone());
    match app
        .db
        .write(move |sql| repo::record_unsent(sql, device, &username, &stored))
        .await
    {
        Ok(()) => app.unsent.written(key, new),
        Err(e) => {
            tracing::warn!(user = %who.username, device = %who.device_id, "the device's report of unsent work was not kept: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(count: i64, oldest: Option<i64>, reported_us: i64) -> UnsentFigures {
        UnsentFigures {
            count,
            set_aside: 0,
            oldest_unsent_us: oldest,
            reported_us,
        }
    }

    #[test]
    fn the_same_figures_are_written_again_only_when_they_change_or_grow_old() {
        let ledger = Ledger::default();
        let key = (Uuid::nil(), "tech1".to_owned());
        let first = at(2, Some(1_000_000), 10_000_000);
        assert!(ledger.needs_write(&key, &first), "nothing written yet");
        ledger.written(key.clone(), first);
        let s = 1_000_000;
        assert!(
            !ledger.needs_write(&key, &at(2, Some(2 * s), 40 * s)),
            "a second later"
        );
        assert!(
            ledger.needs_write(&key, &at(3, Some(s), 11 * s)),
            "one more"
        );
        assert!(
            ledger.needs_write(&key, &at(2, Some(90 * s), 100 * s)),
            "another oldest"
        );
        assert!(ledger.needs_write(&key, &at(2, None, 11 * s)), "none left");
        assert!(
            ledger.needs_write(&key, &at(2, Some(s), 400 * s)),
            "five minutes on"
        );
    }

    #[test]
    fn the_oldest_change_is_kept_in_the_servers_time() {
        let f = figures(
            &UnsentReport {
                count: 2,
                set_aside: 1,
                oldest_secs: Some(30),
            },
            100_000_000,
        );
        assert_eq!(f.oldest_unsent_us, Some(70_000_000));
        assert_eq!((f.count, f.set_aside, f.reported_us), (2, 1, 100_000_000));
    }
}
