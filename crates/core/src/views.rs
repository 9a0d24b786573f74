//! The types that cross to the desktop UI, declared once here and exported to
//! TypeScript (`ui/src/generated/`) with ts-rs; a test fails when the checked-in
//! TypeScript is stale (`OUTPOST_UPDATE_BINDINGS=1 cargo test -p outpost-core
//! bindings` rewrites it).
//!
//! Why views instead of the domain types themselves: the protocol and store types are
//! the wire and storage format and do not depend on ts-rs; the UI wants a flatter shape
//! (a list row without checklist and notes, quantities as numbers, no `u64` that
//! TypeScript would see as `bigint`). Each conversion destructures its source without
//! `..`, so adding a field to a domain type fails to compile here until the view has
//! decided what to do with it.
//!
//! Inputs from the UI are parsed here too (`TryFrom`), with their errors per field, so
//! that the shell's commands stay one line. Left out on purpose: anything about sync
//! (the engine will publish its own status type) and the database key, which never
//! reaches the UI.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use outpost_protocol::{
    ChecklistItem, Customer, Equipment, FieldError, InventoryItem, NoteEntry, PartUsed, PhotoRef,
    Priority, Quantity, Role, ScheduledWindow, Signature, Site, Status, StockLevel, TimeEntry,
    ValidationErrors, WorkOrder,
};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{Completion, CoreError, Evidence, NewOrder, OrderEdit, OrderRow, SyncState};
use crate::{OutboxRow, OutboxState};

/// Where the generated TypeScript goes, relative to this crate.
pub const BINDINGS_DIR: &str = "../../ui/src/generated";

/// A work order's status, as the UI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Scheduled,
    EnRoute,
    InProgress,
    OnHold,
    Completed,
    Cancelled,
}

impl From<Status> for OrderStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Scheduled => OrderStatus::Scheduled,
            Status::EnRoute => OrderStatus::EnRoute,
            Status::InProgress => OrderStatus::InProgress,
            Status::OnHold => OrderStatus::OnHold,
            Status::Completed => OrderStatus::Completed,
            Status::Cancelled => OrderStatus::Cancelled,
        }
    }
}

impl From<OrderStatus> for Status {
    fn from(s: OrderStatus) -> Self {
        match s {
            OrderStatus::Scheduled => Status::Scheduled,
            OrderStatus::EnRoute => Status::EnRoute,
            OrderStatus::InProgress => Status::InProgress,
            OrderStatus::OnHold => Status::OnHold,
            OrderStatus::Completed => Status::Completed,
            OrderStatus::Cancelled => Status::Cancelled,
        }
    }
}

/// How urgent an order is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OrderPriority {
    Low,
    Normal,
    High,
    Urgent,
}

impl From<Priority> for OrderPriority {
    fn from(p: Priority) -> Self {
        match p {
            Priority::Low => OrderPriority::Low,
            Priority::Normal => OrderPriority::Normal,
            Priority::High => OrderPriority::High,
            Priority::Urgent => OrderPriority::Urgent,
        }
    }
}

impl From<OrderPriority> for Priority {
    fn from(p: OrderPriority) -> Self {
        match p {
            OrderPriority::Low => Priority::Low,
            OrderPriority::Normal => Priority::Normal,
            OrderPriority::High => Priority::High,
            OrderPriority::Urgent => Priority::Urgent,
        }
    }
}

/// Where an order's local changes are on their way to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OrderSyncState {
    /// Changed on this device, not sent yet ("saved on this device").
    Saved,
    Syncing,
    Synced,
    Failed,
    Conflict,
}

impl From<SyncState> for OrderSyncState {
    fn from(s: SyncState) -> Self {
        match s {
            SyncState::Saved => OrderSyncState::Saved,
            SyncState::Syncing => OrderSyncState::Syncing,
            SyncState::Synced => OrderSyncState::Synced,
            SyncState::Failed => OrderSyncState::Failed,
            SyncState::Conflict => OrderSyncState::Conflict,
        }
    }
}

