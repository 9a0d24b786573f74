//! `outpost init`: create the encrypted database and its key in the data directory.
//!
//! Signing in to a server (which also initialises when needed) is `login`, in `sync`.

use std::io::Read;
use std::path::Path;

use outpost_core::{CoreError, Outpost};
use zeroize::Zeroizing;

use super::options;
use crate::print::{outln, print_json};

pub(crate) fn run(
    dir: &Path,
    passphrase_stdin: bool,
    user: Option<String>,
    json: bool,
) -> Result<(), CoreError> {
    let pass = if passphrase_stdin {
        let mut s = Zeroizing::new(String::new());
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| CoreError::BadInput(format!("cannot read the passphrase: {e}")))?;
        let trimmed = Zeroizing::new(s.trim_end_matches(['\n', '\r']).to_owned());
        Some(trimmed)
    } else {
        None
    };
    let mut app = Outpost::init(options(dir), pass.as_ref().map(|p| p.as_str()))?;
    if let Some(u) = user {
        app.set_username(&u)?;
    }
    if json {
        print_json(&serde_json::json!({
            "data_dir": dir.display().to_string(),
            "device_id": app.device_id(),
            "key": app.key_info(),
        }))?;
    } else {
        outln!(
            "Initialised {} (encrypted; key: {}).",
            dir.display(),
            app.key_info().key_source.describe()
        );
    }
    Ok(())
}
