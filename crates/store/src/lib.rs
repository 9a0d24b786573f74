//! The encrypted local store: the technician's source of truth.
//!
//! One SQLCipher database (AES-256, WAL, `synchronous=FULL`) holds the work orders, the
//! outbox, the inventory cache and small secrets; attachment files sit beside it, each
//! encrypted with AES-256-GCM under a data key kept inside the database. Every user
//! action is one transaction that changes the rows and appends its mutation to the
//! outbox.
//!
//! This crate never chooses or stores the database key: it is handed a [`DbKey`] by
//! `core`, which owns key management (credential store, passphrase, environment).
//! It is the only crate that runs SQL on the device.

// Tests may read the wall clock; product code takes a Clock (clippy.toml).
#![cfg_attr(test, allow(clippy::disallowed_methods))]

/// A named crash point of the kill tests (tests/src/kill.rs). With the `test-support`
/// feature, `FAILPOINTS="NAME=K*off->return"` in the environment aborts the process at
/// the point's (K+1)-th hit, as a kill or a power cut would (tikv's `fail`); without
/// it, in every product build, it is nothing and its name is not in the binary.
macro_rules! crash_point {
    ($name:literal) => {
        #[cfg(feature = "test-support")]
        {
            let _: Option<()> = fail::eval($name, |_| std::process::abort());
        }
    };
}
pub(crate) use crash_point;

mod attachments;
mod db;
mod documents;
mod durable;
mod error;
mod inventory;
mod key;
mod list;
mod lock;
mod orders;
mod outbox;
mod records;
mod sync;
#[cfg(test)]
mod test_support;

pub use attachments::AttachmentMeta;
pub use db::{
    key_check_value, CheckReport, RekeyStage, Store, StorePaths, DB_FILE_NAME, PAGE_CACHE_KIB,
    REKEY_COPY_SUFFIX,
};
pub use documents::{DocumentPlan, DocumentRow, DocumentWork, DocumentsState};
pub use durable::create_dir_all_durable;
pub use error::{OpenError, StoreError};
pub use inventory::{InventoryPage, InventoryQuery, StockRow, StockScope};
pub use key::{random_bytes, DbKey};
pub use list::{Bucket, BucketCounts, OrderPage, OrderQuery};
pub use lock::OPEN_LOCK_FILE;
pub use orders::{OrderRow, SyncState};
pub use outbox::{OutboxRow, OutboxState};
pub use records::{FailedSync, LocalRecord};
pub use sync::{AckedRows, PageSummary, PushSummary, Session, SyncCounts};

/// The client schema: one entry per file in `migrations/client/`, in order. Released
/// files are never edited; a change is a new file appended here.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../../migrations/client/0001_init.sql"),
    ),
    (
        "0002_inventory_attachments.sql",
        include_str!("../../../migrations/client/0002_inventory_attachments.sql"),
    ),
    (
        "0003_sync.sql",
        include_str!("../../../migrations/client/0003_sync.sql"),
    ),
    (
        "0004_order_list.sql",
        include_str!("../../../migrations/client/0004_order_list.sql"),
    ),
    (
        "0005_outbox_sealed_mutation_index.sql",
        include_str!("../../../migrations/client/0005_outbox_sealed_mutation_index.sql"),
    ),
    (
        "0006_sync_records_generation.sql",
        include_str!("../../../migrations/client/0006_sync_records_generation.sql"),
    ),
    (
        "0007_outbox_set_aside.sql",
        include_str!("../../../migrations/client/0007_outbox_set_aside.sql"),
    ),
    (
        "0008_inventory_stock.sql",
        include_str!("../../../migrations/client/0008_inventory_stock.sql"),
    ),
    (
        "0009_documents.sql",
        include_str!("../../../migrations/client/0009_documents.sql"),
    ),
    (
        "0010_order_list_in_order.sql",
        include_str!("../../../migrations/client/0010_order_list_in_order.sql"),
    ),
    (
        "0011_work_orders_by_generation.sql",
        include_str!("../../../migrations/client/0011_work_orders_by_generation.sql"),
    ),
];

/// The schema version this program writes (the number of migrations).
pub fn schema_version() -> usize {
    MIGRATIONS.len()
}
