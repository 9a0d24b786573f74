//! `outpost conflicts …`: changes the server kept for a person to decide. List them,
//! show both versions field by field, or resolve one field by field or wholesale.
//!
//! The merge rules are the server's (`protocol`); building the resolution is `core`'s.
//! This module prints and passes the choices on.

use std::path::Path;

use outpost_core::{CoreError, FieldChoice, Outpost};
use outpost_protocol::wire::ConflictRecord;

use super::{desk, open};
use crate::args::ConflictsCmd;
use crate::print::{outln, print_json};

pub(crate) fn run(dir: &Path, cmd: ConflictsCmd, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    match cmd {
        ConflictsCmd::List => list(&app, json),
        ConflictsCmd::Show { id } => show(&app, &id, json),
        ConflictsCmd::Resolve {
            id,
            fields,
            accept_mine,
        } => resolve(&mut app, &id, &fields, accept_mine, json),
    }
}

fn list(app: &Outpost, json: bool) -> Result<(), CoreError> {
    if app.require_dispatcher("").is_ok() {
        return fleet_list(app, json);
    }
    let items = app.conflicts()?;
    if json {
        print_json(&items)?;
    } else if items.is_empty() {
        outln!("No conflicts.");
    } else {
        for c in items {
            let what = c
                .record
                .as_ref()
                .map(|r| {
                    format!(
                        "{:?} on order {} ({})",
                        r.kind,
                        r.order_number
                            .map(|n| format!("#{n}"))
                            .unwrap_or_else(|| r.order_id.to_string()),
                        r.fields
                            .iter()
                            .map(|f| f.field.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .unwrap_or_else(|| "details arrive with the next sync".into());
            let state = if c.resolving {
                "resolving"
            } else {
                c.status.as_str()
            };
            outln!("{}  {:<9} {}", c.id, state, what);
        }
    }
    Ok(())
}

/// A dispatcher's list: the fleet's open conflicts, one line (or item) per order.
fn fleet_list(app: &Outpost, json: bool) -> Result<(), CoreError> {
    let items = desk::conflicts_per_order(app)?;
    if json {
        return print_json(&items);
    }
    if items.is_empty() {
        outln!("No open conflicts in the fleet.");
    }
    for o in items {
        let mut fields: Vec<&str> = o
            .conflicts
            .iter()
            .flat_map(|c| c.fields.iter().map(|f| f.field.as_str()))
            .collect();
        fields.sort_unstable();
        fields.dedup();
        outln!(
            "{}  {} conflict{} ({}): {}",
            desk::order_line(&o.order),
            o.conflicts.len(),
            if o.conflicts.len() == 1 { "" } else { "s" },
            desk::who(o.conflicts.iter().filter_map(|c| c.username.clone())),
            if fields.is_empty() {
                "whole change".to_owned()
            } else {
                fields.join(", ")
            }
        );
    }
    Ok(())
}

fn show(app: &Outpost, id: &str, json: bool) -> Result<(), CoreError> {
    let c = app.conflict(id)?;
    if json {
        print_json(&c)?;
    } else {
        outln!(
            "conflict {} ({})",
            c.id,
            if c.resolving {
                "resolving"
            } else {
                c.status.as_str()
            }
        );
        if let Some(r) = &c.record {
            print_record(r);
        } else {
            outln!("  details arrive with the next sync");
        }
    }
    Ok(())
}

/// The server's record of a conflict: base, server and device value of each field.
fn print_record(r: &ConflictRecord) {
    outln!(
        "  order:  {} by {} on {}",
        r.order_id,
        r.username,
        r.created_at.format("%Y-%m-%d %H:%M")
    );
    outln!("  kind:   {:?}", r.kind);
    outln!(
        "  {:<24} {:<28} {:<28} {}",
        "FIELD",
        "BASE",
        "SERVER (theirs)",
        "DEVICE (mine)"
    );
    let show = |s: &Option<outpost_protocol::SetOp>| {
        s.as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .map(|v| v["value"].to_string())
            .unwrap_or_else(|| "-".into())
    };
    for f in &r.fields {
        outln!(
            "  {:<24} {:<28} {:<28} {}",
            f.field,
            show(&f.base),
            show(&f.server),
            show(&Some(f.device.clone()))
        );
    }
    if let Some(res) = &r.resolution {
        outln!(
            "  resolved: {:?} by {} at {}",
            res.outcome,
            res.decided_by,
            res.decided_at
        );
    }
}

fn resolve(
    app: &mut Outpost,
    id: &str,
    fields: &[(String, FieldChoice)],
    accept_mine: bool,
    json: bool,
) -> Result<(), CoreError> {
    if fields.is_empty() && !accept_mine {
        return Err(CoreError::BadInput(
            "say what stands: --field NAME=mine|theirs|VALUE (repeat), or --accept-mine".into(),
        ));
    }
    let c = app.resolve_conflict(id, fields, accept_mine)?;
    if json {
        print_json(&c)?;
    } else {
        outln!("Resolution saved; it travels with the next sync.");
    }
    Ok(())
}
