//! Issue 16, items 2 and 3: real processes killed at the k-th hit of every crash point
//! of the sync path, client and server, and seeded kill loops while people go on
//! working; after each, everything restarts and syncs until quiet, and the oracle
//! (`outpost_tests::oracle`) must find nothing lost and nothing doubled, every outbox
//! empty, every database sound and no order stuck.
//!
//! `make test` runs a reduced version (every point once at its first hit, alone and
//! with the other side killed too, and short seeded loops); `make reliability` runs
//! the full one (`OUTPOST_KILLS`, `OUTPOST_KILL_HITS`) and writes docs/RELIABILITY.md
//! from the result files these tests leave in `<target>/reliability/`. A failure
//! prints the seed: `OUTPOST_KILL_SEED=<seed>` reproduces the run.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use outpost_tests::kill::{
    assert_crash_points_built, kills_from_env, seed_from_env, seeded_loop, Backend, Fleet, Target,
    CRASH_POINTS,
};

#[test]
fn every_crash_point_killed_with_work_pending_loses_nothing_and_doubles_nothing() {
    assert_crash_points_built();
    let started = Instant::now();
    let seed = seed_from_env("crash points");
    let hits: u32 = std::env::var("OUTPOST_KILL_HITS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut fleet = Fleet::start(Backend::Sqlite, 3, seed);
    for k in 1..=hits {
        for point in CRASH_POINTS {
            for target in [Target::Alone, Target::Both] {
                let outcome = fleet.round(point, target, k);
                fleet.check(&format!(
                    "seed {seed}: {} killed at hit {k} ({target:?}), outcome {outcome:?}",
                    point.name
                ));
            }
        }
    }
    let tally = fleet.tally.clone();
    tally.write(
        "kill-points",
        "Every crash point, killed with work pending",
        &format!(
            "SQLite server, 3 CLI technicians and the dispatcher; each of the {} crash points \
             armed at hits 1..={hits}, its process killed alone and together with the other \
             side, then everything restarted, synced until quiet and checked (oracle and \
             invariants) after every kill",
            CRASH_POINTS.len()
        ),
        &format!(
            "OUTPOST_KILL_HITS={hits} OUTPOST_KILL_SEED={seed} cargo test -p outpost-tests \
             --test kill every_crash_point"
        ),
        seed,
        started.elapsed(),
    );
    for point in CRASH_POINTS {
        let p = tally.points.get(point.name).cloned().unwrap_or_default();
        assert!(
            p.counted >= 1,
            "seed {seed}: {} was never reached with work pending ({p:?})",
            point.name
        );
    }
}

#[test]
fn a_seeded_kill_loop_on_sqlite_loses_nothing_and_doubles_nothing() {
    assert_crash_points_built();
    let started = Instant::now();
    let seed = seed_from_env("kill loop (SQLite)");
    let kills = kills_from_env(35);
    let mut fleet = Fleet::start(Backend::Sqlite, 3, seed);
    seeded_loop(&mut fleet, kills, kills * 4, 10, &format!("seed {seed}"));
    let tally = fleet.tally.clone();
    tally.write(
        "kill-loop-sqlite",
        "Seeded kill loop, SQLite server",
        "one server on SQLite, 3 CLI technicians and the dispatcher; each round a random \
         crash point, hit k in 1..=3, its process killed alone or with the other side, while \
         edits, completions with photos, office notes, reassignments and resolutions go on \
         (and a second process edits while the sync runs); oracle and invariants every 10 \
         rounds and at the end",
        &format!(
            "OUTPOST_KILLS={kills} OUTPOST_KILL_SEED={seed} cargo test -p outpost-tests --test \
             kill a_seeded_kill_loop_on_sqlite"
        ),
        seed,
        started.elapsed(),
    );
    assert!(
        tally.counted() >= kills,
        "seed {seed}: only {} counted kills in {} rounds",
        tally.counted(),
        tally.rounds
    );
}

#[test]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh cargo test -p outpost-tests --test kill -- --include-ignored (make test runs it)"]
fn a_seeded_kill_loop_on_two_postgres_instances_loses_nothing_and_doubles_nothing() {
    let base_url = match std::env::var("OUTPOST_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => panic!(
            "this test needs PostgreSQL and OUTPOST_TEST_PG_URL is not set: run it through scripts/with-postgres.sh (make test does)"
        ),
    };
    assert_crash_points_built();
    let started = Instant::now();
    let seed = seed_from_env("kill loop (PostgreSQL, two instances)");
    let kills = kills_from_env(15);
    let mut fleet = Fleet::start(Backend::Postgres { base_url }, 4, seed);
    seeded_loop(&mut fleet, kills, kills * 4, 10, &format!("seed {seed}"));
    let tally = fleet.tally.clone();
    tally.write(
        "kill-loop-postgres",
        "Seeded kill loop, two server instances on PostgreSQL",
        "two server processes on one PostgreSQL database, 4 CLI technicians split between \
         them and the dispatcher; rounds as in the SQLite loop (server kills hit the \
         instance the technician talks to)",
        &format!(
            "OUTPOST_KILLS={kills} OUTPOST_KILL_SEED={seed} scripts/with-postgres.sh cargo test \
             -p outpost-tests --test kill a_seeded_kill_loop_on_two_postgres -- --include-ignored"
        ),
        seed,
        started.elapsed(),
    );
    assert!(
        tally.counted() >= kills,
        "seed {seed}: only {} counted kills in {} rounds",
        tally.counted(),
        tally.rounds
    );
}
