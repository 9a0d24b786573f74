//! Order history as reverse diffs.
//!
//! The merge rules may look at an order as it was at a mutation's `base_version`
//! (`merge::needs_base`: rare — a field changed since the base by another device, or a
//! technician pushing on an order that is no longer theirs). The server must keep every
//! version for that, but a third full copy of each row (beside the current row and the
//! change log) made every push write the whole order once more, and orders only grow
//! (notes, time entries, parts lines).
//!
//! So `order_history` keeps, under version `v`, how to get version `v` back from the
//! version that replaced it: the members whose value differs, with their old value, and
//! the lists whose old value is a prefix of the new one (the usual case: a note, a time
//! entry or a parts line appended) as a length to truncate to. Appending a note to an
//! order with a hundred notes writes a few dozen bytes of history, not the order.
//! [`crate::repo::order_at`] starts from the current row and applies the diffs from the
//! newest down to the base. Rows written by earlier servers hold a whole order; they
//! are used as they are (a full body at `v` is version `v`, whatever came after).

use std::collections::BTreeMap;

use outpost_protocol::WorkOrder;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

/// How to get an order's older version back from the version that replaced it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackDiff {
    /// Members of the older version that differ from the newer one, with their older
    /// value. Never empty: `version` always differs.
    pub back: Map<String, Value>,
    /// Lists whose older value is their first `n` items in the newer version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub truncate: BTreeMap<String, usize>,
}

/// The diff that turns `newer` back into `older`.
pub fn back_diff(older: &WorkOrder, newer: &WorkOrder) -> Result<BackDiff, Error> {
    // Every member by name, without `..`: a member added to `WorkOrder` does not
    // compile here until it is diffed too.
    let WorkOrder {
        id,
        number,
        title,
        description,
        priority,
        status,
        customer,
        site,
        equipment,
        scheduled,
        assignee,
        checklist,
        notes,
        time_entries,
        parts_used,
        photos,
        signature,
        completed_at,
        version,
    } = older;
    let mut d = BackDiff::default();
    macro_rules! member {
        ($($name:ident),*) => {$(
            if *$name != newer.$name {
                d.back
                    .insert(stringify!($name).to_owned(), serde_json::to_value($name)?);
            }
        )*};
    }
    macro_rules! list {
        ($($name:ident),*) => {$(
            if newer.$name.starts_with($name) {
                if newer.$name.len() != $name.len() {
                    d.truncate.insert(stringify!($name).to_owned(), $name.len());
                }
            } else {
                d.back
                    .insert(stringify!($name).to_owned(), serde_json::to_value($name)?);
            }
        )*};
    }
    member!(
        id,
        number,
        title,
        description,
        priority,
        status,
        customer,
        site,
        equipment,
        scheduled,
        assignee,
        signature,
        completed_at,
        version
    );
    list!(checklist, notes, time_entries, parts_used, photos);
    Ok(d)
}

/// Turn the JSON object of a newer version into the older one.
pub fn apply_back(newer: &mut Map<String, Value>, d: BackDiff) -> Result<(), Error> {
    for (name, len) in d.truncate {
        match newer.get_mut(&name) {
            Some(Value::Array(items)) if items.len() >= len => items.truncate(len),
            _ => {
                return Err(Error::store(format!(
                    "order history: {name} is not a list of at least {len} items"
                )))
            }
        }
    }
    for (name, value) in d.back {
        newer.insert(name, value);
    }
    Ok(())
}

/// A stored history row: a diff, or (from earlier servers) the whole older version.
pub enum Entry {
    Diff(BackDiff),
    Full(Map<String, Value>),
}

pub fn parse_entry(body: &str) -> Result<Entry, Error> {
    match serde_json::from_str::<Value>(body)? {
        Value::Object(map) if map.contains_key("back") => {
            Ok(Entry::Diff(serde_json::from_value(Value::Object(map))?))
        }
        Value::Object(map) => Ok(Entry::Full(map)),
        _ => Err(Error::store("order history: a row is not a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_protocol::{
        ChecklistItem, NoteEntry, PartUsed, Priority, Quantity, Status, TimeEntry,
    };
    use uuid::Uuid;

    fn at(s: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).expect("valid time")
    }

    fn note(n: u128) -> NoteEntry {
        NoteEntry {
            id: Uuid::from_u128(n),
            author: "tech1".into(),
            text: format!("note {n}"),
            at: at(n as i64),
        }
    }

    fn back_to(older: &WorkOrder, newer: &WorkOrder) -> WorkOrder {
        let d = back_diff(older, newer).expect("diff");
        // Through its stored form, as `order_at` reads it.
        let json = serde_json::to_string(&d).expect("json");
        let Entry::Diff(d) = parse_entry(&json).expect("parse") else {
            panic!("a diff read back as a full row: {json}");
        };
        let Value::Object(mut map) = serde_json::to_value(newer).expect("json") else {
            panic!("an order is not an object");
        };
        apply_back(&mut map, d).expect("apply");
        serde_json::from_value(Value::Object(map)).expect("an order")
    }

    fn base() -> WorkOrder {
        let mut o = WorkOrder::blank(Uuid::from_u128(1));
        o.title = "Pump".into();
        o.version = 3;
        o.notes = vec![note(1), note(2)];
        o.checklist = vec![ChecklistItem {
            id: "c1".into(),
            label: "Step".into(),
            required: true,
            done: false,
        }];
        o
    }

    #[test]
    fn an_appended_note_is_kept_as_a_length() {
        let older = base();
        let mut newer = older.clone();
        newer.version = 4;
        newer.notes.push(note(3));
        newer.description = "now with a description".into();
        let d = back_diff(&older, &newer).expect("diff");
        assert_eq!(d.truncate.get("notes"), Some(&2));
        assert!(!d.back.contains_key("notes"));
        assert_eq!(
            d.back.keys().map(String::as_str).collect::<Vec<_>>(),
            ["description", "version"]
        );
        assert_eq!(back_to(&older, &newer), older);
    }

    #[test]
    fn every_member_changed_comes_back() {
        let older = base();
        let mut newer = older.clone();
        newer.number = Some(42);
        newer.title = "Boiler".into();
        newer.description = "d".into();
        newer.priority = Priority::Urgent;
        newer.status = Status::Completed;
        newer.customer.name = "ACME".into();
        newer.site.address = "Main St 1".into();
        newer.equipment.serial = "SN-9".into();
        newer.assignee = Some("tech2".into());
        newer.checklist[0].done = true;
        newer.notes = vec![note(2)];
        newer.time_entries.push(TimeEntry {
            id: Uuid::from_u128(9),
            started_at: at(10),
            ended_at: Some(at(20)),
            note: "travel".into(),
        });
        newer.parts_used.push(PartUsed {
            id: Uuid::from_u128(8),
            sku: "SKU-1".into(),
            quantity: Quantity(1000),
        });
        newer.completed_at = Some(at(30));
        newer.version = 9;
        assert_eq!(back_to(&older, &newer), older);
        // And forward: a list that shrank or changed is kept whole.
        assert_eq!(back_to(&newer, &older), newer);
    }

    #[test]
    fn a_full_row_from_an_earlier_server_reads_as_full() {
        let o = base();
        let json = serde_json::to_string(&o).expect("json");
        assert!(matches!(parse_entry(&json), Ok(Entry::Full(_))));
    }
}
