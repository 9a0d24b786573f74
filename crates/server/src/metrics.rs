//! Prometheus text metrics, counted in memory per instance: requests by route and
//! status, request time, push outcomes, pulled rows, failed logins. Small on purpose:
//! enough to alert on error rates and sync health without a metrics dependency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::push::PushStats;

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    request_micros_total: AtomicU64,
    push_applied: AtomicU64,
    push_conflicts: AtomicU64,
    push_duplicates: AtomicU64,
    push_rejected: AtomicU64,
    push_missing: AtomicU64,
    push_held: AtomicU64,
    pull_rows: AtomicU64,
    pull_bytes: AtomicU64,
    login_failures: AtomicU64,
}

impl Metrics {
    pub fn request(&self, method: &str, route: &str, status: u16, micros: u64) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        // Routes are the matched templates, so the key space stays small.
        *m.entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        self.request_micros_total
            .fetch_add(micros, Ordering::Relaxed);
    }

    pub fn push(&self, s: PushStats) {
        self.push_applied.fetch_add(s.applied, Ordering::Relaxed);
        self.push_conflicts
            .fetch_add(s.conflicts, Ordering::Relaxed);
        self.push_duplicates
            .fetch_add(s.duplicates, Ordering::Relaxed);
        self.push_rejected.fetch_add(s.rejected, Ordering::Relaxed);
        self.push_missing.fetch_add(s.missing, Ordering::Relaxed);
        self.push_held.fetch_add(s.held, Ordering::Relaxed);
    }

    pub fn pull(&self, rows: u64, bytes: u64) {
        self.pull_rows.fetch_add(rows, Ordering::Relaxed);
        self.pull_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn login_failure(&self) {
        self.login_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, backend: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP outpost_http_requests_total HTTP requests by method, route and status."
        );
        let _ = writeln!(out, "# TYPE outpost_http_requests_total counter");
        for ((method, route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "outpost_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP outpost_http_request_seconds_total Time spent answering requests."
        );
        let _ = writeln!(out, "# TYPE outpost_http_request_seconds_total counter");
        let _ = writeln!(
            out,
            "outpost_http_request_seconds_total {}",
            self.request_micros_total.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP outpost_push_mutations_total Pushed mutations by outcome."
        );
        let _ = writeln!(out, "# TYPE outpost_push_mutations_total counter");
        for (label, v) in [
            ("applied", &self.push_applied),
            ("applied_with_conflicts", &self.push_conflicts),
            ("duplicate", &self.push_duplicates),
            ("rejected", &self.push_rejected),
            ("missing_attachments", &self.push_missing),
            ("held_behind", &self.push_held),
        ] {
            let _ = writeln!(
                out,
                "outpost_push_mutations_total{{outcome=\"{label}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE outpost_pull_rows_total counter");
        let _ = writeln!(
            out,
            "outpost_pull_rows_total {}",
            self.pull_rows.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE outpost_pull_bytes_total counter");
        let _ = writeln!(
            out,
            "outpost_pull_bytes_total {}",
            self.pull_bytes.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE outpost_login_failures_total counter");
        let _ = writeln!(
            out,
            "outpost_login_failures_total {}",
            self.login_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# TYPE outpost_info gauge");
        let _ = writeln!(
            out,
            "outpost_info{{backend=\"{backend}\",protocol=\"{}\"}} 1",
            outpost_protocol::PROTOCOL_VERSION
        );
        out
    }
}
