//! A device of this release meets a newer server (docs/protocol.md, "Compatibility"):
//! a pulled change of a kind it does not know is skipped without stopping the page or
//! the cursor, and counted for the status; the page's epoch is kept for the mutations
//! the device makes. On a real encrypted store.

use chrono::{DateTime, Utc};
use outpost_protocol::wire::PullResponse;
use outpost_store::{DbKey, Store};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("a time")
}

fn page(json: &str) -> PullResponse {
    serde_json::from_str(json).expect("a page this version reads")
}

#[test]
fn a_change_of_an_unknown_kind_is_skipped_counted_and_the_page_still_applies() {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = Store::create(dir.path(), &DbKey::from_bytes([3; 32])).expect("store");
    let item = r#"{"sku":"SKU-1","name":"Filter","unit":"each","price_cents":250,"stock":[{"location":"main","quantity":4}]}"#;
    let first = page(&format!(
        r#"{{"changes":[
            {{"seq":1,"entity":"invoice","id":"i-1","version":1,"change":{{"kind":"invoice","row":{{"total":3}}}}}},
            {{"seq":2,"entity":"work_order","id":"01939a5e-7c3a-7b1e-9f00-000000000003","version":1,"change":{{"kind":"archived","row":{{}}}}}},
            {{"seq":3,"entity":"inventory_item","id":"SKU-1","version":1,"change":{{"kind":"inventory_item","row":{item}}}}}
        ],"cursor":"c3","has_more":false,"server_time":"2026-12-06T10:00:00Z","epoch":"e-1"}}"#
    ));
    let summary = store.apply_pull_page(&first, now()).expect("applies");
    assert_eq!(summary.skipped, 2);
    assert_eq!(summary.inventory, 1, "the rest of the page applies");
    assert_eq!(store.pull_cursor().expect("cursor").as_deref(), Some("c3"));
    assert_eq!(store.sync_counts().expect("counts").skipped, 2);
    assert_eq!(store.server_epoch().expect("epoch").as_deref(), Some("e-1"));

    // While a snapshot is being re-sent (a restore), the epoch the device's versions
    // belong to is not moved yet; the page that ends the snapshot moves it.
    let priming = |has_more: bool, cursor: &str| {
        page(&format!(
            r#"{{"changes":[],"cursor":"{cursor}","has_more":{has_more},"server_time":"2026-12-06T10:00:00Z","epoch":"e-2",
               "priming":{{"phase":"orders","done":0,"total":0,"snapshot_seq":0}}}}"#
        ))
    };
    store
        .apply_pull_page(&priming(true, "p1"), now())
        .expect("applies");
    assert_eq!(store.server_epoch().expect("epoch").as_deref(), Some("e-1"));
    store
        .apply_pull_page(&priming(false, "l9"), now())
        .expect("applies");
    assert_eq!(store.server_epoch().expect("epoch").as_deref(), Some("e-2"));
    assert_eq!(store.sync_counts().expect("counts").skipped, 2, "kept");
}
