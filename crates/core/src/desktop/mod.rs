//! What the desktop shell decides about its process before and around the window: one
//! instance per data directory, and how the web view paints. Plain Rust, so that it is
//! tested without a window (the shell only calls it).
//!
//! Left out: anything that needs Tauri (the window, the tray, events), which stays in
//! `src-tauri`.

pub mod instance;
pub mod rendering;
