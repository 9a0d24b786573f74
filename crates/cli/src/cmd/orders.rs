//! `outpost orders …`: list, show, create, edit, complete, cancel and assign work
//! orders on this device.
//!
//! Every change is saved locally and queued for the server by `core`; sending it is
//! `sync`. How one order is printed is shared with other output, in `print`.

use std::path::{Path, PathBuf};

use outpost_core::{Completion, CoreError, Evidence, NewOrder, OrderEdit, Outpost};

use super::open;
use crate::args::{EditArgs, OrdersCmd};
use crate::print::{number, outln, print_json, print_order};

pub(crate) fn run(dir: &Path, cmd: OrdersCmd, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    match cmd {
        OrdersCmd::List => list(&app, json),
        OrdersCmd::Show { id } => show(&app, &id, json),
        OrdersCmd::Create {
            title,
            customer,
            address,
            description,
            priority,
        } => create(
            &mut app,
            NewOrder {
                title,
                description,
                customer,
                address,
                priority,
            },
            json,
        ),
        OrdersCmd::Edit(a) => edit(&mut app, a, json),
        OrdersCmd::Complete {
            id,
            signature,
            signer,
            photo,
        } => complete(&mut app, &id, &signature, signer, &photo, json),
        OrdersCmd::Cancel { id, reason } => {
            let row = app.cancel_order(&id, &reason)?;
            saved(&row, json)
        }
        OrdersCmd::Assign { id, to } => {
            let row = app.assign_order(&id, &to)?;
            saved(&row, json)
        }
    }
}

fn saved(row: &outpost_core::OrderRow, json: bool) -> Result<(), CoreError> {
    if json {
        print_json(row)?;
    } else {
        outln!("Saved on this device:");
        print_order(row);
    }
    Ok(())
}

fn list(app: &Outpost, json: bool) -> Result<(), CoreError> {
    let rows = app.orders()?;
    if json {
        print_json(&rows)?;
    } else if rows.is_empty() {
        outln!("No work orders on this device.");
    } else {
        outln!(
            "{:<8} {:<11} {:<8} {:<8} {:<16} TITLE",
            "NUMBER",
            "STATUS",
            "PRIORITY",
            "SYNC",
            "SCHEDULED"
        );
        for r in rows {
            let o = &r.order;
            let when = o
                .scheduled
                .as_ref()
                .map(|w| w.start.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_else(|| "-".into());
            outln!(
                "{:<8} {:<11} {:<8} {:<8} {:<16} {}  [{}]",
                number(o),
                o.status.as_str(),
                o.priority.as_str(),
                r.sync_state.as_str(),
                when,
                o.title,
                o.id
            );
        }
    }
    Ok(())
}

fn show(app: &Outpost, id: &str, json: bool) -> Result<(), CoreError> {
    let row = app.order(id)?;
    if json {
        print_json(&row)?;
    } else {
        print_order(&row);
    }
    Ok(())
}

fn create(app: &mut Outpost, new: NewOrder, json: bool) -> Result<(), CoreError> {
    let row = app.create_order(new)?;
    if json {
        print_json(&row)?;
    } else {
        outln!("Created (saved on this device):");
        print_order(&row);
    }
    Ok(())
}

fn edit(app: &mut Outpost, a: EditArgs, json: bool) -> Result<(), CoreError> {
    let row = app.edit_order(
        &a.id,
        OrderEdit {
            title: a.title,
            description: a.description,
            notes: a.note,
            status: a.status,
            priority: a.priority,
            check: a.check,
            uncheck: a.uncheck,
            parts: a.part,
            add_checklist: a
                .add_step
                .into_iter()
                .map(|(id, label)| outpost_protocol::ChecklistItem {
                    id,
                    label,
                    required: true,
                    done: false,
                })
                .collect(),
        },
    )?;
    if json {
        print_json(&row)?;
    } else {
        outln!("Saved on this device:");
        print_order(&row);
    }
    Ok(())
}

fn complete(
    app: &mut Outpost,
    id: &str,
    signature: &PathBuf,
    signer: String,
    photo: &[PathBuf],
    json: bool,
) -> Result<(), CoreError> {
    let signature_png = read_file(signature)?;
    let photos = photo.iter().map(read_file).collect::<Result<Vec<_>, _>>()?;
    let row = app.complete_order(
        id,
        Completion {
            signature_png,
            signer,
            photos,
        },
    )?;
    if json {
        print_json(&row)?;
    } else {
        outln!("Completed (saved on this device):");
        print_order(&row);
    }
    Ok(())
}

/// A file given on the command line (a signature or a photo), with its name.
fn read_file(path: &PathBuf) -> Result<Evidence, CoreError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CoreError::BadInput(format!("cannot read {}: {e}", path.display())))?;
    Ok(Evidence {
        bytes,
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}
