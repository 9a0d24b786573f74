//! Van stock in the technician's view (issue 23 item 3), end to end: a real
//! `outpost-server` (SQLite, the demo fleet with 200 items) on loopback and a real
//! device on an encrypted data directory. The server takes parts from the assignee's
//! van first (`protocol::stock`); after a pull the device shows it: the part picker
//! lists the technician's van stock first with its quantity, and the Inventory screen
//! has "my van" and "warehouse" views. What the views should hold is worked out here
//! from the pulled items themselves (their stock per location), not from the seed.

#![allow(clippy::unwrap_used)]

use outpost_core::views::{InventoryPageInput, StockPageView, StockPlace};
use outpost_core::OrderEdit;
use outpost_protocol::{InventoryItem, Quantity};
use outpost_tests::{small_fleet, Device, Proxy, Server};

/// Every item on the device (200 in this fleet), by name.
fn all_items(dev: &Device) -> Vec<InventoryItem> {
    let items = dev.app.search_inventory("", 1000).unwrap();
    assert_eq!(items.len(), 200, "the small fleet's 200 items were pulled");
    items
}

/// An item's quantity at `location`, in units, if it is stocked there.
fn at(item: &InventoryItem, location: &str) -> Option<f64> {
    item.stock
        .iter()
        .find(|s| s.location == location)
        .map(|s| s.quantity.milli() as f64 / 1000.0)
}

fn skus_and_quantities(page: &StockPageView) -> Vec<(String, Option<f64>)> {
    page.items
        .iter()
        .map(|i| (i.item.sku.clone(), i.here))
        .collect()
}

fn page(place: StockPlace, query: &str, offset: u32, limit: u32) -> InventoryPageInput {
    InventoryPageInput {
        place,
        query: query.into(),
        offset,
        limit,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_pull_the_part_picker_lists_the_technicians_van_first_with_its_quantity_and_inventory_has_my_van_and_warehouse_views(
) {
    let tmp = tempfile::tempdir().unwrap();
    let db = small_fleet(tmp.path());
    let server = Server::start(&db, &[]);
    let proxy = Proxy::start(server.addr).await;
    let mut tech = Device::primed(&proxy.url(), "tech1").await;

    let items = all_items(&tech);
    let van: Vec<&InventoryItem> = items
        .iter()
        .filter(|i| at(i, "van-tech1").is_some())
        .collect();
    assert!(
        van.len() >= 2,
        "tech1's van stocks a few of the 200 items: {}",
        van.len()
    );
    assert!(van.len() < 20, "and not most of them: {}", van.len());

    // The part picker of one of tech1's orders: the van's items first (by name, as
    // the store lists them), each with its quantity in the van, then the rest.
    let order =
        tech.order_id(|o| o.assignee.as_deref() == Some("tech1") && !o.status.is_terminal());
    let picker = tech.app.part_picker(&order, "", 30).unwrap();
    assert_eq!(picker.location.as_deref(), Some("van-tech1"));
    let expected_van: Vec<(String, Option<f64>)> = van
        .iter()
        .map(|i| (i.sku.clone(), at(i, "van-tech1")))
        .collect();
    let shown = skus_and_quantities(&picker);
    assert_eq!(
        shown[..van.len()],
        expected_van[..],
        "the van's items come first with their van quantity"
    );
    assert!(
        shown[van.len()..].iter().all(|(_, q)| q.is_none()),
        "the rest are not in the van: {shown:?}"
    );
    assert_eq!(shown.len(), 30, "then other items fill the page");
    // A search narrows both parts and keeps the van first.
    let first_van = van[0];
    let narrowed = tech.app.part_picker(&order, &first_van.name, 10).unwrap();
    assert_eq!(
        narrowed.items.first().map(|i| (i.item.sku.clone(), i.here)),
        Some((first_van.sku.clone(), at(first_van, "van-tech1")))
    );

    // "My van": exactly the van's items with the van quantity; "warehouse": the items
    // with stock outside any van, with the quantity there.
    let mine = tech
        .app
        .inventory_page(&page(StockPlace::MyVan, "", 0, 100))
        .unwrap();
    assert_eq!(mine.location.as_deref(), Some("van-tech1"));
    assert_eq!(skus_and_quantities(&mine), expected_van);
    assert!(!mine.more);
    let warehouse = tech
        .app
        .inventory_page(&page(StockPlace::Warehouse, "", 0, 50))
        .unwrap();
    assert_eq!(warehouse.items.len(), 50);
    assert!(warehouse.more, "200 items do not fit one page of 50");
    for row in &warehouse.items {
        let item = items.iter().find(|i| i.sku == row.item.sku).unwrap();
        assert_eq!(row.here, at(item, "main"), "{}", item.sku);
    }
    let second = tech
        .app
        .inventory_page(&page(StockPlace::Warehouse, "", 50, 50))
        .unwrap();
    assert!(
        second.items[0].item.sku != warehouse.items[0].item.sku,
        "the next page goes on where the first stopped"
    );

    // A part used on the order comes out of the van on the server; the next pull
    // shows the van's new quantity in the picker and in "my van".
    tech.app
        .edit_order(
            &order,
            OrderEdit {
                parts: vec![(first_van.sku.clone(), Quantity::from_units(2))],
                ..OrderEdit::default()
            },
        )
        .unwrap();
    tech.sync().await.unwrap();
    let before = at(first_van, "van-tech1").unwrap();
    let picker = tech.app.part_picker(&order, "", 30).unwrap();
    let row = picker
        .items
        .iter()
        .find(|i| i.item.sku == first_van.sku)
        .unwrap();
    assert_eq!(row.here, Some(before - 2.0), "the van lost the two parts");
    let mine = tech
        .app
        .inventory_page(&page(StockPlace::MyVan, &first_van.sku, 0, 10))
        .unwrap();
    assert_eq!(
        skus_and_quantities(&mine),
        vec![(first_van.sku.clone(), Some(before - 2.0))]
    );
    let warehouse = tech
        .app
        .inventory_page(&page(StockPlace::Warehouse, &first_van.sku, 0, 10))
        .unwrap();
    assert_eq!(
        skus_and_quantities(&warehouse),
        vec![(first_van.sku.clone(), at(first_van, "main"))],
        "the warehouse kept its stock"
    );
}
