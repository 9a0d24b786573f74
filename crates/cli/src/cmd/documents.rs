//! `outpost documents`: an order's technical documents (available offline or not
//! yet), writing one to a file, and the budget that bounds how much is kept.
//!
//! Sync keeps the documents; these commands never touch the network.

use std::path::Path;

use outpost_core::CoreError;

use super::open;
use crate::print::{outln, print_json};

pub(crate) fn list(dir: &Path, order: &str, json: bool) -> Result<(), CoreError> {
    let app = open(dir)?;
    let docs = app.order_documents(order)?;
    if json {
        return print_json(&docs);
    }
    if docs.is_empty() {
        outln!("Order {order} has no documents on this device (sync to learn of new ones).");
        return Ok(());
    }
    outln!("{:<36}  {:>12}  {:<22}  NAME", "ID", "SIZE", "STATE");
    for d in docs {
        let state = if d.available_offline {
            "available offline".to_owned()
        } else if d.over_budget {
            "not kept (budget full)".to_owned()
        } else if d.received > 0 {
            format!("not yet ({}%)", d.received * 100 / d.size.max(1))
        } else {
            "not yet".to_owned()
        };
        outln!(
            "{:<36}  {:>12}  {:<22}  {} (v{})",
            d.id,
            human_size(d.size),
            state,
            d.name,
            d.version
        );
    }
    Ok(())
}

pub(crate) fn export(dir: &Path, id: &str, output: &Path, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    let bytes = app.export_document(id, output)?;
    if json {
        print_json(&serde_json::json!({ "id": id, "output": output, "bytes": bytes }))
    } else {
        outln!("wrote {} ({bytes} bytes)", output.display());
        Ok(())
    }
}

pub(crate) fn budget(dir: &Path, size: Option<&str>, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    if let Some(size) = size {
        let bytes = if size.eq_ignore_ascii_case("default") {
            None
        } else {
            Some(parse_size(size)?)
        };
        app.set_documents_budget(bytes)?;
    }
    let budget = app.documents_budget()?;
    if json {
        print_json(&serde_json::json!({ "budget_bytes": budget }))
    } else {
        outln!("documents budget: {} ({budget} bytes)", human_size(budget));
        Ok(())
    }
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// `500MB`, `2GB`, `300kB`, `12345` (bytes); decimal units, as disks are sold.
fn parse_size(text: &str) -> Result<u64, CoreError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        _ => {
            return Err(CoreError::BadInput(format!(
                "{text:?} is not a size (e.g. 500MB, 2GB, 300000000)"
            )))
        }
    };
    match num.parse::<f64>() {
        Ok(n) if n >= 0.0 => Ok((n * factor) as u64),
        _ => Err(CoreError::BadInput(format!(
            "{text:?} is not a size (e.g. 500MB, 2GB, 300000000)"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_decimal_units() {
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("2 GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1234").unwrap(), 1234);
        assert!(parse_size("lots").is_err());
    }
}
