//! Domain types: work orders and inventory, as stored on both sides and sent on the wire.
//!
//! Types here are plain data. Rules about them live in `validate` (field rules, what a
//! completion needs) and `status` (which status may follow which).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::status::Status;

/// How urgent a work order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown priority {s:?}: use low, normal, high or urgent"))
    }
}

/// A quantity in thousandths of the item's unit (so 2.5 m of cable is 2500), which
/// keeps stock arithmetic exact and commutative. On the wire it is a decimal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = f64))]
pub struct Quantity(pub i64);

impl Quantity {
    pub const SCALE: i64 = 1000;

    pub fn from_units(units: i64) -> Self {
        Quantity(units.saturating_mul(Self::SCALE))
    }

    pub fn milli(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (whole, frac) = (abs / 1000, abs % 1000);
        if frac == 0 {
            write!(f, "{sign}{whole}")
        } else {
            let s = format!("{frac:03}");
            write!(f, "{sign}{whole}.{}", s.trim_end_matches('0'))
        }
    }
}

impl std::str::FromStr for Quantity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a quantity: use a number such as 2 or 2.5");
        let s = s.trim();
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (whole, frac) = match body.split_once('.') {
            Some((w, f)) => (w, f),
            None => (body, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if frac.len() > 3
            || !whole
                .chars()
                .chain(frac.chars())
                .all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: i64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let frac_milli: i64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
        let milli = whole
            .checked_mul(1000)
            .and_then(|w| w.checked_add(frac_milli))
            .ok_or_else(bad)?;
        Ok(Quantity(if neg { -milli } else { milli }))
    }
}

impl Serialize for Quantity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        if let Some(i) = n.as_i64() {
            return i
                .checked_mul(1000)
                .map(Quantity)
                .ok_or_else(|| serde::de::Error::custom("quantity out of range"));
        }
        let f = n
            .as_f64()
            .ok_or_else(|| serde::de::Error::custom("quantity is not a number"))?;
        if !f.is_finite() || f.abs() > 1e12 {
            return Err(serde::de::Error::custom("quantity out of range"));
        }
        Ok(Quantity((f * 1000.0).round() as i64))
    }
}

/// The customer the work is done for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub name: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub email: String,
}

/// Where the work is done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
}

/// The machine the work is done on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Equipment {
    #[serde(default)]
    pub asset_tag: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub serial: String,
}

/// When the work is planned, with the IANA time zone of the site (e.g. "Europe/Oslo")
/// so the window is shown in local time wherever the viewer is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScheduledWindow {
    #[serde(serialize_with = "crate::time_json::utc")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "crate::time_json::utc")]
    pub end: DateTime<Utc>,
    pub time_zone: String,
}

/// One step of the order's checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChecklistItem {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub done: bool,
}

/// A note entry. Notes are append-only: concurrent edits keep every entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NoteEntry {
    pub id: Uuid,
    pub author: String,
    pub text: String,
    #[serde(serialize_with = "crate::time_json::utc")]
    pub at: DateTime<Utc>,
}

/// Time worked on the order. An open entry (no `ended_at`) is a running timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TimeEntry {
    pub id: Uuid,
    #[serde(serialize_with = "crate::time_json::utc")]
    pub started_at: DateTime<Utc>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::time_json::opt_utc"
    )]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub note: String,
}

/// A line of parts used: an inventory item and how much of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PartUsed {
    pub id: Uuid,
    pub sku: String,
    pub quantity: Quantity,
}

/// A photo attached to the order, named by the SHA-256 of its bytes (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PhotoRef {
    pub hash: String,
    #[serde(default)]
    pub caption: String,
    #[serde(default)]
    pub media_type: String,
}

/// The customer's signature: an image named by its SHA-256, and who signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub hash: String,
    pub signer: String,
}

/// A work order as both sides hold it.
///
/// Unlike the types a mutation carries (which the server reads and refuses with an
/// unknown member), a whole order is only ever read from the server or from a store,
/// so it ignores members it does not know: a newer server's optional member must not
/// make a row unreadable on an older device (docs/protocol.md, "Compatibility").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkOrder {
    pub id: Uuid,
    /// Human number, assigned by the server; `None` (shown as pending) until then.
    #[serde(default)]
    pub number: Option<u64>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub priority: Priority,
    pub status: Status,
    #[serde(default)]
    pub customer: Customer,
    #[serde(default)]
    pub site: Site,
    #[serde(default)]
    pub equipment: Equipment,
    #[serde(default)]
    pub scheduled: Option<ScheduledWindow>,
    /// Username of the technician the order is assigned to.
    #[serde(default)]
    pub assignee: Option<String>,
    #[serde(default)]
    pub checklist: Vec<ChecklistItem>,
    #[serde(default)]
    pub notes: Vec<NoteEntry>,
    #[serde(default)]
    pub time_entries: Vec<TimeEntry>,
    #[serde(default)]
    pub parts_used: Vec<PartUsed>,
    #[serde(default)]
    pub photos: Vec<PhotoRef>,
    #[serde(default)]
    pub signature: Option<Signature>,
    #[serde(default, serialize_with = "crate::time_json::opt_utc")]
    pub completed_at: Option<DateTime<Utc>>,
    /// The server version this row reflects; 0 for an order the server has not seen.
    #[serde(default)]
    pub version: u64,
}

