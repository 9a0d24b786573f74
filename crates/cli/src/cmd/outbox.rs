//! `outpost outbox list`: the changes on this device the server has not yet
//! acknowledged, oldest first.
//!
//! Read-only: sending them is `sync`, and changes the server refused are `failed`.

use std::path::Path;

use outpost_core::CoreError;

use super::open;
use crate::print::{outln, print_json};

pub(crate) fn list(dir: &Path, json: bool) -> Result<(), CoreError> {
    let app = open(dir)?;
    let rows = app.outbox()?;
    if json {
        print_json(&rows)?;
    } else if rows.is_empty() {
        outln!("The outbox is empty: the server has everything.");
    } else {
        outln!(
            "{:<5} {:<9} {:<8} {:<8} {:>4} {:>3}  ORDER",
            "SEQ",
            "KIND",
            "STATE",
            "BASE",
            "OPS",
            "TRY"
        );
        for r in rows {
            outln!(
                "{:<5} {:<9} {:<8} {:<8} {:>4} {:>3}  {}",
                r.seq,
                r.kind,
                format!("{:?}", r.state).to_lowercase(),
                r.base_version,
                r.mutation.ops.len(),
                r.attempts,
                r.entity_id
            );
        }
    }
    Ok(())
}
