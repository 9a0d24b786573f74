//! The use-case API of the Outpost client: what the desktop shell and the `outpost` CLI
//! call. Each method is one user action or one view, and holds the logic the shell
//! must not: building mutations, validating before anything is written, importing
//! evidence, key management.
//!
//! No Tauri, no terminal, no HTTP here: embedders own their I/O, and tests drive this
//! API directly. Time comes from a [`Clock`] so that tests control it.

pub mod app;
pub mod clock;
pub mod credentials;
pub mod demo;
pub mod desk;
pub mod desktop;
pub mod documents;
mod error;
pub mod first_run;
pub mod fleet;
pub mod keys;
mod keywrap;
pub mod photos;
mod records;
pub mod rules;
mod sync;
pub mod time_entries;
pub mod updates;
pub mod views;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use outpost_protocol::mutation::{EntityKind, ListItem};
use outpost_protocol::{
    apply_mutation, Customer, InventoryItem, Mutation, MutationKind, NoteEntry, Op, PartUsed,
    PhotoRef, Priority, Quantity, SetOp, Signature, Site, Status, ValidationErrors, FORMAT_VERSION,
};
use outpost_store::{CheckReport, Store};
use serde::Serialize;
use uuid::Uuid;

pub use clock::{Clock, FixedClock, SystemClock};
pub use credentials::{CredentialStore, MemoryCredentialStore, OsCredentialStore};
pub use error::CoreError;
pub use keys::{KeyEnv, KeyInfo, KeySource, RekeyStep};
pub use outpost_store::{FailedSync, LocalRecord};
pub use outpost_store::{OrderRow, OutboxRow, OutboxState, SyncCounts, SyncState};
pub use outpost_sync::{
    ClientOptions, EngineConfig, EngineHandle, EngineStatus, PassOptions, PassReport, Progress,
    SyncError,
};
pub use records::{set_from_text, ConflictView, FieldChoice};
pub use sync::{connectivity_name, LoginAnswer, LoginAttempt, LoginInfo, StatusView};

/// Arm the kill tests' crash points from the `FAILPOINTS` variable; `main` calls it
/// first. Only test builds (`test-support`) have crash points: in a product build this
/// does nothing. The point `process:start` right here lets a test tell a binary with
/// crash points from one without (`FAILPOINTS=process:start=return` aborts at once).
pub fn arm_crash_points() {
    #[cfg(feature = "test-support")]
    {
        // Armed for the whole life of the process.
        std::mem::forget(fail::FailScenario::setup());
        let _: Option<()> = fail::eval("process:start", |_| std::process::abort());
    }
}

/// Settings key for the name shown as the author of notes.
const SETTING_USERNAME: &str = "username";
/// Settings key for the longest side of imported photos.
const SETTING_PHOTO_MAX_PX: &str = "photo_max_px";

/// How a data directory is opened: where, with which credential store and key
/// material, and which clock.
pub struct OpenOptions {
    pub data_dir: PathBuf,
    pub credentials: Arc<dyn CredentialStore>,
    pub env: KeyEnv,
    pub clock: Arc<dyn Clock>,
}

impl OpenOptions {
    /// The production set-up: the OS credential store, the key material `main` took
    /// from the process environment ([`KeyEnv::take_from_process_env`]) and the system
    /// clock.
    pub fn new(data_dir: impl Into<PathBuf>, env: KeyEnv) -> OpenOptions {
        OpenOptions {
            data_dir: data_dir.into(),
            credentials: Arc::new(OsCredentialStore),
            env,
            clock: Arc::new(SystemClock),
        }
    }
}

/// A new order made on the device (a technician's follow-up found in the field).
#[derive(Debug, Clone, Default)]
pub struct NewOrder {
    pub title: String,
    pub description: String,
    pub customer: String,
    pub address: String,
    pub priority: Option<Priority>,
}

