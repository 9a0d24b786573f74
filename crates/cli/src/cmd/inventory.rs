//! `outpost inventory search`: find items in the inventory cache by SKU or name.
//!
//! The cache is filled by sync (or `demo load`); nothing here changes it.

use std::path::Path;

use outpost_core::CoreError;

use super::open;
use crate::print::{outln, print_json};

pub(crate) fn search(dir: &Path, query: &str, limit: usize, json: bool) -> Result<(), CoreError> {
    let app = open(dir)?;
    let items = app.search_inventory(query, limit)?;
    if json {
        print_json(&items)?;
    } else if items.is_empty() {
        outln!("No inventory items match {query:?}.");
    } else {
        outln!("{:<12} {:>10} {:<6} NAME", "SKU", "STOCK", "UNIT");
        for i in items {
            outln!(
                "{:<12} {:>10} {:<6} {}",
                i.sku,
                i.total_stock().to_string(),
                i.unit,
                i.name
            );
        }
    }
    Ok(())
}