/// One row of the order list: enough to show, sort, bucket (today, upcoming,
/// completed) and search, without the order's lists.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct OrderSummary {
    pub id: String,
    /// Assigned by the server; null until then (shown as "new").
    pub number: Option<u32>,
    pub title: String,
    pub status: OrderStatus,
    pub priority: OrderPriority,
    pub customer: String,
    pub address: String,
    pub asset_tag: String,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    /// The site's IANA time zone (the visit's times are shown in it, as on the order).
    pub time_zone: Option<String>,
    pub assignee: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub sync_state: OrderSyncState,
    /// Reassigned away while it held this device's unsynced work: who has it now. The
    /// order stays, marked, until its work is settled.
    pub reassigned_to: Option<String>,
}

/// The technician's tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum OrderBucket {
    Today,
    Upcoming,
    Completed,
}

/// What the order list asks for: one tab (or all orders), filters, search words and
/// the page. Searched and paged on the device's database; only the page crosses.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct OrderQueryInput {
    #[serde(default)]
    pub text: String,
    /// A tab, or null for every order (the dispatcher's list).
    pub bucket: Option<OrderBucket>,
    /// RFC 3339: the start of the viewer's next local day (today / upcoming line);
    /// null: now plus a day.
    pub tomorrow: Option<String>,
    pub status: Option<OrderStatus>,
    pub priority: Option<OrderPriority>,
    pub sync: Option<OrderSyncState>,
    /// `""`: orders nobody is assigned to; a name: that person's.
    pub assignee: Option<String>,
    #[serde(default)]
    pub offset: u32,
    pub limit: u32,
}

impl OrderQueryInput {
    /// The store's query; `now` stands in for a missing `tomorrow`.
    pub fn to_query(&self, now: DateTime<Utc>) -> Result<outpost_store::OrderQuery, CoreError> {
        let tomorrow = match self.tomorrow.as_deref() {
            // A day from now, to the whole minute: the store keeps the tab counts while
            // the day line stays put, and a line that moved every call (a dispatcher's
            // list, which sent none) counted every order on every keystroke.
            None => {
                use chrono::DurationRound;
                let later = now + chrono::TimeDelta::days(1);
                later
                    .duration_trunc(chrono::TimeDelta::minutes(1))
                    .unwrap_or(later)
            }
            Some(t) => DateTime::parse_from_rfc3339(t)
                .map_err(|e| {
                    CoreError::BadInput(format!("the list's day boundary {t:?} is not a time: {e}"))
                })?
                .with_timezone(&Utc),
        };
        Ok(outpost_store::OrderQuery {
            text: self.text.clone(),
            bucket: self.bucket.map(|b| match b {
                OrderBucket::Today => outpost_store::Bucket::Today,
                OrderBucket::Upcoming => outpost_store::Bucket::Upcoming,
                OrderBucket::Completed => outpost_store::Bucket::Completed,
            }),
            tomorrow,
            status: self.status.map(Status::from),
            priority: self.priority.map(Priority::from),
            sync: self.sync.map(|s| match s {
                OrderSyncState::Saved => SyncState::Saved,
                OrderSyncState::Syncing => SyncState::Syncing,
                OrderSyncState::Synced => SyncState::Synced,
                OrderSyncState::Failed => SyncState::Failed,
                OrderSyncState::Conflict => SyncState::Conflict,
            }),
            assignee: self.assignee.clone(),
            offset: self.offset as usize,
            limit: self.limit as usize,
        })
    }
}

/// How many orders each tab holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub struct BucketCountsView {
    pub today: u32,
    pub upcoming: u32,
    pub completed: u32,
}

/// One page of the order list.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct OrderPageView {
    pub rows: Vec<OrderSummary>,
    /// How many orders match in all, or, when `total_capped`, how many were counted.
    pub total: u32,
    /// More orders match than `total`: the list says "more than".
    pub total_capped: bool,
    pub counts: BucketCountsView,
    /// Everyone an order is assigned to (the dispatcher's filter).
    pub assignees: Vec<String>,
}

