//! The desktop's IPC surface is in step with its declarations: `generate_handler!` lists
//! exactly the `#[tauri::command]` fns, and the capability, the permission files and the
//! UI's generated bindings are what `cargo xtask codegen` makes from them. A failure
//! names each file or list that drifted and how to bring it back.

use outpost_xtask::{codegen, repo_root};

#[test]
fn the_generated_ipc_surface_is_in_step_with_commands_rs_and_events_rs() {
    let drift = codegen::drift(&repo_root()).unwrap_or_else(|e| panic!("codegen: {e}"));
    assert!(
        drift.is_empty(),
        "the desktop's IPC surface is out of step:\n  - {}\n",
        drift.join("\n  - ")
    );
}
