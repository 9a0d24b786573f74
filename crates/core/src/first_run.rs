//! First run of the desktop app before sign-in exists in `core`: "work offline with a
//! local demo" initialises the data directory (its key as `init` chooses), records the
//! user's name and loads demo data, as one use case so the shell's command stays a line.
//!
//! Also the demo fleet: any number of generated orders (today, upcoming, completed) for
//! the search and cold-start benchmarks, which need 10,000 orders on the device.
//! Sign-in against a server replaces the demo once the sync engine lands; this file
//! does not talk to any server.

use chrono::{DateTime, Duration, Utc};
use outpost_protocol::{Signature, Status, WorkOrder};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::{demo, CoreError, OpenOptions, Outpost};

/// How many orders the plain demo has; asking for more generates a fleet.
pub const DEMO_ORDERS: usize = 5;

/// The largest demo fleet (bounds the generator).
pub const DEMO_FLEET_MAX: usize = 100_000;

impl OpenOptions {
    /// The same options, opening with `passphrase` (the app's unlock prompt).
    pub fn with_passphrase(mut self, passphrase: &str) -> OpenOptions {
        self.env.passphrase = Some(Zeroizing::new(passphrase.to_owned()));
        self
    }
}

impl Outpost {
    /// Initialise `opts.data_dir` and load demo data for `username`: the plain demo
    /// when `orders` is at most [`DEMO_ORDERS`], else a generated fleet of that size.
    /// The name is checked before anything is created.
    pub fn start_local_demo(
        opts: OpenOptions,
        passphrase: Option<&str>,
        username: &str,
        orders: usize,
    ) -> Result<Outpost, CoreError> {
        if username.trim().is_empty() {
            return Err(outpost_protocol::ValidationErrors::single(
                "username",
                "required",
                "type your name: it is written on your notes",
            )
            .into());
        }
        if let Some(p) = passphrase {
            let mut errors = outpost_protocol::ValidationErrors::default();
            crate::rules::check_passphrase(p, &mut errors);
            errors.into_result()?;
        }
        let mut o = Outpost::init(opts, passphrase)?;
        o.set_username(username)?;
        if orders <= DEMO_ORDERS {
            o.load_demo_data()?;
        } else {
            o.load_demo_fleet(orders)?;
        }
        Ok(o)
    }

    /// Load `count` generated orders (at most [`DEMO_FLEET_MAX`]) plus the demo
    /// inventory, as if pulled from a server.
    pub fn load_demo_fleet(&mut self, count: usize) -> Result<usize, CoreError> {
        let now = self.clock_now();
        let user = self.username()?;
        let fleet = demo_fleet(now, &user, count.min(DEMO_FLEET_MAX));
        let mut written = 0;
        for chunk in fleet.chunks(2_000) {
            written += self.store().put_server_orders(chunk, now)?;
        }
        self.store().put_inventory(&demo::inventory(&user))?;
        Ok(written)
    }
}

/// `count` orders made from the demo templates: a tenth completed in the past weeks,
/// a fifth today, the rest spread over the coming 60 days.
pub fn demo_fleet(now: DateTime<Utc>, assignee: &str, count: usize) -> Vec<WorkOrder> {
    let templates = demo::orders(now, assignee);
    (0..count)
        .filter_map(|i| {
            let mut o = templates.get(i % templates.len())?.clone();
            o.id = Uuid::now_v7();
            o.number = Some(10_001 + i as u64);
            o.title = format!("{} #{}", o.title, i + 1);
            let offset = match i % 10 {
                0 => Duration::days(-((i % 30) as i64) - 1),
                1 | 2 => Duration::minutes((i % 600) as i64),
                _ => Duration::hours(24 + (i % (60 * 24)) as i64),
            };
            if let Some(w) = o.scheduled.as_mut() {
                w.start = now + offset;
                w.end = w.start + Duration::hours(2);
            }
            if i % 10 == 0 {
                o.status = Status::Completed;
                o.completed_at = Some(now + offset + Duration::hours(1));
                for c in &mut o.checklist {
                    c.done = true;
                }
                o.signature = Some(Signature {
                    hash: "0".repeat(64),
                    signer: o.customer.name.clone(),
                });
            }
            Some(o)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{KeyEnv, MemoryCredentialStore, SystemClock};

    fn opts(dir: &std::path::Path) -> OpenOptions {
        OpenOptions {
            data_dir: dir.to_path_buf(),
            credentials: Arc::new(MemoryCredentialStore::default()),
            env: KeyEnv::default(),
            clock: Arc::new(SystemClock),
        }
    }

    #[test]
    fn a_local_demo_needs_a_name_and_creates_nothing_without_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Outpost::start_local_demo(opts(dir.path()), None, "  ", 5)
            .expect_err("a name is required");
        assert_eq!(err.code(), "invalid");
        assert!(!Outpost::is_initialized(dir.path()), "nothing was created");
    }

    #[test]
    fn a_local_demo_writes_notes_as_the_user_and_a_fleet_has_the_asked_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Outpost::start_local_demo(opts(dir.path()), None, "Kari", 5).expect("demo");
        assert_eq!(o.username().expect("name"), "Kari");
        assert_eq!(o.orders().expect("orders").len(), DEMO_ORDERS);

        let dir = tempfile::tempdir().expect("tempdir");
        let o = Outpost::start_local_demo(opts(dir.path()), None, "Kari", 1200).expect("fleet");
        let orders = o.orders().expect("orders");
        assert_eq!(orders.len(), 1200);
        assert!(orders.iter().any(|r| r.order.status == Status::Completed));
    }
}