impl From<&outpost_store::OrderPage> for OrderPageView {
    fn from(p: &outpost_store::OrderPage) -> Self {
        let outpost_store::OrderPage {
            rows,
            total,
            total_capped,
            counts,
            assignees,
        } = p;
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        OrderPageView {
            rows: rows.iter().map(OrderSummary::from).collect(),
            total: n(*total),
            total_capped: *total_capped,
            counts: BucketCountsView {
                today: n(counts.today),
                upcoming: n(counts.upcoming),
                completed: n(counts.completed),
            },
            assignees: assignees.clone(),
        }
    }
}

/// A checklist step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct ChecklistItemView {
    pub id: String,
    pub label: String,
    pub required: bool,
    pub done: bool,
}

/// A note entry (notes are append-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct NoteView {
    pub id: String,
    pub author: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// Time worked; `ended_at` null is a running timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct TimeEntryView {
    pub id: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub note: String,
}

/// A line of parts used. `quantity` is in the item's unit (2.5 m is 2.5).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct PartUsedView {
    pub id: String,
    pub sku: String,
    pub quantity: f64,
}

/// A photo, named by the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct PhotoView {
    pub hash: String,
    pub caption: String,
    pub media_type: String,
}

/// The customer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SignatureView {
    pub hash: String,
    pub signer: String,
}

/// Everything the order screen shows.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct OrderDetail {
    pub summary: OrderSummary,
    pub description: String,
    pub customer_phone: String,
    pub customer_email: String,
    pub equipment_model: String,
    pub equipment_serial: String,
    pub time_zone: Option<String>,
    pub checklist: Vec<ChecklistItemView>,
    pub notes: Vec<NoteView>,
    pub time_entries: Vec<TimeEntryView>,
    pub parts_used: Vec<PartUsedView>,
    pub photos: Vec<PhotoView>,
    pub signature: Option<SignatureView>,
    /// The server version this row reflects (0: the server has not seen it).
    pub version: u32,
}

fn quantity_units(q: Quantity) -> f64 {
    q.milli() as f64 / Quantity::SCALE as f64
}

