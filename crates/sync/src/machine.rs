//! The engine's decisions, with no I/O: events in, instructions out.
//!
//! The machine decides *when* to probe the server, run a sync pass or sleep; the
//! driver (`task.rs`) carries the instructions out and reports what happened as
//! events. Time is a number of milliseconds since the engine started and randomness
//! comes from a seeded generator, so every race is a deterministic test below.
//!
//! Rules:
//! - Online means the server's health endpoint answered. While offline the machine
//!   probes with capped exponential backoff and jitter; an OS network change probes at
//!   once.
//! - While online it syncs on a timer, after local writes (debounced), and when a
//!   retry comes due. A failed upload is retried by the timer and on reconnect, never
//!   only on the next local write.
//! - A failed pass is retried with its own capped backoff, which grows with every pass
//!   that fails in a row and resets only when one succeeds: a probe that answers in
//!   between does not reset it (a server whose health answers while every pass fails
//!   is not hammered once a second).
//! - A manual "sync now" runs a pass at once that ignores any backoff. So does the first
//!   pass after a reconnect (a probe answers after the server could not be reached):
//!   the per-row retry times of work deferred meanwhile are cleared.
//! - One pass at a time; what arrives during a pass is remembered and acted on after.
//! - A revoked device or disabled user stops the engine's passes until the person signs
//!   in again (the embedder says so with `SignedIn`: a pass runs at once and the timers
//!   run again) or asks for a manual sync. A sign-in during a pass that then ends in
//!   "sign in required" (it ran on the old session) runs a new pass at once.

use serde::Serialize;

/// Milliseconds since the engine started.
pub type Millis = u64;

/// What a person sees in the sync indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "reason", rename_all = "snake_case")]
pub enum Connectivity {
    Offline,
    Online,
    Syncing,
    /// The server answered but the pass failed (a server error, a bad answer).
    Error(String),
    /// Tokens will never work again: sign in again (unsynced work is kept).
    SignInRequired(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started,
    /// A wake-up the machine asked for has come.
    Tick,
    /// The user saved something (debounced).
    LocalWrite,
    /// The user pressed "sync now".
    SyncNow,
    /// The operating system reports a network change.
    NetworkChanged,
    ProbeOk,
    ProbeFailed(String),
    /// A pass finished. `retry_at`: the earliest deferred retry, if any waits.
    PassOk {
        retry_at: Option<Millis>,
    },
    /// A pass failed. `offline`: the server could not be reached at all.
    PassFailed {
        offline: bool,
        reason: String,
        retry_after: Option<Millis>,
    },
    SignInRequired(String),
    /// The person signed in (again): new tokens are stored.
    SignedIn,
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Probe,
    RunPass {
        ignore_backoff: bool,
    },
    /// Wake the machine (with `Tick`) at this time, replacing any earlier request.
    WakeAt(Millis),
    Publish(Connectivity),
    Exit,
}

/// Tunables, all bounded.
#[derive(Debug, Clone)]
pub struct Timing {
    pub probe_backoff_min_ms: Millis,
    pub probe_backoff_max_ms: Millis,
    pub periodic_ms: Millis,
    pub debounce_ms: Millis,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            probe_backoff_min_ms: 1_000,
            probe_backoff_max_ms: 60_000,
            periodic_ms: 30_000,
            debounce_ms: 500,
        }
    }
}

/// Capped exponential backoff with "equal jitter": half fixed, half random.
pub fn backoff_ms(attempt: u32, min: Millis, max: Millis, random: u64) -> Millis {
    let exp = min.saturating_mul(1u64 << attempt.min(20));
    let cap = exp.min(max).max(min);
    let half = cap / 2;
    half + random % (half + 1)
}

#[derive(Debug)]
pub struct Machine {
    timing: Timing,
    state: Connectivity,
    /// Probes failed in a row (reset when one answers, or by a network change).
    failures: u32,
    /// Passes failed in a row, whatever the probes between them said: reset only by a
    /// pass that succeeds, so a server whose health answers while every pass fails is
    /// tried less and less often.
    pass_failures: u32,
    /// The server stopped answering (a probe, or a pass, could not reach it): the next
    /// probe that answers is a reconnect.
    lost: bool,
    in_flight: bool,
    /// A local write or timer asked for a pass while one was running.
    again: bool,
    manual: bool,
    /// A sign-in came during the running step, which may have run on the old session.
    signed_in_meanwhile: bool,
    rng: u64,
    stopped: bool,
}

