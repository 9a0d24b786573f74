//! What the desktop shell decides about its process before and around the window: one
//! instance per data directory, how the web view paints, its rolled log files, and the state its commands
//! share (the open data directory, the sync engine, sign-in and sign-out). Plain Rust,
//! so that it is tested without a window (the shell only calls it).
//!
//! Left out: anything that needs Tauri (the window, the tray, events), which stays in
//! `src-tauri`.

pub mod instance;
pub mod log;
pub mod rendering;
pub mod state;

#[cfg(test)]
mod log_tests;