fn small(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl From<&OrderRow> for OrderSummary {
    fn from(row: &OrderRow) -> Self {
        let o = &row.order;
        let ScheduledWindowParts {
            start,
            end,
            time_zone,
        } = ScheduledWindowParts::of(&o.scheduled);
        OrderSummary {
            id: o.id.to_string(),
            number: o.number.map(small),
            title: o.title.clone(),
            status: o.status.into(),
            priority: o.priority.into(),
            customer: o.customer.name.clone(),
            address: o.site.address.clone(),
            asset_tag: o.equipment.asset_tag.clone(),
            scheduled_start: start,
            scheduled_end: end,
            time_zone,
            assignee: o.assignee.clone(),
            completed_at: o.completed_at,
            sync_state: row.sync_state.into(),
            reassigned_to: row.reassigned_to.clone(),
        }
    }
}

struct ScheduledWindowParts {
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    time_zone: Option<String>,
}

impl ScheduledWindowParts {
    fn of(w: &Option<ScheduledWindow>) -> Self {
        match w {
            Some(ScheduledWindow {
                start,
                end,
                time_zone,
            }) => ScheduledWindowParts {
                start: Some(*start),
                end: Some(*end),
                time_zone: Some(time_zone.clone()),
            },
            None => ScheduledWindowParts {
                start: None,
                end: None,
                time_zone: None,
            },
        }
    }
}

impl From<&OrderRow> for OrderDetail {
    fn from(row: &OrderRow) -> Self {
        let summary = OrderSummary::from(row);
        // No `..`: a new field on WorkOrder must be placed in a view or ignored here.
        let WorkOrder {
            id: _,
            number: _,
            title: _,
            description,
            priority: _,
            status: _,
            customer,
            site,
            equipment,
            scheduled,
            assignee: _,
            checklist,
            notes,
            time_entries,
            parts_used,
            photos,
            signature,
            completed_at: _,
            version,
        } = &row.order;
        let Customer {
            name: _,
            phone,
            email,
        } = customer;
        let Site {
            address: _,
            latitude: _,
            longitude: _,
        } = site;
        let Equipment {
            asset_tag: _,
            model,
            serial,
        } = equipment;
        OrderDetail {
            summary,
            description: description.clone(),
            customer_phone: phone.clone(),
            customer_email: email.clone(),
            equipment_model: model.clone(),
            equipment_serial: serial.clone(),
            time_zone: ScheduledWindowParts::of(scheduled).time_zone,
            checklist: checklist
                .iter()
                .map(
                    |ChecklistItem {
                         id,
                         label,
                         required,
                         done,
                     }| ChecklistItemView {
                        id: id.clone(),
                        label: label.clone(),
                        required: *required,
                        done: *done,
                    },
                )
                .collect(),
            notes: notes
                .iter()
                .map(
                    |NoteEntry {
                         id,
                         author,
                         text,
                         at,
                     }| NoteView {
                        id: id.to_string(),
                        author: author.clone(),
                        text: text.clone(),
                        at: *at,
                    },
                )
                .collect(),
            time_entries: time_entries
                .iter()
                .map(
                    |TimeEntry {
                         id,
                         started_at,
                         ended_at,
                         note,
                     }| TimeEntryView {
                        id: id.to_string(),
                        started_at: *started_at,
                        ended_at: *ended_at,
                        note: note.clone(),
                    },
                )
                .collect(),
            parts_used: parts_used
                .iter()
                .map(|PartUsed { id, sku, quantity }| PartUsedView {
                    id: id.to_string(),
                    sku: sku.clone(),
                    quantity: quantity_units(*quantity),
                })
                .collect(),
            photos: photos
                .iter()
                .map(
                    |PhotoRef {
                         hash,
                         caption,
                         media_type,
                     }| PhotoView {
                        hash: hash.clone(),
                        caption: caption.clone(),
                        media_type: media_type.clone(),
                    },
                )
                .collect(),
            signature: signature
                .as_ref()
                .map(|Signature { hash, signer }| SignatureView {
                    hash: hash.clone(),
                    signer: signer.clone(),
                }),
            version: small(*version),
        }
    }
}

/// Stock of an item at one place (the van, a depot).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct StockView {
    pub location: String,
    pub quantity: f64,
}

/// An inventory item with its stock.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct InventoryView {
    pub sku: String,
    pub name: String,
    pub description: String,
    pub unit: String,
    #[ts(type = "number")]
    pub price_cents: i64,
    pub stock: Vec<StockView>,
    /// Stock summed over all locations.
    pub total_stock: f64,
}

impl From<&InventoryItem> for InventoryView {
    fn from(item: &InventoryItem) -> Self {
        let InventoryItem {
            sku,
            name,
            description,
            unit,
            price_cents,
            stock,
        } = item;
        let total: i64 = stock.iter().map(|s| s.quantity.milli()).sum();
        InventoryView {
            sku: sku.clone(),
            name: name.clone(),
            description: description.clone(),
            unit: unit.clone(),
            price_cents: *price_cents,
            stock: stock
                .iter()
                .map(|StockLevel { location, quantity }| StockView {
                    location: location.clone(),
                    quantity: quantity_units(*quantity),
                })
                .collect(),
            total_stock: quantity_units(Quantity(total)),
        }
    }
}

/// Which stock the Inventory screen shows: the signed-in technician's van, or the
/// warehouse (every location that is not a van, `protocol::stock::is_van`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum StockPlace {
    MyVan,
    Warehouse,
}

/// What an inventory page asks for: the place, search words (SKU or name) and the
/// page. Searched and paged on the device's database; only the page crosses.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct InventoryPageInput {
    pub place: StockPlace,
    #[serde(default)]
    pub query: String,
    #[serde(default)]
    pub offset: u32,
    pub limit: u32,
}

/// An item and its quantity in the page's place (the van, the warehouse); null when
/// it is not stocked there.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct StockedItemView {
    pub item: InventoryView,
    pub here: Option<f64>,
}

