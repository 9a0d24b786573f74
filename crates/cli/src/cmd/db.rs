//! `outpost db check`, `outpost db rekey` and `outpost db passphrase`: the health and
//! the key of the local database.
//!
//! Creating the database is `init`; the checks and the crash-safe re-key themselves
//! live in `core` and `store`.

use std::io::Read;
use std::path::Path;

use outpost_core::CoreError;
use zeroize::Zeroizing;

use super::open;
use crate::print::{outln, print_json};

/// Prints the report; a database with problems is an error (exit 5) after printing.
pub(crate) fn check(dir: &Path, json: bool) -> Result<(), CoreError> {
    let app = open(dir)?;
    let report = app.check()?;
    if json {
        print_json(&report)?;
    } else {
        outln!("data directory: {}", report.data_dir);
        outln!(
            "encrypted:      {} (SQLCipher {}, page HMAC {}, crypto {})",
            if report.store.encrypted { "yes" } else { "NO" },
            report.store.cipher_version,
            report.store.cipher_hmac,
            report.store.cipher_provider
        );
        outln!("key:            {}", report.key.key_source.describe());
        outln!("schema:         {}", report.store.schema_version);
        outln!(
            "journal:        {}, synchronous={}",
            report.store.journal_mode,
            report.store.synchronous
        );
        outln!(
            "integrity:      {}",
            if report.store.sound {
                "ok"
            } else {
                "PROBLEMS FOUND"
            }
        );
        for line in report
            .store
            .cipher_integrity
            .iter()
            .chain(report.store.integrity.iter().filter(|l| *l != "ok"))
        {
            outln!("  {line}");
        }
    }
    if !report.store.sound {
        return Err(CoreError::Corrupt(
            "the database check found problems (listed above)".into(),
        ));
    }
    Ok(())
}

pub(crate) fn rekey(dir: &Path, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    app.rekey()?;
    if json {
        print_json(&serde_json::json!({"rekeyed": true}))?;
    } else {
        outln!("Re-encrypted under a new key, kept in the OS credential store.");
    }
    Ok(())
}

/// The new passphrase from stdin (one line; a trailing newline is not part of it). The
/// database opens with the current one, from OUTPOST_DB_PASSPHRASE.
pub(crate) fn passphrase(dir: &Path, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    let mut input = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| CoreError::BadInput(format!("cannot read the new passphrase: {e}")))?;
    let new = Zeroizing::new(input.trim_end_matches(['\n', '\r']).to_owned());
    app.change_passphrase(None, &new)?;
    if json {
        print_json(&serde_json::json!({"passphrase_changed": true}))?;
    } else {
        outln!("Passphrase changed; the database was not rewritten. Open it with the new passphrase from now on.");
    }
    Ok(())
}
