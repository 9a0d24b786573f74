//! Test hooks exist only in test builds: the release binaries hold none of them.
//!
//! Reads the binaries that `cargo build --release -p outpost-desktop -p outpost-cli
//! -p outpost-server` made in this target directory. scripts/test-desktop.sh builds
//! them (once, for the desktop's tests) and then runs these tests with `--ignored`; on
//! their own they would need a release build of their own, which the workspace's test
//! run does not make.

use std::path::PathBuf;

/// What a test hook leaves in a binary: the failpoint variables and the crash points'
/// and steps' names (string constants), the test-only functions' names (symbols).
const HOOK_MARKERS: &[&str] = &[
    "OUTPOST_FAILPOINT",
    "rekey:staged",
    "rekey:key-file-updated",
    // The kill tests' crash points (tikv's `fail`, armed from `FAILPOINTS`): the
    // variable and every point's name (tests/src/kill.rs, `CRASH_POINTS`).
    "FAILPOINTS",
    "process:start",
    "client:after-read-batch",
    "client:after-seal",
    "client:after-upload",
    "client:after-request-sent",
    "client:before-record-results",
    "client:after-record-results",
    "client:pull-page-before-commit",
    "server:after-mutation",
    "server:before-commit",
    "server:after-commit",
    // The server's clock moved for the fleet view's "not seen for two days" (issue 21).
    "OUTPOST_TEST_CLOCK_OFFSET_SECS",
    "rekey_stopping_after",
    "execute_batch_for_tests",
    "create_plaintext_for_benchmark",
];

/// `<target>/release/<name>`, beside the `<target>/debug/outpost` this test was built
/// with.
fn release_binary(name: &str) -> PathBuf {
    let debug_bin = PathBuf::from(env!("CARGO_BIN_EXE_outpost"));
    let target = debug_bin
        .parent()
        .and_then(|debug| debug.parent())
        .expect("the test binary lies in <target>/debug");
    target
        .join("release")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// The markers found in the release binary `name`.
fn hooks_in(name: &str) -> Vec<&'static str> {
    let path = release_binary(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}): build it first with `cargo build --release -p outpost-desktop \
             -p outpost-cli -p outpost-server` (scripts/test-desktop.sh does)",
            path.display()
        )
    });
    let mut found: Vec<&'static str> = Vec::new();
    // One pass over the bytes (a release binary is large and this test is not
    // optimised): only a byte that starts a marker is looked at further.
    let first: Vec<u8> = HOOK_MARKERS.iter().map(|m| m.as_bytes()[0]).collect();
    for (at, byte) in bytes.iter().enumerate() {
        if !first.contains(byte) {
            continue;
        }
        for m in HOOK_MARKERS {
            if bytes[at..].starts_with(m.as_bytes()) && !found.contains(m) {
                found.push(m);
            }
        }
    }
    found
}

#[test]
#[ignore = "reads the release binaries: scripts/test-desktop.sh builds them and runs this with --ignored"]
fn the_release_outpost_binary_holds_no_test_hook() {
    assert_eq!(hooks_in("outpost"), Vec::<&str>::new());
}

#[test]
#[ignore = "reads the release binaries: scripts/test-desktop.sh builds them and runs this with --ignored"]
fn the_release_server_binary_holds_no_test_hook() {
    assert_eq!(hooks_in("outpost-server"), Vec::<&str>::new());
}

#[test]
#[ignore = "reads the release binaries: scripts/test-desktop.sh builds them and runs this with --ignored"]
fn the_release_desktop_binary_holds_no_test_hook() {
    assert_eq!(hooks_in("outpost-desktop"), Vec::<&str>::new());
}
