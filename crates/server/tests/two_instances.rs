//! Two `outpost-server` processes over ONE PostgreSQL database, over real HTTP on
//! loopback: concurrent pushes to both while a dispatcher follows the change log
//! through both (no pull ever skips a row: the sequences arrive in order, and a page
//! leaves out only earlier rows of an order it carries later), and the same mutation id
//! pushed to both at once has exactly one effect.
//!
//! PostgreSQL only (SQLite is one process by design), so both tests are ignored unless
//! asked for (`scripts/with-postgres.sh cargo test -p outpost-server --test
//! two_instances -- --include-ignored`; `make test` runs them), and fail without
//! `OUTPOST_TEST_PG_URL` when asked for.

// Test code: reading the wall clock is fine here.
#![allow(clippy::disallowed_methods)]

mod common;

use std::time::Duration;

use common::process::ServerProcess;
use common::*;
use outpost_protocol::wire::*;
use outpost_protocol::*;
use uuid::Uuid;

struct Fixture {
    a: ServerProcess,
    b: ServerProcess,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = fresh_db_url(Kind::Postgres, dir.path()).await;
    {
        let db = outpost_server::Db::open(&url).await.expect("open");
        let cfg = test_config();
        for (name, role) in [
            ("dispatcher", Role::Dispatcher),
            ("tech1", Role::Technician),
            ("tech2", Role::Technician),
        ] {
            outpost_server::add_user(&db, &cfg, name, role, PASSWORD)
                .await
                .expect("add user");
        }
        let items: Vec<InventoryItem> = (0..20).map(outpost_server::seed::demo_item).collect();
        let now_us = cfg.now_us();
        db.write(move |sql| outpost_server::seed::insert_items(sql, &items, now_us))
            .await
            .expect("items");
    }
    // Started together: both run the migrations check under the write lock.
    let (a, b) = tokio::task::spawn_blocking(move || {
        let u2 = url.clone();
        let tb = std::thread::spawn(move || ServerProcess::start(&u2, &[]));
        let a = ServerProcess::start(&url, &[]);
        (a, tb.join().expect("second instance"))
    })
    .await
    .expect("start both");
    assert_ne!(a.addr, b.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    Fixture {
        a,
        b,
        http,
        _dir: dir,
    }
}

/// A log row as the follower sees it: sequence, entity, id.
type Seen = (u64, ChangeEntity, String);

fn seqs(changes: &[Change]) -> Vec<u64> {
    changes.iter().map(|c| c.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh cargo test -p outpost-server -- --include-ignored (make test runs it)"]
async fn concurrent_pushes_to_two_instances_never_make_a_pull_skip_a_row() {
    let f = fixture().await;
    let (a, b) = (f.a.base.clone(), f.b.base.clone());
    let d = login_at(&f.http, &a, "dispatcher", Uuid::new_v4()).await;
    let t1 = login_at(&f.http, &b, "tech1", Uuid::new_v4()).await;
    let t2 = login_at(&f.http, &a, "tech2", Uuid::new_v4()).await;
    let mut orders1 = Vec::new();
    let mut orders2 = Vec::new();
    for i in 0..4 {
        orders1.push(
            via(&d, if i % 2 == 0 { &a } else { &b })
                .create_order(Some("tech1"))
                .await,
        );
        orders2.push(
            via(&d, if i % 2 == 0 { &b } else { &a })
                .create_order(Some("tech2"))
                .await,
        );
    }
    // The follower primes first (through A), then follows the log.
    let (_, start_cursor, _) = d.pull_all(None, 500).await;
    let start_seq = {
        let page = d.pull(Some(start_cursor.clone()), Some(1)).await;
        assert!(page.changes.is_empty(), "nothing new yet");
        page.cursor
    };
    let start_seq_again = start_seq.clone();

    // Writers: each technician pushes batches alternately to A and B; the dispatcher
    // edits too (titles), so three devices write through two instances at once.
    let writer = |s: Session, orders: Vec<WorkOrder>, other: String, rounds: usize| {
        tokio::spawn(async move {
            for r in 0..rounds {
                let target = if r % 2 == 0 {
                    via(&s, &other)
                } else {
                    via(&s, &s.base)
                };
                let batch: Vec<Mutation> = orders
                    .iter()
                    .map(|o| {
                        s.mutation(
                            o.id,
                            MutationKind::Update,
                            o.version,
                            vec![Op::AppendNote {
                                note: NoteEntry {
                                    id: Uuid::now_v7(),
                                    author: s.username.clone(),
                                    text: format!("round {r}"),
                                    at: chrono::Utc::now(),
                                },
                            }],
                        )
                    })
                    .collect();
                for out in target.push(batch).await {
                    assert!(matches!(out, PushOutcome::Applied(_)), "{out:?}");
                }
            }
        })
    };
    let rounds = 15;
    let w1 = writer(t1, orders1.clone(), a.clone(), rounds);
    let w2 = writer(t2, orders2.clone(), b.clone(), rounds);
    let dispatcher_edits = {
        let d = via(&d, &b);
        let a = a.clone();
        let all: Vec<WorkOrder> = orders1.iter().chain(&orders2).cloned().collect();
        tokio::spawn(async move {
            for r in 0..rounds {
                let s = if r % 2 == 0 {
                    via(&d, &a)
                } else {
                    via(&d, &d.base)
                };
                let batch = all
                    .iter()
                    .map(|o| {
                        s.mutation(
                            o.id,
                            MutationKind::Update,
                            o.version,
                            vec![Op::Set(SetOp::Description(format!("office round {r}")))],
                        )
                    })
                    .collect();
                for out in s.push(batch).await {
                    assert!(
                        matches!(
                            out,
                            PushOutcome::Applied(_) | PushOutcome::AppliedWithConflicts(_)
                        ),
                        "{out:?}"
                    );
                }
            }
        })
    };

    // The follower pulls through both instances, alternately, small pages, while the
    // writers run: every page must continue exactly where the last one ended. A page
    // carries one row per order (issue 24), so rows missing from a page must be
    // earlier rows of an order the same page carries later; that is checked against
    // the whole log, read once every writer is done.
    let mut cursor = start_seq;
    let mut pages: Vec<(Option<u64>, Vec<Seen>)> = Vec::new();
    let mut from: Option<u64> = None;
    let mut turn = 0usize;
    let mut writers_done = false;
    loop {
        let s = via(&d, if turn.is_multiple_of(2) { &a } else { &b });
        turn += 1;
        let page = s.pull(Some(cursor.clone()), Some(7)).await;
        assert!(page.priming.is_none(), "following the log, not priming");
        let got = seqs(&page.changes);
        for w in got.windows(2) {
            assert!(w[1] > w[0], "in order inside one page: {got:?}");
        }
        if !got.is_empty() {
            pages.push((
                from,
                page.changes
                    .iter()
                    .map(|c| (c.seq, c.entity, c.id.clone()))
                    .collect(),
            ));
            from = got.last().copied();
        }
        cursor = page.cursor;
        if !page.has_more {
            if writers_done {
                break;
            }
            writers_done = w1.is_finished() && w2.is_finished() && dispatcher_edits.is_finished();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    w1.await.expect("tech1 writer");
    w2.await.expect("tech2 writer");
    dispatcher_edits.await.expect("dispatcher writer");
    // One last look after every writer is done: nothing further.
    let tail = via(&d, &b).pull(Some(cursor), Some(1000)).await;
    assert!(tail.changes.is_empty(), "{:?}", seqs(&tail.changes));

    // The whole log since the start, one row per page (nothing to collapse).
    let mut full: Vec<Seen> = Vec::new();
    let mut c = start_seq_again;
    loop {
        let page = via(&d, &a).pull(Some(c), Some(1)).await;
        full.extend(
            page.changes
                .iter()
                .map(|ch| (ch.seq, ch.entity, ch.id.clone())),
        );
        c = page.cursor;
        if !page.has_more {
            break;
        }
        assert!(full.len() < 100_000, "the log ends");
    }
    let expected_rows = 2 * rounds * 4 + rounds * 8;
    assert!(
        full.len() >= expected_rows,
        "every write is a row: {} < {expected_rows}",
        full.len()
    );
    let first = full[0].0;
    assert_eq!(
        full.iter().map(|r| r.0).collect::<Vec<_>>(),
        (first..first + full.len() as u64).collect::<Vec<_>>(),
        "every sequence, in order"
    );
    // Each page: the log rows after the previous page's last, up to its own last,
    // without earlier rows of an order or item it carries later — nothing else left out.
    let mut covered = 0;
    for (after, rows) in &pages {
        let last = rows.last().map(|r| r.0).expect("a page with rows");
        let window: Vec<&Seen> = full
            .iter()
            .filter(|r| after.is_none_or(|a| r.0 > a) && r.0 <= last)
            .collect();
        let expected: Vec<u64> = window
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                let collapsible =
                    matches!(r.1, ChangeEntity::WorkOrder | ChangeEntity::InventoryItem);
                !(collapsible
                    && window[i + 1..]
                        .iter()
                        .any(|later| later.1 == r.1 && later.2 == r.2))
            })
            .map(|(_, r)| r.0)
            .collect();
        assert_eq!(
            rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            expected,
            "a page left out a row it does not carry later (after {after:?})"
        );
        covered = last;
    }
    assert_eq!(covered, full.last().map(|r| r.0).unwrap_or(0), "to the end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs PostgreSQL: scripts/with-postgres.sh cargo test -p outpost-server -- --include-ignored (make test runs it)"]
async fn the_same_mutation_pushed_to_both_instances_at_once_has_one_effect() {
    let f = fixture().await;
    let (a, b) = (f.a.base.clone(), f.b.base.clone());
    let d = login_at(&f.http, &a, "dispatcher", Uuid::new_v4()).await;
    let device = Uuid::new_v4();
    let on_a = login_at(&f.http, &a, "tech1", device).await;
    let on_b = login_at(&f.http, &b, "tech1", device).await;
    let order = d.create_order(Some("tech1")).await;
    let (_, cursor, _) = d.pull_all(None, 500).await;

    let mut ids = Vec::new();
    for round in 0..20 {
        let m = on_a.mutation(
            order.id,
            MutationKind::Update,
            order.version,
            vec![
                Op::Set(SetOp::Description(format!("round {round}"))),
                Op::Add(outpost_protocol::mutation::ListItem::PartsUsed(PartUsed {
                    id: Uuid::now_v7(),
                    sku: outpost_server::seed::demo_sku(round % 5),
                    quantity: Quantity::from_units(1),
                })),
            ],
        );
        ids.push(m.mutation_id);
        let (x, y) = tokio::join!(on_a.push1(m.clone()), on_b.push1(m.clone()));
        let (applied, dup) = match (&x, &y) {
            (PushOutcome::Applied(ap), PushOutcome::Duplicate { first })
            | (PushOutcome::Duplicate { first }, PushOutcome::Applied(ap)) => (ap, first),
            other => panic!("one applies, the other is its duplicate: {other:?}"),
        };
        let PushOutcome::Applied(first) = dup.as_ref() else {
            panic!("the duplicate carries the first outcome: {dup:?}")
        };
        assert_eq!(first.version, applied.version, "the same effect, once");
    }
    // Exactly one order row per mutation in the log, and each part line once.
    let (changes, _, _) = d.pull_all(Some(cursor), 1000).await;
    for id in &ids {
        let rows = changes
            .iter()
            .filter(|c| c.entity == ChangeEntity::WorkOrder && c.mutation_ids.contains(id))
            .count();
        assert_eq!(rows, 1, "one order row for mutation {id}");
    }
    let now: WorkOrder = via(&d, &b)
        .get(&format!("/v1/orders/{}", order.id))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("order");
    assert_eq!(now.version, order.version + 20, "one version per mutation");
    assert_eq!(now.parts_used.len(), 20, "one part line per mutation");
}
