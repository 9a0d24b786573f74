//! Domain validation, run by both the device (before saving) and the server (before
//! applying). Errors are per field so a form can show each beside its input.

use std::fmt::Display;

use serde::{Deserialize, Serialize};

use crate::domain::{Quantity, WorkOrder};

pub const TITLE_MAX_CHARS: usize = 200;
pub const TEXT_MAX_CHARS: usize = 10_000;
pub const SHORT_MAX_CHARS: usize = 200;
pub const ADDRESS_MAX_CHARS: usize = 500;
pub const LIST_MAX_ITEMS: usize = 500;
pub const QUANTITY_MAX: Quantity = Quantity(1_000_000 * Quantity::SCALE);

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field's path, e.g. `title`, `customer.email`, `checklist.c1`.
    pub field: String,
    /// A stable code the UI may branch on (`required`, `too_long`, `invalid`, …).
    pub code: String,
    /// What is wrong, in words a technician understands.
    pub message: String,
}

/// All the problems found; never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.summary())]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl ValidationErrors {
    pub fn single(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let mut v = ValidationErrors::default();
        v.push(field, code, message);
        v
    }

    pub fn push(
        &mut self,
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(FieldError {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_result(self) -> Result<(), ValidationErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    pub fn summary(&self) -> String {
        self.errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

// Field paths are `Display` (often `format_args!`), made into a string only for an
// error: a valid order with many notes builds none.
fn check_len(errs: &mut ValidationErrors, field: impl Display, value: &str, max: usize) {
    if value.len() > max && value.chars().count() > max {
        errs.push(
            field.to_string(),
            "too_long",
            format!("must be at most {max} characters"),
        );
    }
}

fn check_required(errs: &mut ValidationErrors, field: impl Display, value: &str, max: usize) {
    if value.trim().is_empty() {
        errs.push(field.to_string(), "required", "must not be empty");
    } else {
        check_len(errs, field, value, max);
    }
}

/// Whether `s` is a lowercase hex SHA-256 digest.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_plausible_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

fn is_plausible_phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && s.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

fn is_plausible_time_zone(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && (s == "UTC" || s.contains('/'))
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c))
}

/// Field rules every stored order satisfies.
pub fn validate_order(order: &WorkOrder) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    check_required(&mut errs, "title", &order.title, TITLE_MAX_CHARS);
    check_len(&mut errs, "description", &order.description, TEXT_MAX_CHARS);

    check_len(
        &mut errs,
        "customer.name",
        &order.customer.name,
        SHORT_MAX_CHARS,
    );
    if !order.customer.email.is_empty() && !is_plausible_email(&order.customer.email) {
        errs.push(
            "customer.email",
            "invalid",
            "is not an e-mail address (name@example.com)",
        );
    }
    if !order.customer.phone.is_empty() && !is_plausible_phone(&order.customer.phone) {
        errs.push(
            "customer.phone",
            "invalid",
            "is not a phone number (digits, spaces and + - ( ) only)",
        );
    }

    check_len(
        &mut errs,
        "site.address",
        &order.site.address,
        ADDRESS_MAX_CHARS,
    );
    match (order.site.latitude, order.site.longitude) {
        (Some(lat), Some(lon)) => {
            if !(-90.0..=90.0).contains(&lat) {
                errs.push(
                    "site.latitude",
                    "out_of_range",
                    "must be between -90 and 90",
                );
            }
            if !(-180.0..=180.0).contains(&lon) {
                errs.push(
                    "site.longitude",
                    "out_of_range",
                    "must be between -180 and 180",
                );
            }
        }
        (None, None) => {}
        _ => errs.push(
            "site.latitude",
            "invalid",
            "give both latitude and longitude, or neither",
        ),
    }
    for (field, value) in [
        ("equipment.asset_tag", &order.equipment.asset_tag),
        ("equipment.model", &order.equipment.model),
        ("equipment.serial", &order.equipment.serial),
    ] {
        check_len(&mut errs, field, value, SHORT_MAX_CHARS);
    }

    if let Some(w) = &order.scheduled {
        if w.end <= w.start {
            errs.push("scheduled.end", "invalid", "must be after the start");
        }
        if !is_plausible_time_zone(&w.time_zone) {
            errs.push(
                "scheduled.time_zone",
                "invalid",
                "must be a time zone name such as Europe/Oslo or UTC",
            );
        }
    }
    if let Some(a) = &order.assignee {
        check_required(&mut errs, "assignee", a, SHORT_MAX_CHARS);
    }

    for (list, len) in [
        ("checklist", order.checklist.len()),
        ("notes", order.notes.len()),
        ("time_entries", order.time_entries.len()),
        ("parts_used", order.parts_used.len()),
        ("photos", order.photos.len()),
    ] {
        if len > LIST_MAX_ITEMS {
            errs.push(
                list,
                "too_many",
                format!("may hold at most {LIST_MAX_ITEMS} entries"),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    for item in &order.checklist {
        if item.id.trim().is_empty() {
            errs.push("checklist", "invalid", "every checklist item needs an id");
        } else if !seen.insert(item.id.as_str()) {
            errs.push(
                format!("checklist.{}", item.id),
                "duplicate",
                "appears twice",
            );
        }
        check_required(
            &mut errs,
            format_args!("checklist.{}.label", item.id),
            &item.label,
            SHORT_MAX_CHARS,
        );
    }
    for note in &order.notes {
        check_required(
            &mut errs,
            format_args!("notes.{}.text", note.id),
            &note.text,
            TEXT_MAX_CHARS,
        );
        check_required(
            &mut errs,
            format_args!("notes.{}.author", note.id),
            &note.author,
            SHORT_MAX_CHARS,
        );
    }
    for t in &order.time_entries {
        if let Some(end) = t.ended_at {
            if end < t.started_at {
                errs.push(
                    format!("time_entries.{}.ended_at", t.id),
                    "invalid",
                    "must not be before the start",
                );
            }
        }
        check_len(
            &mut errs,
            format_args!("time_entries.{}.note", t.id),
            &t.note,
            TEXT_MAX_CHARS,
        );
    }
    for p in &order.parts_used {
        check_required(
            &mut errs,
            format_args!("parts_used.{}.sku", p.id),
            &p.sku,
            SHORT_MAX_CHARS,
        );
        if p.quantity.milli() <= 0 {
            errs.push(
                format!("parts_used.{}.quantity", p.id),
                "out_of_range",
                "must be more than 0",
            );
        } else if p.quantity > QUANTITY_MAX {
            errs.push(
                format!("parts_used.{}.quantity", p.id),
                "out_of_range",
                "must be at most 1000000",
            );
        }
    }
    for p in &order.photos {
        if !is_sha256_hex(&p.hash) {
            errs.push(
                "photos",
                "invalid",
                "a photo reference is not a SHA-256 hash",
            );
        }
        check_len(&mut errs, "photos.caption", &p.caption, SHORT_MAX_CHARS);
    }
    if let Some(sig) = &order.signature {
        if !is_sha256_hex(&sig.hash) {
            errs.push(
                "signature",
                "invalid",
                "the signature reference is not a SHA-256 hash",
            );
        }
        check_required(&mut errs, "signature.signer", &sig.signer, SHORT_MAX_CHARS);
    }
    errs.into_result()
}

/// What a completion needs on top of the field rules: every required checklist item
/// done, and the customer's signature with the signer's name.
pub fn validate_completion(order: &WorkOrder) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    for item in order.checklist.iter().filter(|i| i.required && !i.done) {
        errs.push(
            format!("checklist.{}", item.id),
            "required",
            format!("\"{}\" must be done before completing", item.label),
        );
    }
    match &order.signature {
        None => errs.push(
            "signature",
            "required",
            "the customer's signature is needed to complete",
        ),
        Some(sig) if sig.signer.trim().is_empty() => errs.push(
            "signature.signer",
            "required",
            "the signer's name is needed to complete",
        ),
        Some(_) => {}
    }
    errs.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::*;
    use uuid::Uuid;

    fn valid() -> WorkOrder {
        let mut o = WorkOrder::blank(Uuid::now_v7());
        o.title = "Service boiler".into();
        o
    }

    fn fields(e: ValidationErrors) -> Vec<String> {
        e.errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_minimal_order_is_valid() {
        assert_eq!(validate_order(&valid()), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut o = valid();
        o.title = "   ".into();
        o.customer.email = "not-an-email".into();
        o.customer.phone = "call me".into();
        o.site.latitude = Some(91.0);
        o.site.longitude = Some(0.0);
        let errs = validate_order(&o).expect_err("invalid order");
        assert_eq!(
            fields(errs),
            ["title", "customer.email", "customer.phone", "site.latitude"]
        );
    }

    #[test]
    fn a_part_line_needs_a_positive_quantity() {
        let mut o = valid();
        let id = Uuid::nil();
        o.parts_used.push(PartUsed {
            id,
            sku: "X".into(),
            quantity: Quantity(0),
        });
        let errs = validate_order(&o).expect_err("zero quantity");
        assert_eq!(fields(errs), [format!("parts_used.{id}.quantity")]);
    }

    #[test]
    fn completion_needs_required_items_and_a_signature() {
        let mut o = valid();
        o.checklist.push(ChecklistItem {
            id: "c1".into(),
            label: "Check pressure".into(),
            required: true,
            done: false,
        });
        o.checklist.push(ChecklistItem {
            id: "c2".into(),
            label: "Optional".into(),
            required: false,
            done: false,
        });
        let errs = validate_completion(&o).expect_err("not ready");
        assert_eq!(fields(errs), ["checklist.c1", "signature"]);
        o.checklist[0].done = true;
        o.signature = Some(Signature {
            hash: "a".repeat(64),
            signer: "Ada".into(),
        });
        assert_eq!(validate_completion(&o), Ok(()));
    }

    #[test]
    fn time_zones_must_look_like_iana_names() {
        for ok in ["UTC", "Europe/Oslo", "America/Argentina/Buenos_Aires"] {
            assert!(is_plausible_time_zone(ok), "{ok}");
        }
        for bad in ["", "Oslo", "Europe/Oslo; DROP", "+02:00"] {
            assert!(!is_plausible_time_zone(bad), "{bad}");
        }
    }
}
