//! One module per command family; each turns parsed arguments into one `core` call
//! and prints its result (a table or message for a person, JSON with `--json`).
//!
//! Argument parsing lives in `args`, shared printing in `print`, and the error report
//! and exit code in `main`: a command returns a `CoreError` and prints no error itself.

use std::path::Path;

use outpost_core::{CoreError, OpenOptions, Outpost};

pub(crate) mod conflicts;
pub(crate) mod db;
pub(crate) mod demo;
pub(crate) mod failed;
pub(crate) mod init;
pub(crate) mod inventory;
pub(crate) mod orders;
pub(crate) mod outbox;
pub(crate) mod sync;

/// Opens the existing database in `dir`, the first step of every command but `init`
/// and `login`.
fn open(dir: &Path) -> Result<Outpost, CoreError> {
    Outpost::open(OpenOptions::new(dir))
}