/// One page of the inventory seen from a place: the part picker (the van's items
/// first, then the rest) or the Inventory screen's "my van" and "warehouse" views.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
pub struct StockPageView {
    /// The van the page is about (`van-<user>`); null for the warehouse, and when the
    /// device knows no technician to ask about (nobody signed in, order unassigned).
    pub location: Option<String>,
    /// Whose van it is (the order's assignee for the picker, else the signed-in user).
    pub van_owner: Option<String>,
    /// Whether that van is the signed-in person's ("in your van").
    pub yours: bool,
    pub items: Vec<StockedItemView>,
    /// More items follow this page.
    pub more: bool,
}

impl StockPageView {
    /// The store's page, about `owner`'s van (`None`: the warehouse).
    pub fn of(
        page: &outpost_store::InventoryPage,
        owner: Option<&str>,
        signed_in: Option<&str>,
    ) -> Self {
        let outpost_store::InventoryPage { rows, more } = page;
        StockPageView {
            location: owner.map(outpost_protocol::stock::van_of),
            van_owner: owner.map(str::to_owned),
            yours: owner.is_some() && owner == signed_in,
            items: rows
                .iter()
                .map(|outpost_store::StockRow { item, here }| StockedItemView {
                    item: InventoryView::from(item),
                    here: here.map(quantity_units),
                })
                .collect(),
            more: *more,
        }
    }
}

/// What the sync indicator shows while no sync engine runs: the local half (how much
/// is waiting, failed or in conflict). The engine's own status will join it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SyncSummary {
    /// Changes waiting to be sent (pending or sent and unacknowledged).
    pub pending: u32,
    pub failed: u32,
    /// The oldest waiting change, when there is one.
    pub oldest_pending_at: Option<String>,
}

impl SyncSummary {
    pub fn of(outbox: &[OutboxRow]) -> SyncSummary {
        let count = |st: OutboxState| {
            let n = outbox.iter().filter(|r| r.state == st).count();
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        SyncSummary {
            pending: count(OutboxState::Pending).saturating_add(count(OutboxState::Sent)),
            failed: count(OutboxState::Failed),
            oldest_pending_at: outbox
                .iter()
                .find(|r| r.state != OutboxState::Failed)
                .map(|r| r.created_at.clone()),
        }
    }
}

/// A problem with one field, shown beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct FieldErrorView {
    /// The field's path, e.g. `title`, `checklist.safety`, `signature`.
    pub field: String,
    pub code: String,
    pub message: String,
}

/// An error as the UI receives it: a stable code to branch on, a message for people,
/// and the field errors when the input was invalid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct AppError {
    pub code: String,
    pub message: String,
    pub field_errors: Vec<FieldErrorView>,
}

impl AppError {
    pub fn new(code: &str, message: impl Into<String>) -> AppError {
        AppError {
            code: code.to_owned(),
            message: message.into(),
            field_errors: Vec::new(),
        }
    }
}

fn field_views(v: &ValidationErrors) -> Vec<FieldErrorView> {
    v.errors
        .iter()
        .map(
            |FieldError {
                 field,
                 code,
                 message,
             }| FieldErrorView {
                field: field.clone(),
                code: code.clone(),
                message: message.clone(),
            },
        )
        .collect()
}

impl From<CoreError> for AppError {
    fn from(e: CoreError) -> Self {
        AppError {
            code: e.code().to_owned(),
            message: e.to_string(),
            field_errors: e.field_errors().map(field_views).unwrap_or_default(),
        }
    }
}

/// A signed-in user's role, as the UI names it: dispatchers and administrators get the
/// dispatch screens and may act on any order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Technician,
    Dispatcher,
    Admin,
}

impl From<Role> for UserRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Technician => UserRole::Technician,
            Role::Dispatcher => UserRole::Dispatcher,
            Role::Admin => UserRole::Admin,
        }
    }
}

