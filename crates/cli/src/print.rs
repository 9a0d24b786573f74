//! Output shared by several commands: `outln!` (stdout that tolerates a closed pipe),
//! `--json` output, an order's number, and an order printed for a person.
//!
//! Tables and messages that belong to one command stay with that command in `cmd`;
//! errors are printed by `main`, on stderr.

use outpost_core::{CoreError, OrderRow};
use outpost_protocol::WorkOrder;

/// `println!` that stops quietly when stdout is closed (`outpost orders list | head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use outln;

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CoreError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CoreError::Io(format!("cannot encode output: {e}")))?;
    outln!("{text}");
    Ok(())
}

pub(crate) fn number(o: &WorkOrder) -> String {
    o.number
        .map(|n| format!("#{n}"))
        .unwrap_or_else(|| "pending".into())
}

/// One order for a person: what it is, then the work recorded on it.
pub(crate) fn print_order(row: &OrderRow) {
    let o = &row.order;
    outln!("{} {}  ({})", number(o), o.title, o.id);
    outln!("  status:    {}", o.status);
    outln!("  priority:  {}", o.priority.as_str());
    outln!("  sync:      {}", row.sync_state.as_str());
    if let Some(a) = &o.assignee {
        outln!("  assignee:  {a}");
    }
    if !o.customer.name.is_empty() {
        outln!("  customer:  {} {}", o.customer.name, o.customer.phone);
    }
    if !o.site.address.is_empty() {
        outln!("  site:      {}", o.site.address);
    }
    if !o.equipment.asset_tag.is_empty() {
        outln!(
            "  equipment: {} {} {}",
            o.equipment.asset_tag,
            o.equipment.model,
            o.equipment.serial
        );
    }
    if let Some(w) = &o.scheduled {
        outln!(
            "  scheduled: {} – {} UTC ({})",
            w.start.format("%Y-%m-%d %H:%M"),
            w.end.format("%H:%M"),
            w.time_zone
        );
    }
    if !o.description.is_empty() {
        outln!("  {}", o.description);
    }
    print_work(o);
}

/// The rest of [`print_order`]: checklist, parts, notes and the completion.
fn print_work(o: &WorkOrder) {
    if !o.checklist.is_empty() {
        outln!("  checklist:");
        for c in &o.checklist {
            let mark = if c.done { "x" } else { " " };
            let req = if c.required { " (required)" } else { "" };
            outln!("    [{mark}] {}: {}{req}", c.id, c.label);
        }
    }
    if !o.parts_used.is_empty() {
        outln!("  parts used:");
        for p in &o.parts_used {
            outln!("    {} × {}", p.sku, p.quantity);
        }
    }
    if !o.notes.is_empty() {
        outln!("  notes:");
        for n in &o.notes {
            outln!(
                "    {} {}: {}",
                n.at.format("%Y-%m-%d %H:%M"),
                n.author,
                n.text
            );
        }
    }
    if let Some(s) = &o.signature {
        outln!("  signed by: {}", s.signer);
    }
    if !o.photos.is_empty() {
        outln!("  photos:    {}", o.photos.len());
    }
    if let Some(t) = o.completed_at {
        outln!("  completed: {}", t.format("%Y-%m-%d %H:%M UTC"));
    }
}
