//! Tauri's build step: reads `tauri.conf.json` and the capabilities, embeds the icons,
//! and generates an `allow-<command>` permission for each of the app's own commands,
//! so that `capabilities/main.json` can grant the window exactly the commands it uses
//! (without an app manifest, Tauri allows every app command to every window).

/// Every command registered in `src/commands.rs`; keep in step with `generate_handler!`.
const COMMANDS: &[&str] = &[
    "session_info",
    "start_local_demo",
    "unlock",
    "ui_ready",
    "list_orders",
    "get_order",
    "create_order",
    "edit_order",
    "complete_order",
    "start_time_entry",
    "stop_time_entry",
    "search_inventory",
    "sync_summary",
    "quit_app",
    "sign_in",
    "sign_out",
    "pending_changes",
    "sync_status",
    "sync_now",
    "failed_syncs",
    "resubmit_failed",
    "discard_failed",
    "conflicts",
    "resolve_conflict",
    "fleet_failed_syncs",
    "dismiss_fleet_failed",
    "assign_order",
    "cancel_order",
    "app_info",
    "set_update_channel",
    "check_for_update",
    "install_update",
];

fn main() {
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(e) = tauri_build::try_build(attributes) {
        // A build script reports failure by panicking; the message names the problem.
        panic!("tauri build step failed: {e:#}");
    }
}