/// How the shell was started and what is open: the first screen is chosen from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct SessionInfo {
    pub data_dir: String,
    /// A database exists in the data directory.
    pub initialized: bool,
    /// It is open and ready (false: first run, or it needs a passphrase).
    pub open: bool,
    pub username: Option<String>,
    /// Signed in to a server (false: first run, the local demo, or after sign-out).
    pub signed_in: bool,
    /// Once signed in.
    pub role: Option<UserRole>,
    pub server_url: Option<String>,
    /// Where the database key comes from, in words (never the key).
    pub key_source: Option<String>,
    /// The database is protected by a passphrase (the About screen offers to change it).
    pub passphrase: bool,
    /// Why it could not be opened, when it could not.
    pub open_error: Option<AppError>,
    /// A system tray is there (closing the window keeps Outpost running in it).
    pub tray: bool,
    /// `OUTPOST_SERVER_URL`, the default shown on the sign-in screen.
    pub default_server_url: Option<String>,
}

/// A new order, as the form sends it.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct NewOrderInput {
    pub title: String,
    pub description: String,
    pub customer: String,
    pub address: String,
    pub priority: Option<OrderPriority>,
}

impl From<NewOrderInput> for NewOrder {
    fn from(i: NewOrderInput) -> Self {
        NewOrder {
            title: i.title,
            description: i.description,
            customer: i.customer,
            address: i.address,
            priority: i.priority.map(Into::into),
        }
    }
}

/// A line of parts to add: SKU and quantity as typed ("2", "2.5").
#[derive(Debug, Clone, Deserialize, TS)]
pub struct PartInput {
    pub sku: String,
    pub quantity: String,
}

/// One edit of an order, saved as one action. Empty lists and nulls change nothing.
#[derive(Debug, Clone, Default, Deserialize, TS)]
pub struct OrderEditInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub notes: Vec<String>,
    pub status: Option<OrderStatus>,
    pub priority: Option<OrderPriority>,
    pub check: Vec<String>,
    pub uncheck: Vec<String>,
    pub parts: Vec<PartInput>,
}

impl TryFrom<OrderEditInput> for OrderEdit {
    type Error = CoreError;
    fn try_from(i: OrderEditInput) -> Result<Self, CoreError> {
        let mut errs = ValidationErrors::default();
        let mut parts = Vec::with_capacity(i.parts.len());
        for PartInput { sku, quantity } in i.parts {
            match quantity.parse::<Quantity>() {
                Ok(q) if q.milli() > 0 => parts.push((sku, q)),
                Ok(_) => errs.push(
                    format!("parts_used.{sku}"),
                    "invalid",
                    "the quantity must be more than 0",
                ),
                Err(m) => errs.push(format!("parts_used.{sku}"), "invalid", m),
            }
        }
        errs.into_result()?;
        let notes = i
            .notes
            .into_iter()
            .filter(|n| !n.trim().is_empty())
            .collect();
        Ok(OrderEdit {
            title: i.title,
            description: i.description,
            notes,
            status: i.status.map(Into::into),
            priority: i.priority.map(Into::into),
            check: i.check,
            uncheck: i.uncheck,
            parts,
            add_checklist: Vec::new(),
        })
    }
}

/// A file picked in the UI, its bytes in standard base64.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct FileInput {
    pub name: String,
    pub data_base64: String,
}

/// A completion as the form sends it.
#[derive(Debug, Clone, Deserialize, TS)]
pub struct CompletionInput {
    /// The signature pad's PNG; null when nothing was drawn.
    pub signature: Option<FileInput>,
    pub signer: String,
    pub photos: Vec<FileInput>,
}

fn decode(field: &str, f: FileInput, errs: &mut ValidationErrors) -> Option<Evidence> {
    match base64::engine::general_purpose::STANDARD.decode(f.data_base64.as_bytes()) {
        Ok(bytes) => Some(Evidence {
            bytes,
            name: f.name,
        }),
        Err(_) => {
            errs.push(
                field,
                "invalid",
                format!("{} could not be read: pick it again", f.name),
            );
            None
        }
    }
}

