//! The server's sync rules end to end, where only real devices and a real restore show
//! them (issue 14): an edit a device made before the server was restored from a backup
//! carries the epoch of its base, so it can no longer overwrite what was set after the
//! restore. The rules' other cases run over HTTP in crates/server/tests/rules.rs.

#![allow(clippy::unwrap_used)]

use outpost_core::OrderEdit;
use outpost_protocol::Status;
use outpost_tests::{copy_sqlite, small_fleet, Device, Proxy, Server};

fn retitle(dev: &mut Device, id: &str, title: &str) {
    dev.app
        .edit_order(
            id,
            OrderEdit {
                title: Some(title.into()),
                ..OrderEdit::default()
            },
        )
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_made_before_a_restore_conflicts_with_a_value_set_after_it_instead_of_overwriting_it(
) {
    let tmp = tempfile::tempdir().unwrap();
    let db = small_fleet(tmp.path());
    let mut server = Server::start(&db, &[]);
    let proxy = Proxy::start(server.addr).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;
    let id = tech.order_id(|o| o.status == Status::Scheduled);

    // The nightly backup, with the order at version 1.
    server.kill();
    let backup = tmp.path().join("backup.db");
    copy_sqlite(&db, &backup);
    server.restart();
    proxy.set_upstream(server.addr);

    // After the backup: a dispatcher's change (version 2), which the technician pulls,
    // then an edit the technician makes offline on that version 2.
    let mut dispatcher = Device::primed(&proxy.url(), "dispatcher").await;
    dispatcher
        .app
        .edit_order(
            &id,
            OrderEdit {
                priority: Some(outpost_protocol::Priority::Urgent),
                ..OrderEdit::default()
            },
        )
        .unwrap();
    dispatcher.sync().await.unwrap();
    tech.sync().await.unwrap();
    assert_eq!(tech.app.order(&id).unwrap().order.version, 2);
    retitle(&mut tech, &id, "Technician's, made before the restore");

    // The server is restored from the backup and given a new epoch; another
    // dispatcher retitles the order: version 2 again, in the new epoch.
    server.kill();
    copy_sqlite(&backup, &db);
    server.admin(&["epoch", "reset"], None);
    server.restart();
    proxy.set_upstream(server.addr);
    let mut after = Device::primed(&proxy.url(), "dispatcher").await;
    retitle(&mut after, &id, "Dispatcher's, set after the restore");
    after.sync().await.unwrap();
    assert_eq!(after.app.order(&id).unwrap().order.version, 2);

    // The technician's edit (base 2 of the old epoch) is not applied over it.
    let report = tech.sync().await.unwrap();
    assert_eq!(
        report.conflicts, 1,
        "a conflict, not an overwrite: {report:?}"
    );
    after.sync().await.unwrap();
    assert_eq!(
        after.app.order(&id).unwrap().order.title,
        "Dispatcher's, set after the restore"
    );
}