impl Machine {
    pub fn new(timing: Timing, seed: u64) -> Machine {
        Machine {
            timing,
            state: Connectivity::Offline,
            failures: 0,
            pass_failures: 0,
            lost: false,
            in_flight: false,
            again: false,
            manual: false,
            signed_in_meanwhile: false,
            rng: seed | 1,
            stopped: false,
        }
    }

    pub fn state(&self) -> &Connectivity {
        &self.state
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: plenty for jitter, and reproducible in tests.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// The wait after the `failures`-th failure in a row (probes and passes have their
    /// own counts, within the same bounds).
    fn backoff(&mut self, failures: u32) -> Millis {
        let r = self.random();
        backoff_ms(
            failures.saturating_sub(1),
            self.timing.probe_backoff_min_ms,
            self.timing.probe_backoff_max_ms,
            r,
        )
    }

    fn set(&mut self, state: Connectivity, out: &mut Vec<Instruction>) {
        if self.state != state {
            self.state = state.clone();
            out.push(Instruction::Publish(state));
        }
    }

    fn start_pass(&mut self, ignore_backoff: bool, out: &mut Vec<Instruction>) {
        self.in_flight = true;
        self.again = false;
        self.signed_in_meanwhile = false;
        self.set(Connectivity::Syncing, out);
        out.push(Instruction::RunPass { ignore_backoff });
    }

    fn probe(&mut self, out: &mut Vec<Instruction>) {
        self.in_flight = true;
        out.push(Instruction::Probe);
    }

    pub fn handle(&mut self, now: Millis, event: Event) -> Vec<Instruction> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        let signed_out = matches!(self.state, Connectivity::SignInRequired(_));
        match event {
            Event::Stop => {
                self.stopped = true;
                out.push(Instruction::Exit);
            }
            Event::Started | Event::NetworkChanged => {
                if event == Event::NetworkChanged {
                    self.failures = 0;
                }
                if self.in_flight {
                    self.again = true;
                } else if !signed_out {
                    self.probe(&mut out);
                }
            }
            Event::SyncNow => {
                if self.in_flight {
                    self.again = true;
                    self.manual = true;
                } else {
                    self.manual = false;
                    self.start_pass(true, &mut out);
                }
            }
            Event::LocalWrite => {
                if self.in_flight {
                    self.again = true;
                } else if self.state == Connectivity::Online {
                    out.push(Instruction::WakeAt(now + self.timing.debounce_ms));
                    self.again = true;
                }
                // Offline: the probe timer is running; the write waits in the outbox.
            }
            Event::Tick => {
                if self.in_flight || signed_out {
                    return out;
                }
                match self.state {
                    Connectivity::Online => self.start_pass(false, &mut out),
                    _ => self.probe(&mut out),
                }
            }
            Event::ProbeOk => {
                self.in_flight = false;
                self.failures = 0;
                // A reconnect clears the per-row backoff: the pass takes every row
                // whatever its retry time, as "sync now" does, so work deferred while
                // the server could not be reached goes at once.
                let reconnect = std::mem::take(&mut self.lost);
                self.start_pass(self.manual || reconnect, &mut out);
                self.manual = false;
            }
            Event::ProbeFailed(_) => {
                self.in_flight = false;
                self.lost = true;
                self.failures = self.failures.saturating_add(1);
                self.set(Connectivity::Offline, &mut out);
                let wait = self.backoff(self.failures);
                out.push(Instruction::WakeAt(now + wait));
            }
            Event::PassOk { retry_at } => {
                self.in_flight = false;
                self.failures = 0;
                self.pass_failures = 0;
                self.set(Connectivity::Online, &mut out);
                if self.again {
                    let manual = std::mem::take(&mut self.manual);
                    if manual {
                        self.start_pass(true, &mut out);
                        return out;
                    }
                    out.push(Instruction::WakeAt(now + self.timing.debounce_ms));
                    self.again = false;
                } else {
                    let mut wake = now + self.timing.periodic_ms;
                    if let Some(r) = retry_at {
                        wake = wake.min(r.max(now + self.timing.debounce_ms));
                    }
                    out.push(Instruction::WakeAt(wake));
                }
            }
            Event::PassFailed {
                offline,
                reason,
                retry_after,
            } => {
                self.in_flight = false;
                self.lost |= offline;
                self.pass_failures = self.pass_failures.saturating_add(1);
                self.again = false;
                self.manual = false;
                self.set(
                    if offline {
                        Connectivity::Offline
                    } else {
                        Connectivity::Error(reason)
                    },
                    &mut out,
                );
                let wait = self
                    .backoff(self.pass_failures)
                    .max(retry_after.unwrap_or(0));
                out.push(Instruction::WakeAt(now + wait));
            }
            Event::SignInRequired(reason) => {
                self.in_flight = false;
                self.again = false;
                if std::mem::take(&mut self.signed_in_meanwhile) {
                    // That pass had the old session; the new one has not been tried.
                    self.start_pass(false, &mut out);
                } else {
                    self.set(Connectivity::SignInRequired(reason), &mut out);
                }
            }
            Event::SignedIn => {
                self.failures = 0;
                if self.in_flight {
                    self.again = true;
                    self.signed_in_meanwhile = true;
                } else {
                    self.start_pass(false, &mut out);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn machine() -> Machine {
        Machine::new(Timing::default(), 42)
    }

    fn has(out: &[Instruction], want: &Instruction) -> bool {
        out.contains(want)
    }

    fn wake(out: &[Instruction]) -> Option<Millis> {
        out.iter().find_map(|i| match i {
            Instruction::WakeAt(t) => Some(*t),
            _ => None,
        })
    }

    #[test]
    fn start_probes_then_syncs_when_the_server_answers() {
        let mut m = machine();
        assert_eq!(m.handle(0, Event::Started), vec![Instruction::Probe]);
        let out = m.handle(10, Event::ProbeOk);
        assert!(has(
            &out,
            &Instruction::RunPass {
                ignore_backoff: false
            }
        ));
        assert_eq!(m.state(), &Connectivity::Syncing);
        let out = m.handle(20, Event::PassOk { retry_at: None });
        assert_eq!(m.state(), &Connectivity::Online);
        assert_eq!(wake(&out), Some(20 + 30_000), "the periodic timer is set");
    }

    #[test]
    fn offline_probes_back_off_with_a_cap_and_reset_on_a_network_change() {
        let mut m = machine();
        m.handle(0, Event::Started);
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            let out = m.handle(now, Event::ProbeFailed("no route".into()));
            let at = wake(&out).expect("a retry is scheduled");
            waits.push(at - now);
            now = at;
            assert_eq!(m.handle(now, Event::Tick), vec![Instruction::Probe]);
        }
        assert!(waits.iter().all(|w| *w <= 60_000), "capped: {waits:?}");
        assert!(waits[0] <= 1_000 && waits[11] >= 30_000, "grows: {waits:?}");
        m.handle(now, Event::ProbeFailed("still".into()));
        let out = m.handle(now + 1, Event::NetworkChanged);
        assert_eq!(
            out,
            vec![Instruction::Probe],
            "a network change probes at once"
        );
    }

    #[test]
    fn a_failed_upload_is_retried_by_the_timer_without_any_local_write() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        let out = m.handle(
            2,
            Event::PassFailed {
                offline: true,
                reason: "connection reset".into(),
                retry_after: None,
            },
        );
        let at = wake(&out).expect("retry scheduled");
        assert_eq!(m.handle(at, Event::Tick), vec![Instruction::Probe]);
        let out = m.handle(at + 1, Event::ProbeOk);
        // A reconnect: the rows the failed pass deferred go at once.
        assert!(has(
            &out,
            &Instruction::RunPass {
                ignore_backoff: true
            }
        ));
    }

    #[test]
    fn a_reconnect_clears_the_per_row_backoff_and_a_plain_probe_does_not() {
        let mut m = machine();
        m.handle(0, Event::Started);
        // The first pass after start keeps the retry times.
        assert!(has(
            &m.handle(1, Event::ProbeOk),
            &Instruction::RunPass {
                ignore_backoff: false
            }
        ));
        let out = m.handle(
            2,
            Event::PassFailed {
                offline: false,
                reason: "503".into(),
                retry_after: None,
            },
        );
        let at = wake(&out).expect("retry scheduled");
        m.handle(at, Event::Tick);
        assert!(
            has(
                &m.handle(at + 1, Event::ProbeOk),
                &Instruction::RunPass {
                    ignore_backoff: false
                }
            ),
            "the server answered all along: not a reconnect"
        );
        m.handle(at + 2, Event::PassOk { retry_at: None });
        // The network goes, then comes back.
        m.handle(at + 3, Event::NetworkChanged);
        let out = m.handle(at + 4, Event::ProbeFailed("no route".into()));
        let back = wake(&out).expect("probe scheduled");
        m.handle(back, Event::Tick);
        assert!(has(
            &m.handle(back + 1, Event::ProbeOk),
            &Instruction::RunPass {
                ignore_backoff: true
            }
        ));
        m.handle(back + 2, Event::PassOk { retry_at: None });
        let out = m.handle(back + 40_000, Event::Tick);
        assert!(
            has(
                &out,
                &Instruction::RunPass {
                    ignore_backoff: false
                }
            ),
            "only the pass after the reconnect: {out:?}"
        );
    }

    #[test]
    fn retry_after_from_the_server_is_honoured() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        let out = m.handle(
            2,
            Event::PassFailed {
                offline: false,
                reason: "rate limited".into(),
                retry_after: Some(120_000),
            },
        );
        assert!(wake(&out).expect("wake") >= 2 + 120_000);
        assert!(matches!(m.state(), Connectivity::Error(_)));
    }

    #[test]
    fn sync_now_runs_at_once_ignoring_backoff_even_offline() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeFailed("down".into()));
        let out = m.handle(2, Event::SyncNow);
        assert!(has(
            &out,
            &Instruction::RunPass {
                ignore_backoff: true
            }
        ));
    }

    #[test]
    fn sync_now_during_a_pass_runs_another_manual_pass_after_it() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        assert!(m.handle(2, Event::SyncNow).is_empty(), "one pass at a time");
        let out = m.handle(3, Event::PassOk { retry_at: None });
        assert!(has(
            &out,
            &Instruction::RunPass {
                ignore_backoff: true
            }
        ));
    }

    #[test]
    fn a_local_write_while_online_syncs_after_the_debounce() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        m.handle(2, Event::PassOk { retry_at: None });
        let out = m.handle(100, Event::LocalWrite);
        assert_eq!(wake(&out), Some(600));
        let out = m.handle(600, Event::Tick);
        assert!(has(
            &out,
            &Instruction::RunPass {
                ignore_backoff: false
            }
        ));
    }

    #[test]
    fn an_edit_made_during_a_pass_is_synced_right_after_it() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        assert!(m.handle(5, Event::LocalWrite).is_empty());
        let out = m.handle(9, Event::PassOk { retry_at: None });
        assert_eq!(wake(&out), Some(9 + 500), "not the 30 s periodic timer");
    }

    #[test]
    fn a_deferred_retry_wakes_the_engine_when_due() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        let out = m.handle(
            2,
            Event::PassOk {
                retry_at: Some(4_000),
            },
        );
        assert_eq!(wake(&out), Some(4_000));
    }

    #[test]
    fn a_revoked_device_stops_passes_until_a_manual_sync() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        let out = m.handle(2, Event::SignInRequired("device revoked".into()));
        assert!(matches!(
            out.as_slice(),
            [Instruction::Publish(Connectivity::SignInRequired(_))]
        ));
        assert!(m.handle(40_000, Event::Tick).is_empty());
        assert!(m.handle(40_001, Event::NetworkChanged).is_empty());
        assert!(has(
            &m.handle(40_002, Event::SyncNow),
            &Instruction::RunPass {
                ignore_backoff: true
            }
        ));
    }

    #[test]
    fn a_server_that_fails_every_pass_is_tried_less_and_less_often_though_its_health_answers() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        let mut now = 1;
        let mut waits = Vec::new();
        for _ in 0..10 {
            let out = m.handle(
                now,
                Event::PassFailed {
                    offline: false,
                    reason: "400 invalid_body".into(),
                    retry_after: None,
                },
            );
            let at = wake(&out).expect("a retry is scheduled");
            waits.push(at - now);
            now = at;
            assert_eq!(m.handle(now, Event::Tick), vec![Instruction::Probe]);
            now += 3;
            let out = m.handle(now, Event::ProbeOk);
            assert!(
                out.iter().any(|i| matches!(i, Instruction::RunPass { .. })),
                "the health check answers, so a pass runs"
            );
        }
        assert!(waits.iter().all(|w| *w <= 60_000), "capped: {waits:?}");
        assert!(
            waits[9] >= 30_000,
            "each failed pass waits longer, whatever the probes say: {waits:?}"
        );
        // A pass that succeeds resets the backoff.
        m.handle(now + 1, Event::PassOk { retry_at: None });
        m.handle(now + 2, Event::SyncNow);
        let out = m.handle(
            now + 3,
            Event::PassFailed {
                offline: false,
                reason: "again".into(),
                retry_after: None,
            },
        );
        assert!(wake(&out).expect("wake") - (now + 3) <= 1_000);
    }

    #[test]
    fn after_sign_in_required_a_new_sign_in_resumes_passes_and_timers() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        m.handle(2, Event::SignInRequired("device revoked".into()));
        assert!(m.handle(3, Event::LocalWrite).is_empty());

        let out = m.handle(4, Event::SignedIn);
        assert!(
            has(
                &out,
                &Instruction::RunPass {
                    ignore_backoff: false
                }
            ),
            "a pass at once: {out:?}"
        );
        assert_eq!(m.state(), &Connectivity::Syncing);
        let out = m.handle(5, Event::PassOk { retry_at: None });
        assert_eq!(m.state(), &Connectivity::Online);
        assert_eq!(
            wake(&out),
            Some(5 + 30_000),
            "the periodic timer runs again"
        );
        assert_eq!(
            wake(&m.handle(6, Event::LocalWrite)),
            Some(6 + 500),
            "a local write is pushed after the debounce"
        );
    }

    #[test]
    fn a_sign_in_during_a_pass_that_ends_in_sign_in_required_runs_a_new_pass() {
        let mut m = machine();
        m.handle(0, Event::Started);
        m.handle(1, Event::ProbeOk);
        assert!(
            m.handle(2, Event::SignedIn).is_empty(),
            "one pass at a time"
        );
        let out = m.handle(3, Event::SignInRequired("refresh token reused".into()));
        assert!(
            has(
                &out,
                &Instruction::RunPass {
                    ignore_backoff: false
                }
            ),
            "the pass ran on the old session: {out:?}"
        );
        assert_eq!(m.state(), &Connectivity::Syncing);
        let out = m.handle(4, Event::SignInRequired("device revoked".into()));
        assert!(
            matches!(
                out.as_slice(),
                [Instruction::Publish(Connectivity::SignInRequired(_))]
            ),
            "the new session is refused too: {out:?}"
        );
    }

    proptest! {
        #[test]
        fn backoff_is_bounded_and_never_below_half_its_step(attempt in 0u32..64, r in any::<u64>()) {
            let w = backoff_ms(attempt, 1_000, 60_000, r);
            prop_assert!(w <= 60_000);
            prop_assert!(w >= 500);
        }

        #[test]
        fn whatever_happens_at_most_one_io_step_is_in_flight(events in proptest::collection::vec(0u8..8, 1..200)) {
            #[derive(Clone, Copy, PartialEq)]
            enum Io { Probe, Pass }
            let mut m = machine();
            let mut in_flight: Vec<Io> = Vec::new();
            let mut now = 0;
            for e in events {
                now += 7;
                let current = in_flight.first().copied();
                let ev = match (e, current) {
                    (0, _) => Event::Tick,
                    (1, _) => Event::LocalWrite,
                    (2, _) => Event::SyncNow,
                    (3, _) => Event::NetworkChanged,
                    (4 | 5, Some(Io::Probe)) if e == 4 => Event::ProbeOk,
                    (4 | 5, Some(Io::Probe)) => Event::ProbeFailed("x".into()),
                    (4, Some(Io::Pass)) => Event::PassOk { retry_at: None },
                    (5, Some(Io::Pass)) => Event::PassFailed { offline: true, reason: "x".into(), retry_after: None },
                    (6, Some(_)) => Event::SignInRequired("revoked".into()),
                    (7, _) => Event::SignedIn,
                    _ => Event::Started,
                };
                if matches!(ev, Event::ProbeOk | Event::ProbeFailed(_) | Event::PassOk { .. } | Event::PassFailed { .. } | Event::SignInRequired(_)) {
                    in_flight.clear();
                }
                for i in m.handle(now, ev) {
                    match i {
                        Instruction::Probe => in_flight.push(Io::Probe),
                        Instruction::RunPass { .. } => in_flight.push(Io::Pass),
                        _ => {}
                    }
                }
                prop_assert!(in_flight.len() <= 1, "{} steps in flight", in_flight.len());
            }
        }
    }
}