impl TryFrom<CompletionInput> for Completion {
    type Error = CoreError;
    fn try_from(i: CompletionInput) -> Result<Self, CoreError> {
        let mut errs = ValidationErrors::default();
        if i.signer.trim().is_empty() {
            errs.push("signature.signer", "required", "type the name of who signs");
        }
        let signature = match i.signature {
            Some(f) => decode("signature", f, &mut errs),
            None => {
                errs.push("signature", "required", "the customer must sign on the pad");
                None
            }
        };
        let photos: Vec<Evidence> = i
            .photos
            .into_iter()
            .filter_map(|f| decode("photos", f, &mut errs))
            .collect();
        errs.into_result()?;
        match signature {
            Some(signature_png) => Ok(Completion {
                signature_png,
                signer: i.signer,
                photos,
            }),
            None => Err(ValidationErrors::single(
                "signature",
                "required",
                "the customer must sign on the pad",
            )
            .into()),
        }
    }
}

/// Export every IPC type to `dir` (the bindings test and `OUTPOST_UPDATE_BINDINGS`).
pub fn export_bindings(dir: &std::path::Path) -> Result<(), ts_rs::ExportError> {
    let cfg = ts_rs::Config::new().with_out_dir(dir);
    OrderStatus::export_all(&cfg)?;
    OrderPriority::export_all(&cfg)?;
    OrderSyncState::export_all(&cfg)?;
    OrderSummary::export_all(&cfg)?;
    OrderDetail::export_all(&cfg)?;
    InventoryView::export_all(&cfg)?;
    StockPlace::export_all(&cfg)?;
    InventoryPageInput::export_all(&cfg)?;
    StockPageView::export_all(&cfg)?;
    SyncSummary::export_all(&cfg)?;
    AppError::export_all(&cfg)?;
    SessionInfo::export_all(&cfg)?;
    NewOrderInput::export_all(&cfg)?;
    OrderEditInput::export_all(&cfg)?;
    CompletionInput::export_all(&cfg)?;
    crate::app::SignInInput::export_all(&cfg)?;
    crate::app::PendingChangeView::export_all(&cfg)?;
    crate::app::EngineStatusView::export_all(&cfg)?;
    crate::app::FailedSyncView::export_all(&cfg)?;
    crate::app::FleetFailedSyncView::export_all(&cfg)?;
    crate::app::FixInput::export_all(&cfg)?;
    crate::app::ConflictDetailView::export_all(&cfg)?;
    crate::app::ResolveInput::export_all(&cfg)?;
    crate::updates::AppInfoView::export_all(&cfg)?;
    OrderQueryInput::export_all(&cfg)?;
    OrderPageView::export_all(&cfg)?;
    crate::updates::UpdateView::export_all(&cfg)?;
    crate::updates::UpdateProgressView::export_all(&cfg)?;
    UserRole::export_all(&cfg)?;
    crate::app::SyncConnectivity::export_all(&cfg)?;
    crate::fleet::FleetView::export_all(&cfg)?;
    crate::desk::DeskFilter::export_all(&cfg)?;
    crate::desk::DeskPage::export_all(&cfg)?;
    crate::desk::DecisionInput::export_all(&cfg)?;
    crate::documents::DocumentView::export_all(&cfg)?;
    crate::documents::DocumentContent::export_all(&cfg)?;
    crate::desk::DecisionReceipt::export_all(&cfg)?;
    crate::desk::DecisionPreview::export_all(&cfg)?;
    crate::desk::NoticeView::export_all(&cfg)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    fn read_ts_files(dir: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "ts") {
                let name = e.file_name().to_string_lossy().into_owned();
                out.insert(name, std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
        out
    }

    /// Without a day line from the caller, the line is a day from now to the whole
    /// minute: the same for every keystroke of a minute, so the store's cached tab
    /// counts hold (a line that moved each call counted every order each time).
    #[test]
    fn the_default_day_line_stays_put_within_a_minute() {
        let input = OrderQueryInput {
            text: String::new(),
            bucket: None,
            tomorrow: None,
            status: None,
            priority: None,
            sync: None,
            assignee: None,
            offset: 0,
            limit: 25,
        };
        let at = |s: &str| {
            input
                .to_query(s.parse().expect("time"))
                .expect("query")
                .tomorrow
        };
        let line = at("2026-12-07T23:10:05.250Z");
        assert_eq!(line, at("2026-12-07T23:10:59.999Z"));
        assert_eq!(
            line,
            "2026-12-08T23:10:00Z"
                .parse::<DateTime<Utc>>()
                .expect("time")
        );
        assert_ne!(line, at("2026-12-07T23:11:00Z"));
    }

    #[test]
    fn bindings_in_ui_src_generated_are_up_to_date() {
        let committed = PathBuf::from(
            &*std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join(BINDINGS_DIR);
        if std::env::var_os("OUTPOST_UPDATE_BINDINGS").is_some() {
            std::fs::create_dir_all(&committed).expect("create ui/src/generated");
            export_bindings(&committed).expect("export bindings");
        }
        let fresh = tempfile::tempdir().expect("tempdir");
        export_bindings(fresh.path()).expect("export bindings");
        let want = read_ts_files(fresh.path());
        let have = read_ts_files(&committed);
        assert!(!want.is_empty(), "ts-rs exported nothing");
        assert_eq!(
            have.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "ui/src/generated has other files than the IPC types: \
             run OUTPOST_UPDATE_BINDINGS=1 cargo test -p outpost-core bindings"
        );
        for (name, text) in &want {
            assert_eq!(
                have.get(name),
                Some(text),
                "ui/src/generated/{name} is stale: \
                 run OUTPOST_UPDATE_BINDINGS=1 cargo test -p outpost-core bindings"
            );
        }
    }

    #[test]
    fn edit_input_with_a_bad_quantity_is_a_field_error_on_that_part() {
        let input = OrderEditInput {
            parts: vec![
                PartInput {
                    sku: "FLT-100".into(),
                    quantity: "two".into(),
                },
                PartInput {
                    sku: "GSK-50".into(),
                    quantity: "0".into(),
                },
            ],
            ..OrderEditInput::default()
        };
        let err = OrderEdit::try_from(input).expect_err("bad quantities are refused");
        let fields: Vec<_> = AppError::from(err)
            .field_errors
            .into_iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(fields, ["parts_used.FLT-100", "parts_used.GSK-50"]);
    }

    #[test]
    fn a_role_crosses_under_the_protocols_name() {
        for r in [Role::Technician, Role::Dispatcher, Role::Admin] {
            assert_eq!(
                serde_json::to_value(UserRole::from(r)).expect("json"),
                serde_json::json!(r.as_str())
            );
        }
    }

    #[test]
    fn completion_without_signature_or_signer_names_both_fields() {
        let input = CompletionInput {
            signature: None,
            signer: " ".into(),
            photos: vec![FileInput {
                name: "x.jpg".into(),
                data_base64: "!!".into(),
            }],
        };
        let err = Completion::try_from(input).expect_err("incomplete completion");
        let fields: Vec<_> = AppError::from(err)
            .field_errors
            .into_iter()
            .map(|f| f.field)
            .collect();
        assert_eq!(fields, ["signature.signer", "signature", "photos"]);
    }

    #[test]
    fn order_detail_carries_lists_and_summary_the_sync_state() {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 2, 8, 0, 0)
            .single()
            .expect("valid time");
        let order = crate::demo::orders(now, "tech1").remove(0);
        let row = OrderRow {
            order,
            sync_state: SyncState::Saved,
            reassigned_to: None,
        };
        let d = OrderDetail::from(&row);
        assert_eq!(d.summary.sync_state, OrderSyncState::Saved);
        assert_eq!(d.summary.number, Some(1001));
        assert_eq!(d.checklist.len(), 3);
        assert_eq!(d.time_zone.as_deref(), Some("Europe/Oslo"));
        let json = serde_json::to_value(&d).expect("serialize");
        assert_eq!(json["summary"]["status"], "scheduled");
        assert_eq!(json["summary"]["sync_state"], "saved");
    }
}
