//! Rules that only the device applies, each written once: the passphrase's minimum,
//! where the data directory is by default, and what a server address may be (the
//! address rule itself lives with the HTTP client, `outpost_sync::check_server_url`;
//! here it becomes a form's field error).
//!
//! Rules both sides apply (validation, limits, hashes) are in `outpost-protocol`, not
//! here.

use std::path::PathBuf;

use outpost_protocol::ValidationErrors;

use crate::CoreError;

/// The shortest passphrase accepted for a data directory's key.
pub const PASSPHRASE_MIN_CHARS: usize = 8;

/// Is this passphrase too short to protect a data directory?
pub fn passphrase_too_short(passphrase: &str) -> bool {
    passphrase.chars().count() < PASSPHRASE_MIN_CHARS
}

/// A form's passphrase field: note its problem, if any, on `errors`.
pub fn check_passphrase(passphrase: &str, errors: &mut ValidationErrors) {
    if passphrase_too_short(passphrase) {
        errors.push(
            "passphrase",
            "too_short",
            format!("use at least {PASSPHRASE_MIN_CHARS} characters"),
        );
    }
}

/// A form's server address field: note its problem, if any, on `errors`.
pub fn check_server_url(url: &str, errors: &mut ValidationErrors) {
    let url = url.trim();
    if url.is_empty() {
        errors.push("server_url", "required", "type the server's address");
    } else if let Err(e) = outpost_sync::check_server_url(url) {
        errors.push("server_url", "scheme", e.to_string());
    }
}

/// Where Outpost keeps its data: `explicit` (a `--data-dir`) when given, else
/// `OUTPOST_DATA_DIR` when set, else the platform's data directory for "Outpost".
pub fn data_dir(explicit: Option<PathBuf>) -> Result<PathBuf, CoreError> {
    let from_env = || std::env::var_os("OUTPOST_DATA_DIR").map(PathBuf::from);
    if let Some(d) = explicit
        .or_else(from_env)
        .filter(|d| !d.as_os_str().is_empty())
    {
        return Ok(d);
    }
    directories::ProjectDirs::from("", "", "Outpost")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            CoreError::BadInput(
                "no home directory to keep the data in: give --data-dir or set OUTPOST_DATA_DIR"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passphrase_needs_eight_characters_counted_as_characters_not_bytes() {
        assert!(passphrase_too_short("seven77"));
        assert!(!passphrase_too_short("eight888"));
        // Eight characters, sixteen bytes.
        assert!(!passphrase_too_short("ééééééé1"));
        let mut e = ValidationErrors::default();
        check_passphrase("short", &mut e);
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].code, "too_short");
    }

    #[test]
    fn a_server_address_is_required_https_or_loopback_http() {
        for (url, code) in [
            ("", Some("required")),
            ("ftp://x", Some("scheme")),
            ("http://outpost.example", Some("scheme")),
            ("http://127.0.0.1:8080", None),
            ("https://outpost.example", None),
        ] {
            let mut e = ValidationErrors::default();
            check_server_url(url, &mut e);
            assert_eq!(e.errors.first().map(|f| f.code.as_str()), code, "{url}");
        }
    }

    #[test]
    fn an_explicit_data_directory_wins() {
        let d = data_dir(Some(PathBuf::from("/tmp/x"))).expect("explicit");
        assert_eq!(d, PathBuf::from("/tmp/x"));
    }
}
