//! `outpost demo load`: demo orders and inventory, as if pulled from a server, for
//! trying Outpost without one.
//!
//! The demo data itself is defined in `core`.

use std::path::Path;

use outpost_core::CoreError;

use super::open;
use crate::print::{outln, print_json};

pub(crate) fn load(dir: &Path, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    let n = app.load_demo_data()?;
    if json {
        print_json(&serde_json::json!({"orders": n}))?;
    } else {
        outln!("Loaded {n} demo orders and a demo inventory.");
    }
    Ok(())
}