impl WorkOrder {
    /// A blank order with the given id, the starting point of a `create` mutation.
    pub fn blank(id: Uuid) -> Self {
        WorkOrder {
            id,
            number: None,
            title: String::new(),
            description: String::new(),
            priority: Priority::Normal,
            status: Status::Scheduled,
            customer: Customer::default(),
            site: Site::default(),
            equipment: Equipment::default(),
            scheduled: None,
            assignee: None,
            checklist: Vec::new(),
            notes: Vec::new(),
            time_entries: Vec::new(),
            parts_used: Vec::new(),
            photos: Vec::new(),
            signature: None,
            completed_at: None,
            version: 0,
        }
    }

    /// Every attachment hash the order refers to (signature and photos).
    pub fn attachment_hashes(&self) -> Vec<String> {
        let mut out: Vec<String> = self.photos.iter().map(|p| p.hash.clone()).collect();
        if let Some(sig) = &self.signature {
            out.push(sig.hash.clone());
        }
        out
    }
}

/// Stock of an item at one location (a warehouse, a van). Read only from the server or
/// a store: members it does not know are ignored, as for [`WorkOrder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StockLevel {
    pub location: String,
    pub quantity: Quantity,
}

/// An inventory item. Stock is changed on the server only, by commutative deltas.
/// Read only from the server, a store or an administrator's seed: members it does not
/// know are ignored, as for [`WorkOrder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InventoryItem {
    pub sku: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Unit of measure: "each", "m", "l", …
    pub unit: String,
    /// Price per unit in the smallest currency unit (cents).
    pub price_cents: i64,
    #[serde(default)]
    pub stock: Vec<StockLevel>,
}

impl InventoryItem {
    pub fn total_stock(&self) -> Quantity {
        Quantity(self.stock.iter().map(|s| s.quantity.0).sum())
    }
}

/// Roles a user of the fleet may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Technician,
    Dispatcher,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Technician => "technician",
            Role::Dispatcher => "dispatcher",
            Role::Admin => "admin",
        }
    }

    /// Dispatchers and administrators may act on any order.
    pub fn sees_all_orders(self) -> bool {
        matches!(self, Role::Dispatcher | Role::Admin)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "technician" => Ok(Role::Technician),
            "dispatcher" => Ok(Role::Dispatcher),
            "admin" => Ok(Role::Admin),
            _ => Err(format!(
                "unknown role {s:?}: use technician, dispatcher or admin"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_parses_and_prints_decimals_exactly() {
        for (text, milli, shown) in [
            ("2", 2000, "2"),
            ("2.5", 2500, "2.5"),
            ("0.125", 125, "0.125"),
            ("-1.05", -1050, "-1.05"),
            (".5", 500, "0.5"),
        ] {
            let q: Quantity = text.parse().expect("valid quantity");
            assert_eq!(q.milli(), milli, "{text} parses to {milli} thousandths");
            assert_eq!(q.to_string(), shown, "{text} prints back as {shown}");
        }
        for bad in ["", "abc", "1.2345", "1e3", "--1", "."] {
            assert!(bad.parse::<Quantity>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn quantity_round_trips_through_json() {
        for milli in [0, 1000, 2500, -1500, 125] {
            let q = Quantity(milli);
            let json = serde_json::to_string(&q).expect("serialize");
            let back: Quantity = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, q, "{json} round-trips");
        }
    }

    #[test]
    fn a_work_order_round_trips_and_ignores_members_it_does_not_know() {
        let mut order = WorkOrder::blank(Uuid::now_v7());
        order.title = "Replace filter".into();
        order.site.latitude = Some(59.9);
        let json = serde_json::to_value(&order).expect("serialize");
        let back: WorkOrder = serde_json::from_value(json.clone()).expect("deserialize");
        assert_eq!(back, order);
        // A newer server's optional member must not make the row unreadable on an
        // older device (docs/protocol.md, "Compatibility").
        let mut extra = json;
        extra["from_a_newer_server"] = serde_json::json!({"x": 1});
        let back: WorkOrder = serde_json::from_value(extra).expect("read");
        assert_eq!(back, order);
    }
}