/// One edit of an order; every part set is saved together, as one action.
#[derive(Debug, Clone, Default)]
pub struct OrderEdit {
    pub title: Option<String>,
    pub description: Option<String>,
    pub notes: Vec<String>,
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub check: Vec<String>,
    pub uncheck: Vec<String>,
    /// (SKU, quantity) lines of parts used.
    pub parts: Vec<(String, Quantity)>,
    /// New checklist items (a dispatcher's edit).
    pub add_checklist: Vec<outpost_protocol::ChecklistItem>,
}

impl OrderEdit {
    pub fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.description.is_none()
            && self.notes.is_empty()
            && self.status.is_none()
            && self.priority.is_none()
            && self.check.is_empty()
            && self.uncheck.is_empty()
            && self.parts.is_empty()
            && self.add_checklist.is_empty()
    }
}

/// A file given as evidence.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub bytes: Vec<u8>,
    pub name: String,
}

/// What a completion carries.
#[derive(Debug, Clone)]
pub struct Completion {
    pub signature_png: Evidence,
    pub signer: String,
    pub photos: Vec<Evidence>,
}

/// `outpost db check`'s report: the store's checks and where the key comes from.
#[derive(Debug, Clone, Serialize)]
pub struct DbCheck {
    #[serde(flatten)]
    pub store: CheckReport,
    pub key: KeyInfo,
    pub data_dir: String,
}

/// An open data directory: the store, this device's identity and the clock.
pub struct Outpost {
    store: Store,
    data_dir: PathBuf,
    device_id: Uuid,
    credentials: Arc<dyn CredentialStore>,
    env: KeyEnv,
    clock: Arc<dyn Clock>,
    key_info: KeyInfo,
    /// Kept to open further connections (the sync engine's); wiped on drop.
    key: outpost_store::DbKey,
}

impl std::fmt::Debug for Outpost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outpost")
            .field("data_dir", &self.data_dir)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

fn media_type_of(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else {
        None
    }
}

