//! `outpost failed …`: changes the server refused. List them, show one with the
//! server's reason and the full payload, send one again, or discard it (asking first).
//!
//! What retrying and discarding do to the outbox and the order is `core`'s; this
//! module only asks for confirmation and prints.

use std::path::Path;

use outpost_core::{CoreError, Outpost};

use super::{desk, open};
use crate::args::FailedCmd;
use crate::print::{outln, print_json};

pub(crate) fn run(dir: &Path, cmd: FailedCmd, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    match cmd {
        FailedCmd::List => list(&app, json),
        FailedCmd::Show { id } => show(&app, &id, json),
        FailedCmd::Retry { id } => retry(&mut app, &id, json),
        FailedCmd::Discard { id, yes } => discard(&mut app, &id, yes, json),
    }
}

fn list(app: &Outpost, json: bool) -> Result<(), CoreError> {
    if app.require_dispatcher("").is_ok() {
        return fleet_list(app, json);
    }
    let items = app.failed_syncs()?;
    if json {
        print_json(&items)?;
    } else if items.is_empty() {
        outln!("No failed syncs.");
    } else {
        for f in items {
            outln!(
                "{}  {} of {}: {}",
                f.id,
                f.kind,
                f.order_title.as_deref().unwrap_or(&f.order_id),
                f.message
            );
        }
    }
    Ok(())
}

/// A dispatcher's list: the fleet's open failed syncs, one line (or item) per order.
fn fleet_list(app: &Outpost, json: bool) -> Result<(), CoreError> {
    let items = desk::failed_per_order(app)?;
    if json {
        return print_json(&items);
    }
    if items.is_empty() {
        outln!("No open failed syncs in the fleet.");
    }
    for o in items {
        outln!(
            "{}  {} failed ({}): {}",
            desk::order_line(&o.order),
            o.failed.len(),
            desk::who(o.failed.iter().map(|f| f.username.clone())),
            o.failed
                .iter()
                .map(|f| f.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    Ok(())
}

fn show(app: &Outpost, id: &str, json: bool) -> Result<(), CoreError> {
    let f = app.failed_sync(id)?;
    if json {
        print_json(&f)?;
    } else {
        outln!("failed sync {}", f.id);
        outln!(
            "  order:   {} {}",
            f.order_id,
            f.order_title.unwrap_or_default()
        );
        outln!("  change:  {}", f.kind);
        outln!("  reason:  {} ({})", f.message, f.code);
        for e in &f.field_errors {
            outln!("    {}: {}", e.field, e.message);
        }
        outln!("  payload:");
        let text = serde_json::to_string_pretty(&f.mutation).unwrap_or_default();
        for line in text.lines() {
            outln!("    {line}");
        }
    }
    Ok(())
}

fn retry(app: &mut Outpost, id: &str, json: bool) -> Result<(), CoreError> {
    let row = app.retry_failed(id, Vec::new())?;
    if json {
        print_json(&row)?;
    } else {
        outln!("Queued again; it travels with the next sync.");
    }
    Ok(())
}

/// Without `--yes`, asks on a terminal and refuses when there is none to ask on.
fn discard(app: &mut Outpost, id: &str, yes: bool, json: bool) -> Result<(), CoreError> {
    let f = app.failed_sync(id)?;
    if !yes {
        use std::io::IsTerminal;
        if !std::io::stdin().is_terminal() {
            return Err(CoreError::BadInput(
                "discarding drops the change for good: confirm with --yes".into(),
            ));
        }
        eprint!(
            "Discard the {} of {}? It is dropped for good. [y/N] ",
            f.kind,
            f.order_title.as_deref().unwrap_or(&f.order_id)
        );
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CoreError::BadInput("not discarded".into()));
        }
    }
    app.discard_failed(&f.id)?;
    if json {
        print_json(&serde_json::json!({"discarded": f.id}))?;
    } else {
        outln!("Discarded; the order shows the server's state again.");
    }
    Ok(())
}
