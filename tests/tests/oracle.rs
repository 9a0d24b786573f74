//! The oracle against a real server: it must see a change that never arrived as lost,
//! and the same change, once synced, as applied once.

#![allow(clippy::unwrap_used)]

use outpost_core::OrderEdit;
use outpost_protocol::Quantity;
use outpost_tests::oracle::{check, Change, DeviceReport, Journal, ServerState};
use outpost_tests::{open_order, setup, Device};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oracle_counts_an_unsynced_note_as_lost_and_a_synced_one_as_applied_once() {
    let (_tmp, server, _proxy) = setup(&[]).await;
    let journal = Journal::new();
    let mut tech = Device::primed(&server.url, "tech1").await;
    let id = open_order(&tech);
    let text = journal.unique_text("oracle");
    let quantity: Quantity = journal.unique_quantity();
    tech.app
        .edit_order(
            &id,
            OrderEdit {
                notes: vec![text.clone()],
                parts: vec![("SKU-00003".into(), quantity)],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    let order = id.parse().unwrap();
    journal.record("tech1", Change::Note { order, text });
    journal.record(
        "tech1",
        Change::Part {
            order,
            sku: "SKU-00003".into(),
            quantity,
        },
    );

    let before = check(
        &journal,
        &ServerState::fetch(&server.url, &journal).await.unwrap(),
    );
    assert_eq!(before.lost.len(), 2, "not synced yet: {before:?}");
    let report = DeviceReport::of_device("tech1", &tech);
    assert_eq!(report.outbox, 1);
    assert_eq!(
        report.problems().len(),
        2,
        "{report:?}: an outbox row and a saved order"
    );

    tech.sync().await.unwrap();
    let after = check(
        &journal,
        &ServerState::fetch(&server.url, &journal).await.unwrap(),
    );
    after.assert_clean("after the sync");
    assert_eq!(after.applied, 2);
    assert_eq!(
        DeviceReport::of_device("tech1", &tech).problems(),
        Vec::<String>::new()
    );
}