impl Outpost {
    /// Initialise a new data directory: make its key (as `opts` and `passphrase`
    /// choose) and its encrypted database. Refuses if one is already there.
    pub fn init(opts: OpenOptions, passphrase: Option<&str>) -> Result<Outpost, CoreError> {
        let dir = &opts.data_dir;
        if outpost_store::StorePaths::in_dir(dir).db.exists() {
            return Err(CoreError::AlreadyInitialized(dir.display().to_string()));
        }
        // Durably: a power cut after init must not take the new directory (and the
        // work saved in it) with it.
        outpost_store::create_dir_all_durable(dir)
            .map_err(|e| CoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let (store, key_info, key) = keys::KeyManager {
            dir,
            creds: opts.credentials.as_ref(),
            env: &opts.env,
        }
        .create(passphrase)?;
        Self::finish(store, key_info, key, opts)
    }

    /// Open an existing data directory.
    pub fn open(opts: OpenOptions) -> Result<Outpost, CoreError> {
        let (store, key_info, key) = keys::KeyManager {
            dir: &opts.data_dir,
            creds: opts.credentials.as_ref(),
            env: &opts.env,
        }
        .open()?;
        Self::finish(store, key_info, key, opts)
    }

    /// Whether `dir` already holds a database.
    pub fn is_initialized(dir: &Path) -> bool {
        outpost_store::StorePaths::in_dir(dir).db.exists()
    }

    fn finish(
        mut store: Store,
        key_info: KeyInfo,
        key: outpost_store::DbKey,
        opts: OpenOptions,
    ) -> Result<Outpost, CoreError> {
        let device_id = store.device_id(opts.clock.now())?;
        Ok(Outpost {
            store,
            data_dir: opts.data_dir,
            device_id,
            credentials: opts.credentials,
            env: opts.env,
            clock: opts.clock,
            key_info,
            key,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn device_id(&self) -> Uuid {
        self.device_id
    }

    pub fn key_info(&self) -> &KeyInfo {
        &self.key_info
    }

    /// The store, for the sync engine and tests.
    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The name written as the author of notes: the signed-in user, or the name set
    /// with [`Outpost::set_username`].
    pub fn username(&self) -> Result<String, CoreError> {
        Ok(self
            .store
            .get_setting(SETTING_USERNAME)?
            .unwrap_or_else(|| "technician".to_owned()))
    }

    pub fn set_username(&mut self, name: &str) -> Result<(), CoreError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(CoreError::BadInput(
                "the user name must not be empty".into(),
            ));
        }
        Ok(self.store.set_setting(SETTING_USERNAME, name)?)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(crate) fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn mutation(
        &self,
        entity_id: Uuid,
        kind: MutationKind,
        base_version: u64,
        ops: Vec<Op>,
    ) -> Mutation {
        Mutation {
            mutation_id: Uuid::now_v7(),
            device_id: self.device_id,
            entity: EntityKind::WorkOrder,
            entity_id,
            kind,
            base_version,
            format: FORMAT_VERSION,
            device_time: self.now(),
            ops,
            base_epoch: self.base_epoch(base_version),
            reason: None,
            seen: Vec::new(),
        }
    }

    /// The epoch a mutation's base belongs to, for the server (protocol 2): the epoch of
    /// the pages this device's versions came from; none for a create (base 0) or before
    /// any page carried one. A read that fails leaves it out (the server then assumes
    /// its current epoch, as for a protocol 1 device).
    pub(crate) fn base_epoch(&self, base_version: u64) -> Option<String> {
        if base_version == 0 {
            return None;
        }
        self.store.server_epoch().ok().flatten()
    }

    // ----- views -----

    pub fn orders(&self) -> Result<Vec<OrderRow>, CoreError> {
        Ok(self.store.orders()?)
    }

    /// One page of the order list, searched and filtered on the device's database.
    pub fn order_page(
        &self,
        query: &views::OrderQueryInput,
    ) -> Result<views::OrderPageView, CoreError> {
        let q = query.to_query(self.clock.now())?;
        Ok(views::OrderPageView::from(&self.store.order_page(&q)?))
    }

    /// An order by full id, unique id prefix (at least 4 characters) or number.
    pub fn order(&self, reference: &str) -> Result<OrderRow, CoreError> {
        let id = self.store.resolve_order_id(reference)?;
        Ok(self.store.order(&id)?)
    }

    pub fn search_inventory(
        &self,
        query: &str,
        limit: usize,
    ) -> Result<Vec<InventoryItem>, CoreError> {
        Ok(self.store.search_inventory(query, limit.clamp(1, 1000))?)
    }

    /// Whose van is "my van": the signed-in user's; on a device that never signed in
    /// (the local demo), the name given at first run; else nobody.
    fn van_user(&self) -> Result<Option<String>, CoreError> {
        match self.store.session()? {
            Some(s) => Ok(Some(s.username)),
            None => Ok(self.store.get_setting(SETTING_USERNAME)?),
        }
    }

    /// The part picker of an order: the items in the van parts will come out of (the
    /// order's assignee's, else the signed-in technician's: `protocol::stock`'s rule)
    /// first with the quantity there, then the rest, each part by name; searched by
    /// SKU or name.
    pub fn part_picker(
        &self,
        order: &str,
        query: &str,
        limit: usize,
    ) -> Result<views::StockPageView, CoreError> {
        let row = self.order(order)?;
        let signed_in = self.van_user()?;
        let owner = row.order.assignee.clone().or_else(|| signed_in.clone());
        let scope = match &owner {
            Some(user) => outpost_store::StockScope::First(outpost_protocol::stock::van_of(user)),
            // No van to put first: every item by name.
            None => outpost_store::StockScope::All,
        };
        let page = self.store.inventory_page(&outpost_store::InventoryQuery {
            text: query.to_owned(),
            scope,
            offset: 0,
            limit: limit.clamp(1, 1000),
        })?;
        Ok(views::StockPageView::of(
            &page,
            owner.as_deref(),
            signed_in.as_deref(),
        ))
    }

    /// One page of the Inventory screen: the signed-in technician's van ("my van",
    /// with the quantity in it; empty when the device knows nobody) or the warehouse (the
    /// items stocked outside any van, with the quantity there); searched and paged.
    pub fn inventory_page(
        &self,
        input: &views::InventoryPageInput,
    ) -> Result<views::StockPageView, CoreError> {
        let signed_in = self.van_user()?;
        let owner = match input.place {
            views::StockPlace::MyVan => match &signed_in {
                Some(user) => Some(user.as_str()),
                None => return Ok(views::StockPageView::of(&Default::default(), None, None)),
            },
            views::StockPlace::Warehouse => None,
        };
        let scope = match owner {
            Some(user) => outpost_store::StockScope::At(outpost_protocol::stock::van_of(user)),
            None => outpost_store::StockScope::Warehouse,
        };
        let page = self.store.inventory_page(&outpost_store::InventoryQuery {
            text: input.query.clone(),
            scope,
            offset: input.offset as usize,
            limit: (input.limit as usize).clamp(1, 1000),
        })?;
        Ok(views::StockPageView::of(&page, owner, signed_in.as_deref()))
    }

    pub fn inventory_count(&self) -> Result<usize, CoreError> {
        Ok(self.store.inventory_count()?)
    }

    pub fn inventory_item(&self, sku: &str) -> Result<Option<InventoryItem>, CoreError> {
        Ok(self.store.inventory_item(sku)?)
    }

    pub fn outbox(&self) -> Result<Vec<OutboxRow>, CoreError> {
        Ok(self.store.outbox()?)
    }

    pub fn check(&self) -> Result<DbCheck, CoreError> {
        Ok(DbCheck {
            store: self.store.check()?,
            key: self.key_info.clone(),
            data_dir: self.data_dir.display().to_string(),
        })
    }

    /// Read an attachment back (decrypted and verified against its hash).
    pub fn attachment(&self, hash: &str) -> Result<Vec<u8>, CoreError> {
        Ok(self.store.attachment(hash)?)
    }

    // ----- actions -----

    /// Create an order on this device; it is assigned to the user who made it.
    pub fn create_order(&mut self, new: NewOrder) -> Result<OrderRow, CoreError> {
        let id = Uuid::now_v7();
        let mut ops = vec![Op::Set(SetOp::Title(new.title.trim().to_owned()))];
        if !new.description.is_empty() {
            ops.push(Op::Set(SetOp::Description(new.description)));
        }
        if !new.customer.is_empty() {
            ops.push(Op::Set(SetOp::Customer(Customer {
                name: new.customer,
                ..Customer::default()
            })));
        }
        if !new.address.is_empty() {
            ops.push(Op::Set(SetOp::Site(Site {
                address: new.address,
                ..Site::default()
            })));
        }
        if let Some(p) = new.priority {
            ops.push(Op::Set(SetOp::Priority(p)));
        }
        ops.push(Op::Set(SetOp::Assignee(Some(self.username()?))));
        let m = self.mutation(id, MutationKind::Create, 0, ops);
        let now = self.now();
        self.store.record(m, now)?;
        Ok(self.store.order(&id.to_string())?)
    }

    /// Save an edit as one action (one transaction, one outbox entry or a fold into the
    /// order's unsent one).
    pub fn edit_order(&mut self, reference: &str, edit: OrderEdit) -> Result<OrderRow, CoreError> {
        if edit.is_empty() {
            return Err(CoreError::BadInput(
                "nothing to change: give at least one of --note, --status, --priority, --check, --part".into(),
            ));
        }
        let current = self.order(reference)?.order;
        let author = self.username()?;
        let now = self.now();
        let mut ops = Vec::new();
        if let Some(t) = edit.title {
            ops.push(Op::Set(SetOp::Title(t)));
        }
        if let Some(d) = edit.description {
            ops.push(Op::Set(SetOp::Description(d)));
        }
        if let Some(s) = edit.status {
            ops.push(Op::Set(SetOp::Status(s)));
        }
        if let Some(p) = edit.priority {
            ops.push(Op::Set(SetOp::Priority(p)));
        }
        for item in edit.add_checklist {
            ops.push(Op::Add(ListItem::Checklist(item)));
        }
        for (item_id, done) in edit
            .check
            .into_iter()
            .map(|i| (i, true))
            .chain(edit.uncheck.into_iter().map(|i| (i, false)))
        {
            ops.push(Op::Set(SetOp::ChecklistDone { item_id, done }));
        }
        let mut unknown = ValidationErrors::default();
        let inventory_known = !self.store.search_inventory("", 1)?.is_empty();
        for (sku, quantity) in edit.parts {
            if inventory_known && self.store.inventory_item(&sku)?.is_none() {
                unknown.push(
                    format!("parts_used.{sku}"),
                    "unknown_item",
                    format!(
                        "no inventory item has SKU {sku}: find it with `outpost inventory search`"
                    ),
                );
                continue;
            }
            ops.push(Op::Add(ListItem::PartsUsed(PartUsed {
                id: Uuid::now_v7(),
                sku,
                quantity,
            })));
        }
        unknown.into_result()?;
        for text in edit.notes {
            ops.push(Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::now_v7(),
                    author: author.clone(),
                    text,
                    at: now,
                },
            });
        }
        let m = self.mutation(current.id, MutationKind::Update, current.version, ops);
        self.store.record(m, now)?;
        Ok(self.store.order(&current.id.to_string())?)
    }

    /// Complete an order with the customer's signature and photos. Everything is
    /// checked before anything is written; then the evidence is encrypted to disk and
    /// the completion recorded.
    pub fn complete_order(
        &mut self,
        reference: &str,
        c: Completion,
    ) -> Result<OrderRow, CoreError> {
        let current = self.order(reference)?.order;
        let mut errs = ValidationErrors::default();
        if media_type_of(&c.signature_png.bytes) != Some("image/png") {
            errs.push(
                "signature",
                "invalid",
                format!("{} is not a PNG image", c.signature_png.name),
            );
        }
        for e in c
            .photos
            .iter()
            .chain(std::iter::once(&c.signature_png))
            .filter(|e| e.bytes.len() as u64 > outpost_protocol::limits::ATTACHMENT_BYTES_MAX)
        {
            errs.push(
                "photos",
                "too_large",
                format!(
                    "{} is larger than {} MiB",
                    e.name,
                    outpost_protocol::limits::ATTACHMENT_BYTES_MAX >> 20
                ),
            );
        }
        errs.into_result()?;
        let max_px = self.photo_max_px()?;
        let photos = c
            .photos
            .iter()
            .map(|p| {
                photos::prepare_photo(&p.bytes, &p.name, max_px).map(|prep| (p.name.clone(), prep))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.now();
        let mut ops = vec![Op::Set(SetOp::Signature(Some(Signature {
            hash: outpost_protocol::attachment_hash(&c.signature_png.bytes),
            signer: c.signer.trim().to_owned(),
        })))];
        for (name, p) in &photos {
            ops.push(Op::Add(ListItem::Photos(PhotoRef {
                hash: outpost_protocol::attachment_hash(&p.bytes),
                caption: name.clone(),
                media_type: p.media_type.to_owned(),
            })));
        }
        ops.push(Op::Set(SetOp::CompletedAt(Some(now))));
        let m = self.mutation(current.id, MutationKind::Complete, current.version, ops);
        // Dry run first, so refused input leaves no attachment files behind.
        apply_mutation(Some(&current), &m)?;
        let files: Vec<(&[u8], &str)> = std::iter::once((&c.signature_png.bytes[..], "image/png"))
            .chain(photos.iter().map(|(_, p)| (&p.bytes[..], p.media_type)))
            .collect();
        self.record_with_evidence(&files, m, now)?;
        Ok(self.store.order(&current.id.to_string())?)
    }

    /// Encrypt `files` (bytes, media type) to disk, then record `m`. When either fails
    /// (the disk filled part-way), what this left on disk that nothing names is removed
    /// again: the person is told nothing was saved, and nothing was.
    fn record_with_evidence(
        &mut self,
        files: &[(&[u8], &str)],
        m: Mutation,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let hashes: Vec<String> = files
            .iter()
            .map(|(bytes, _)| outpost_protocol::attachment_hash(bytes))
            .collect();
        let result = files
            .iter()
            .try_for_each(|(bytes, media_type)| {
                self.store
                    .put_attachment(bytes, media_type, now)
                    .map(|_| ())
            })
            .and_then(|()| self.store.record(m, now).map(|_| ()));
        if let Err(e) = result {
            if let Err(cleanup) = self.store.forget_unnamed_attachments(&hashes) {
                tracing::warn!(error = %cleanup, "files of a failed action could not be removed");
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Attach photos to an order outside a completion (downscaled on import). They
    /// travel after completions and edits, and wait on a metered connection when the
    /// bandwidth setting says so.
    pub fn add_photos(
        &mut self,
        reference: &str,
        photos: Vec<Evidence>,
    ) -> Result<OrderRow, CoreError> {
        let current = self.order(reference)?.order;
        if photos.is_empty() {
            return Err(CoreError::BadInput("choose at least one photo".into()));
        }
        let max_px = self.photo_max_px()?;
        let prepared = photos
            .iter()
            .map(|p| {
                photos::prepare_photo(&p.bytes, &p.name, max_px).map(|prep| (p.name.clone(), prep))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.now();
        let ops = prepared
            .iter()
            .map(|(name, p)| {
                Op::Add(ListItem::Photos(PhotoRef {
                    hash: outpost_protocol::attachment_hash(&p.bytes),
                    caption: name.clone(),
                    media_type: p.media_type.to_owned(),
                }))
            })
            .collect();
        let m = self.mutation(current.id, MutationKind::Update, current.version, ops);
        apply_mutation(Some(&current), &m)?;
        let files: Vec<(&[u8], &str)> = prepared
            .iter()
            .map(|(_, p)| (&p.bytes[..], p.media_type))
            .collect();
        self.record_with_evidence(&files, m, now)?;
        Ok(self.store.order(&current.id.to_string())?)
    }

    /// The bandwidth budget: `true` keeps photos that are not part of a completion on
    /// the device until it is switched off (slow or metered connections).
    pub fn set_defer_photos(&mut self, defer: bool) -> Result<(), CoreError> {
        let value = if defer {
            outpost_sync::PHOTO_UPLOADS_WITH_COMPLETIONS
        } else {
            "always"
        };
        Ok(self
            .store
            .set_setting(outpost_sync::SETTING_PHOTO_UPLOADS, value)?)
    }

    pub fn defer_photos(&self) -> Result<bool, CoreError> {
        Ok(self
            .store
            .get_setting(outpost_sync::SETTING_PHOTO_UPLOADS)?
            .as_deref()
            == Some(outpost_sync::PHOTO_UPLOADS_WITH_COMPLETIONS))
    }

    /// The longest side of imported photos, in pixels.
    pub fn photo_max_px(&self) -> Result<u32, CoreError> {
        Ok(self
            .store
            .get_setting(SETTING_PHOTO_MAX_PX)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(photos::PHOTO_MAX_PX_DEFAULT))
    }

    pub fn set_photo_max_px(&mut self, px: u32) -> Result<(), CoreError> {
        if !(320..=8000).contains(&px) {
            return Err(CoreError::BadInput(
                "the photo size must be between 320 and 8000 pixels".into(),
            ));
        }
        Ok(self
            .store
            .set_setting(SETTING_PHOTO_MAX_PX, &px.to_string())?)
    }

    /// Assign an order to a technician (a dispatcher's action; offline-first like any
    /// other: it goes through the outbox).
    pub fn assign_order(&mut self, reference: &str, assignee: &str) -> Result<OrderRow, CoreError> {
        let current = self.order(reference)?.order;
        let assignee = assignee.trim();
        if assignee.is_empty() {
            return Err(CoreError::BadInput("name the technician to assign".into()));
        }
        let ops = vec![Op::Set(SetOp::Assignee(Some(assignee.to_owned())))];
        let m = self.mutation(current.id, MutationKind::Assign, current.version, ops);
        let now = self.now();
        self.store.record(m, now)?;
        Ok(self.store.order(&current.id.to_string())?)
    }

    /// Cancel an order (a dispatcher's action).
    pub fn cancel_order(&mut self, reference: &str, reason: &str) -> Result<OrderRow, CoreError> {
        let current = self.order(reference)?.order;
        let now = self.now();
        let mut ops = vec![Op::Set(SetOp::Status(Status::Cancelled))];
        if !reason.trim().is_empty() {
            ops.push(Op::AppendNote {
                note: NoteEntry {
                    id: Uuid::now_v7(),
                    author: self.username()?,
                    text: format!("Cancelled: {}", reason.trim()),
                    at: now,
                },
            });
        }
        let m = self.mutation(current.id, MutationKind::Cancel, current.version, ops);
        self.store.record(m, now)?;
        Ok(self.store.order(&current.id.to_string())?)
    }

    /// Reopen a cancelled order: back to `scheduled` (a dispatcher's action; the server
    /// refuses it from a technician).
    pub fn reopen_order(&mut self, reference: &str) -> Result<OrderRow, CoreError> {
        let current = self.order(reference)?.order;
        if current.status != Status::Cancelled {
            return Err(CoreError::BadInput(format!(
                "order {} is {}, not cancelled: only a cancelled order is reopened",
                current
                    .number
                    .map(|n| format!("#{n}"))
                    .unwrap_or_else(|| current.id.to_string()),
                current.status.as_str()
            )));
        }
        let ops = vec![Op::Set(SetOp::Status(Status::Scheduled))];
        let m = self.mutation(current.id, MutationKind::Update, current.version, ops);
        let now = self.now();
        self.store.record(m, now)?;
        Ok(self.store.order(&current.id.to_string())?)
    }

    /// Refuse `what` unless this device is signed in as a dispatcher or administrator
    /// (the CLI's dispatcher commands; the server holds the same rule).
    pub fn require_dispatcher(&self, what: &str) -> Result<(), CoreError> {
        let session = self
            .session()?
            .ok_or(outpost_sync::SyncError::NotSignedIn)?;
        if session.role.sees_all_orders() {
            Ok(())
        } else {
            Err(CoreError::DispatchersOnly(format!(
                "{what} is for dispatchers only: {} is signed in as a technician",
                session.username
            )))
        }
    }

    /// Re-encrypt the database under a new random key kept in the credential store.
    pub fn rekey(&mut self) -> Result<(), CoreError> {
        self.rekey_ending_after(None)
    }

    /// [`Outpost::rekey`], ending after `step` as a crash there would. Test builds
    /// only.
    #[cfg(any(test, feature = "test-support"))]
    pub fn rekey_stopping_after(&mut self, step: Option<RekeyStep>) -> Result<(), CoreError> {
        self.rekey_ending_after(step)
    }

    fn rekey_ending_after(&mut self, step: Option<RekeyStep>) -> Result<(), CoreError> {
        let new_key = keys::KeyManager {
            dir: &self.data_dir,
            creds: self.credentials.as_ref(),
            env: &self.env,
        }
        .rekey(&mut self.store, step)?;
        if let Some(k) = new_key {
            self.key = k;
        }
        Ok(())
    }

    /// Change the passphrase of a passphrase-protected database: the database key is
    /// wrapped under the new one (a new salt and Argon2id key) in one atomic key-file
    /// write; the database itself is not rewritten. `current`, when given, must be the
    /// passphrase in force (the app asks for it again; the CLI opened the database
    /// with it).
    pub fn change_passphrase(&mut self, current: Option<&str>, new: &str) -> Result<(), CoreError> {
        keys::KeyManager {
            dir: &self.data_dir,
            creds: self.credentials.as_ref(),
            env: &self.env,
        }
        .change_passphrase(&self.key, current, new)?;
        self.env.passphrase = Some(zeroize::Zeroizing::new(new.to_owned()));
        Ok(())
    }

    /// Another connection to this data directory's database (for the sync engine).
    pub fn connect(&self) -> Result<Store, CoreError> {
        Ok(Store::open(&self.data_dir, &self.key)?)
    }
}

#[cfg(test)]
mod passphrase_tests;
#[cfg(test)]
mod rekey_tests;
#[cfg(test)]
mod tests;
