//! The key variables (`OUTPOST_DB_KEY`, `OUTPOST_DB_PASSPHRASE`) are read once and
//! removed from the process environment, so that no later reader (a library, a child
//! process such as WebKit's helpers, a crash report) finds them there.
//!
//! A test binary of its own, with one test: it changes the process environment, which
//! no other test may read at the same time.

use outpost_core::KeyEnv;

#[test]
fn the_key_variables_are_read_once_and_then_gone_from_the_environment() {
    let key = "ab".repeat(32);
    std::env::set_var("OUTPOST_DB_KEY", &key);
    std::env::set_var("OUTPOST_DB_PASSPHRASE", "correct horse battery");

    let env = KeyEnv::take_from_process_env();
    assert_eq!(
        env.db_key.as_deref().map(String::as_str),
        Some(key.as_str())
    );
    assert_eq!(
        env.passphrase.as_deref().map(String::as_str),
        Some("correct horse battery")
    );
    for name in ["OUTPOST_DB_KEY", "OUTPOST_DB_PASSPHRASE"] {
        assert_eq!(
            std::env::var_os(name),
            None,
            "{name} is still in the process environment after it was read"
        );
    }
    #[cfg(unix)]
    {
        let child = std::process::Command::new("env").output().expect("run env");
        let seen = String::from_utf8_lossy(&child.stdout);
        assert!(
            !seen.contains("OUTPOST_DB_"),
            "a child process inherits a key variable: {seen}"
        );
    }

    // Read once: a second reading finds nothing, and an empty variable counts as unset
    // but is removed as well.
    let again = KeyEnv::take_from_process_env();
    assert!(again.db_key.is_none() && again.passphrase.is_none());
    std::env::set_var("OUTPOST_DB_KEY", "");
    let empty = KeyEnv::take_from_process_env();
    assert!(empty.db_key.is_none());
    assert_eq!(
        std::env::var_os("OUTPOST_DB_KEY"),
        None,
        "the empty variable too"
    );
}
