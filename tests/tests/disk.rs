//! Full disks (issue 16, item 5): the device's data directory, or the server's
//! database, on a small filesystem (a size-limited tmpfs) that fills up during a sync,
//! a photo import or a push. Each case needs a clear error, nothing corrupted (the
//! store's integrity checks; SQLite's on the server), and the work completes once
//! space is freed, checked by the oracle against the server's final state.
//!
//! Mounting needs root (CAP_SYS_ADMIN), so the tests are `#[ignore]`d with that reason
//! in a plain `cargo test`; `make test` runs them (`--include-ignored`, as root in CI).
//! Asked for without root, they fail saying so.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use outpost_core::{Completion, Evidence, OrderEdit, Outpost, SystemClock};
use outpost_protocol::Status;
use outpost_tests::oracle::{check, Change, DeviceReport, Journal, ServerState};
use outpost_tests::{png, random_key, small_fleet, Device, Server};

const NEEDS_ROOT: &str = "needs root (CAP_SYS_ADMIN) to mount a size-limited tmpfs";

/// A size-limited tmpfs mounted for the test, unmounted on drop, and a filler file
/// that takes its free space.
struct SmallFs {
    path: PathBuf,
    filler: PathBuf,
}

impl SmallFs {
    fn mount(megabytes: u64) -> SmallFs {
        let path = outpost_tests::target_tmp().join(format!("smallfs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .output()
            .expect("the mount tool");
        assert!(
            out.status.success(),
            "cannot mount a {megabytes} MiB tmpfs at {} ({}): {NEEDS_ROOT}; run `make test` as root, as CI does",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let filler = path.join("filler");
        SmallFs { path, filler }
    }

    /// Take every free byte but `leave` (rounded to pages).
    fn fill(&self, leave: u64) {
        let mut f = std::fs::File::create(&self.filler).unwrap();
        let block = vec![0xa5u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(_) => break,
            }
        }
        let _ = f.flush();
        f.set_len(written.saturating_sub(leave)).unwrap();
        f.sync_all().ok();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).output();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A device whose data directory is `dir` (on the small filesystem).
fn device_in(dir: &Path) -> Device {
    let dir = tempfile::tempdir_in(dir).unwrap();
    let key = random_key();
    let app = Outpost::init(
        Device::options_with_clock(dir.path(), &key, Arc::new(SystemClock)),
        None,
    )
    .unwrap();
    Device { app, dir, key }
}

fn note(dev: &mut Device, journal: &Journal, actor: &str, order: &str, prefix: &str, pad: usize) {
    let text = format!("{} {}", journal.unique_text(prefix), "x".repeat(pad));
    dev.app
        .edit_order(
            order,
            OrderEdit {
                notes: vec![text.clone()],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    journal.record(
        actor,
        Change::Note {
            order: order.parse().unwrap(),
            text,
        },
    );
}

fn open_orders(dev: &Device) -> Vec<String> {
    dev.app
        .orders()
        .unwrap()
        .into_iter()
        .filter(|r| {
            matches!(
                r.order.status,
                Status::Scheduled | Status::InProgress | Status::EnRoute
            )
        })
        .map(|r| r.order.id.to_string())
        .collect()
}

/// The device's database passes its checks.
fn assert_sound(dev: &Device, when: &str) {
    let c = dev.app.check().unwrap();
    assert!(c.store.sound, "the store is sound {when}: {:?}", c.store);
}

/// The oracle and the device's invariants, once everyone synced; the counts go to
/// `<target>/reliability/disk.json` (one row per test, with `detail`) first.
async fn assert_oracle(
    server_url: &str,
    journal: &Journal,
    dev: &Device,
    test: &str,
    detail: &str,
) {
    let mut state = ServerState::fetch(server_url, journal).await.unwrap();
    state.add_device_records(
        dev.app
            .failed_syncs()
            .unwrap()
            .into_iter()
            .map(|f| f.mutation),
    );
    let verdict = check(journal, &state);
    println!("oracle: {verdict:?}");
    outpost_tests::results::add_row(
        &outpost_tests::results::Part {
            part: "disk",
            title: "Full disks",
            what: "the device's data directory, or the server's database, on a size-limited \
                   tmpfs filled up during a sync, a photo import and a push: a clear error, \
                   the databases' integrity checks pass, and the work completes once space is \
                   freed (oracle against the server's final state); needs root (tmpfs mounts)",
            command: "cargo test -p outpost-tests --test disk -- --include-ignored --nocapture",
        },
        serde_json::json!({
            "test": test,
            "changes": verdict.checked,
            "applied": verdict.applied,
            "lost": verdict.lost.len(),
            "doubled": verdict.doubled.len(),
            "detail": detail,
        }),
    );
    verdict.assert_clean("full disk");
    assert_eq!(
        verdict.applied, verdict.checked,
        "every change applied: {verdict:?}"
    );
    let problems = DeviceReport::of_device("tech1", dev).problems();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (CAP_SYS_ADMIN) to mount a size-limited tmpfs: make test runs it, as root in CI"]
async fn the_devices_disk_filling_during_a_sync_is_a_clear_error_corrupts_nothing_and_the_sync_completes_once_space_is_freed(
) {
    let fs = SmallFs::mount(48);
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let journal = Journal::new();
    let mut tech = device_in(&fs.path);
    tech.login(&server.url, "tech1").await;
    tech.sync().await.expect("first sync");
    let orders = open_orders(&tech);
    // Work saved on the device, and much more waiting on the server to be pulled.
    for i in 0..5 {
        note(
            &mut tech,
            &journal,
            "tech1",
            &orders[i % 2],
            "tech note",
            100,
        );
    }
    let mut dispatcher = Device::primed(&server.url, "dispatcher").await;
    for i in 0..60 {
        note(
            &mut dispatcher,
            &journal,
            "dispatcher",
            &orders[i % orders.len().min(8)],
            "office note",
            8_000,
        );
    }
    dispatcher.sync().await.unwrap();

    fs.fill(32 * 1024);
    let err = tech
        .sync()
        .await
        .expect_err("the disk fills during the sync");
    println!("the sync on a full disk: {err}");
    assert!(
        err.to_string().contains("disk is full"),
        "a clear error: {err}"
    );
    let refused = tech.app.edit_order(
        &orders[0],
        OrderEdit {
            notes: vec!["never saved".into()],
            ..OrderEdit::default()
        },
    );
    if let Err(e) = &refused {
        assert!(e.to_string().contains("disk is full"), "a clear error: {e}");
    } else {
        // Some room was left: that change counts like any other.
        journal.record(
            "tech1",
            Change::Note {
                order: orders[0].parse().unwrap(),
                text: "never saved".into(),
            },
        );
    }
    assert_sound(&tech, "with the disk full");

    fs.free();
    for _ in 0..3 {
        if tech.sync().await.is_ok() && tech.app.sync_counts().unwrap().pending == 0 {
            break;
        }
    }
    tech.sync()
        .await
        .expect("the sync completes once space is freed");
    assert_sound(&tech, "after the sync");
    // The pulled notes are all on the device too.
    let on_device: usize = orders
        .iter()
        .take(8)
        .map(|o| tech.app.order(o).unwrap().order.notes.len())
        .sum();
    assert!(
        on_device >= 65,
        "the device pulled everything: {on_device} notes"
    );
    assert_oracle(
        &server.url,
        &journal,
        &tech,
        "device disk full during a sync",
        &format!("48 MiB tmpfs, 32 KiB left; the sync said: {err}"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (CAP_SYS_ADMIN) to mount a size-limited tmpfs: make test runs it, as root in CI"]
async fn the_devices_disk_filling_during_a_photo_import_is_a_clear_error_saves_nothing_and_the_import_works_once_space_is_freed(
) {
    let fs = SmallFs::mount(48);
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&small_fleet(tmp.path()), &[]);
    let journal = Journal::new();
    let mut tech = device_in(&fs.path);
    tech.login(&server.url, "tech1").await;
    tech.sync().await.expect("first sync");
    let order = tech.order_id(|o| {
        matches!(
            o.status,
            Status::Scheduled | Status::InProgress | Status::EnRoute
        ) && !o.checklist.is_empty()
    });
    let items: Vec<String> = tech
        .app
        .order(&order)
        .unwrap()
        .order
        .checklist
        .iter()
        .map(|c| c.id.clone())
        .collect();
    tech.app
        .edit_order(
            &order,
            OrderEdit {
                check: items.clone(),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    for item in items {
        journal.record(
            "tech1",
            Change::Check {
                order: order.parse().unwrap(),
                item,
            },
        );
    }
    let outbox_before = tech.app.outbox().unwrap().len();
    let photo = outpost_core::photos::synthetic_photo(2400, 1800, 3);
    let completion = |signer: &str| Completion {
        signature_png: Evidence {
            bytes: png(signer),
            name: "sig.png".into(),
        },
        signer: signer.to_owned(),
        photos: vec![Evidence {
            bytes: photo.clone(),
            name: "site.jpg".into(),
        }],
    };
    let files_before = count_files(tech.dir.path());

    fs.fill(16 * 1024);
    let signer = journal.unique_text("signer");
    let err = tech
        .app
        .complete_order(&order, completion(&signer))
        .expect_err("no room for the photo");
    println!("a photo import on a full disk: {err}");
    assert!(
        err.to_string().contains("disk is full"),
        "a clear error: {err}"
    );
    let row = tech.app.order(&order).unwrap();
    assert_ne!(row.order.status, Status::Completed, "nothing was saved");
    assert!(row.order.photos.is_empty(), "no photo was recorded");
    assert_eq!(
        tech.app.outbox().unwrap().len(),
        outbox_before,
        "nothing was queued"
    );
    assert_eq!(
        count_files(tech.dir.path()),
        files_before,
        "no partial photo file is left behind"
    );
    assert_sound(&tech, "with the disk full");

    fs.free();
    tech.app
        .complete_order(&order, completion(&signer))
        .expect("the import works once space is freed");
    journal.record(
        "tech1",
        Change::Complete {
            order: order.parse().unwrap(),
            signer,
            photos: 1,
        },
    );
    tech.sync().await.expect("sync");
    assert_sound(&tech, "after the sync");
    assert_oracle(
        &server.url,
        &journal,
        &tech,
        "device disk full during a photo import",
        &format!("48 MiB tmpfs, 16 KiB left; the completion with a photo said: {err}; nothing recorded, no file left"),
    )
    .await;
}

/// Files under `dir` (the database's side files aside).
fn count_files(dir: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else {
                let name = p.file_name().and_then(|s| s.to_str()).unwrap_or("");
                if !name.ends_with("-wal") && !name.ends_with("-shm") && !name.ends_with("-journal")
                {
                    *n += 1;
                }
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (CAP_SYS_ADMIN) to mount a size-limited tmpfs: make test runs it, as root in CI"]
async fn the_servers_disk_filling_during_a_push_is_a_clear_error_corrupts_nothing_and_the_push_completes_once_space_is_freed(
) {
    let fs = SmallFs::mount(64);
    let db = small_fleet(&fs.path);
    let mut server = Server::start(&db, &[]);
    let journal = Journal::new();
    let mut tech = Device::new();
    tech.login(&server.url, "tech1").await;
    tech.sync().await.expect("first sync");
    let orders = open_orders(&tech);
    for i in 0..40 {
        note(
            &mut tech,
            &journal,
            "tech1",
            &orders[i % 3],
            "tech note",
            9_000,
        );
    }

    fs.fill(0);
    let err = tech.sync().await.expect_err("the server's disk is full");
    println!("a push to a server whose disk is full: {err}");
    println!(
        "server log tail: {}",
        tail(&server.log.lock().unwrap(), 1500)
    );
    assert!(
        err.to_string().contains("disk") && err.to_string().contains("full"),
        "the device is told the server's disk is full: {err}"
    );
    assert!(
        server.log.lock().unwrap().contains("disk is full"),
        "the server's log says its disk is full"
    );
    assert!(
        tech.app.sync_counts().unwrap().pending > 0,
        "the work waits on the device"
    );

    fs.free();
    assert_eq!(
        outpost_tests::sqlite_integrity(&db),
        "ok",
        "the server's database is sound"
    );
    for _ in 0..3 {
        if tech.sync().await.is_ok() && tech.app.sync_counts().unwrap().pending == 0 {
            break;
        }
    }
    tech.sync()
        .await
        .expect("the push completes once space is freed");
    assert_eq!(tech.app.sync_counts().unwrap().pending, 0);
    // And after a restart on the same database.
    server.restart();
    assert_oracle(
        &server.url,
        &journal,
        &tech,
        "server disk full during a push",
        &format!("64 MiB tmpfs under the SQLite database, filled; the device was told: {err}; PRAGMA integrity_check ok"),
    )
    .await;
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    &s[start..]
}
