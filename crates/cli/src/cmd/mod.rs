//! One module per command family; each turns parsed arguments into one `core` call
//! and prints its result (a table or message for a person, JSON with `--json`).
//!
//! Argument parsing lives in `args`, shared printing in `print`, and the error report
//! and exit code in `main`: a command returns a `CoreError` and prints no error itself.

use std::path::Path;
use std::sync::OnceLock;

use outpost_core::{CoreError, KeyEnv, OpenOptions, Outpost};

pub(crate) mod conflicts;
pub(crate) mod db;
pub(crate) mod demo;
pub(crate) mod desk;
pub(crate) mod documents;
pub(crate) mod failed;
pub(crate) mod fleet;
pub(crate) mod init;
pub(crate) mod inventory;
pub(crate) mod orders;
pub(crate) mod outbox;
pub(crate) mod sync;

/// The key material `main` took from the process environment before anything else ran
/// (the CLI runs one command per process).
static KEY_ENV: OnceLock<KeyEnv> = OnceLock::new();

/// Keeps what `main` took with [`KeyEnv::take_from_process_env`] for the command.
pub(crate) fn keep_key_env(env: KeyEnv) {
    // Only `main` calls this, once.
    let _ = KEY_ENV.set(env);
}

/// How every command opens or makes the data directory in `dir`.
fn options(dir: &Path) -> OpenOptions {
    OpenOptions::new(dir, KEY_ENV.get().cloned().unwrap_or_default())
}

/// Opens the existing database in `dir`, the first step of every command but `init`
/// and `login`.
fn open(dir: &Path) -> Result<Outpost, CoreError> {
    Outpost::open(options(dir))
}
