//! Time worked on an order: start a timer, stop it. Each is one user action (one local
//! transaction and one outbox entry), like every edit.
//!
//! Rules kept here rather than in the UI: one running timer per order (starting a
//! second while one runs is refused with a field error), and stopping names the
//! entry so that a stop made on a stale screen cannot end another timer. Editing or
//! deleting entries afterwards is left out (a dispatcher's correction, later).

use outpost_protocol::mutation::ListItem;
use outpost_protocol::{MutationKind, Op, SetOp, TimeEntry, ValidationErrors};
use uuid::Uuid;

use crate::{CoreError, OrderRow, Outpost};

impl Outpost {
    /// Start a timer on the order (a new open time entry).
    pub fn start_time_entry(&mut self, reference: &str) -> Result<OrderRow, CoreError> {
        let current = self.order(reference)?.order;
        if current.time_entries.iter().any(|t| t.ended_at.is_none()) {
            return Err(ValidationErrors::single(
                "time_entries",
                "already_running",
                "a timer is already running on this order: stop it first",
            )
            .into());
        }
        let now = self.clock_now();
        let ops = vec![Op::Add(ListItem::TimeEntries(TimeEntry {
            id: Uuid::now_v7(),
            started_at: now,
            ended_at: None,
            note: String::new(),
        }))];
        let m = self.mutation(current.id, MutationKind::Update, current.version, ops);
        self.store().record(m, now)?;
        self.order(&current.id.to_string())
    }

    /// Stop the running timer `entry_id` on the order.
    pub fn stop_time_entry(
        &mut self,
        reference: &str,
        entry_id: &str,
    ) -> Result<OrderRow, CoreError> {
        let current = self.order(reference)?.order;
        let entry = Uuid::parse_str(entry_id)
            .ok()
            .and_then(|id| current.time_entries.iter().find(|t| t.id == id));
        let Some(entry) = entry else {
            return Err(CoreError::NotFound(format!(
                "time entry {entry_id} is not on this order"
            )));
        };
        if entry.ended_at.is_some() {
            return Err(ValidationErrors::single(
                format!("time_entries.{entry_id}"),
                "not_running",
                "this timer was already stopped",
            )
            .into());
        }
        let now = self.clock_now().max(entry.started_at);
        let ops = vec![Op::Set(SetOp::TimeEntryEnded {
            entry_id: entry.id,
            ended_at: now,
        })];
        let m = self.mutation(current.id, MutationKind::Update, current.version, ops);
        self.store().record(m, now)?;
        self.order(&current.id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::{Duration, TimeZone, Utc};

    use crate::{FixedClock, KeyEnv, MemoryCredentialStore, OpenOptions, Outpost, SyncState};

    fn open(dir: &std::path::Path, clock: Arc<FixedClock>) -> Outpost {
        let opts = OpenOptions {
            data_dir: dir.to_path_buf(),
            credentials: Arc::new(MemoryCredentialStore::default()),
            env: KeyEnv::default(),
            clock,
        };
        Outpost::init(opts, None).expect("init")
    }

    #[test]
    fn a_timer_starts_stops_and_is_saved_on_this_device() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t0 = Utc
            .with_ymd_and_hms(2026, 11, 2, 8, 0, 0)
            .single()
            .expect("time");
        let clock = Arc::new(FixedClock::new(t0));
        let mut o = open(dir.path(), clock.clone());
        o.load_demo_data().expect("demo");
        let id = o.orders().expect("orders")[0].order.id.to_string();

        let row = o.start_time_entry(&id).expect("start");
        assert_eq!(
            row.sync_state,
            SyncState::Saved,
            "a local action waits for sync"
        );
        let entry = row.order.time_entries[0].id.to_string();
        let again = o
            .start_time_entry(&id)
            .expect_err("one running timer per order");
        assert_eq!(again.code(), "invalid");

        clock.advance(Duration::minutes(42));
        let row = o.stop_time_entry(&id, &entry).expect("stop");
        assert_eq!(
            row.order.time_entries[0].ended_at,
            Some(t0 + Duration::minutes(42))
        );
        let twice = o.stop_time_entry(&id, &entry).expect_err("already stopped");
        assert_eq!(twice.code(), "invalid");
        let unknown = o
            .stop_time_entry(&id, "not-an-id")
            .expect_err("unknown entry");
        assert_eq!(unknown.code(), "not_found");
    }
}
