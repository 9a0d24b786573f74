//! `outpost-xtask`: the repository's own tooling, run as `cargo xtask <task>` (an alias
//! in `.cargo/config.toml`). Each task is a module with a `run` entry point, listed in
//! `main.rs`'s task table, and a test under `tests/` that fails when the tree is out of
//! step with it, so that `cargo test` catches what the task would have fixed or reported.
//!
//! - [`codegen`]: the desktop's IPC surface (the window's capability and the UI's typed
//!   command and event bindings), generated from the shell's `#[tauri::command]` fns and
//!   event declarations, and checked against them.
//!
//! - [`tidy`]: the architecture's invariants (ARCHITECTURE.md), checked over the
//!   dependency graph and the sources.
//!
//! - [`reliability`]: docs/RELIABILITY.md, written from the result files the
//!   reliability tests leave (`make reliability`); its test is a unit test of the
//!   rendering (the figures themselves come from a long run, not from the tree).
//!
//! - [`bench_report`]: the "Latest run" block of docs/benchmarks.md, written from the
//!   `bench-result:` lines `make bench` printed; unit tests of the parsing and
//!   rendering (the figures come from a long run).
//!
//! Another task goes beside these the same way: a module here, a row in `main.rs`'s
//! `TASKS`, a test file under `tests/`.
//!
//! Left out on purpose: Tauri and anything heavy. `outpost-desktop`'s build script
//! depends on this crate to read its command names, so this crate must build with what
//! the desktop's build already compiles (`syn`, `quote`). The ts-rs types are not
//! generated here either: `outpost-core` exports them, and the bindings made here only
//! import them by name.

use std::path::{Path, PathBuf};

pub mod bench_report;
pub mod codegen;
pub mod reliability;
pub mod tidy;

/// The repository's root: this crate lives in `xtask/` under it.
pub fn repo_root() -> PathBuf {
    Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("..")
}
