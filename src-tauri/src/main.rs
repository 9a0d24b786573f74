//! `outpost-desktop`: the Tauri 2 shell of Outpost.
//!
//! What lives here is only what needs a window: start-up (data directory, one instance
//! per data directory, logging), the window's life cycle (tray or ask-to-quit), and one
//! line per command over `outpost-core` (`commands.rs`). Everything a test of
//! `outpost-core` can reach stays there. The sync engine runs for as long as the
//! process does (the window may be hidden in the tray); see `shell.rs` and `events.rs`.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod events;
mod logging;
mod shell;
mod tray;
mod updates;

use std::process::ExitCode;
use std::time::Instant;

use tauri::{Manager, WindowEvent};

use crate::shell::Shell;

fn main() -> ExitCode {
    let started = Instant::now();
    // First, while this is the only thread: the key variables leave the environment
    // (the web view's helper processes would inherit them), and the rendering choice
    // goes in (WebKit reads it when the window is made).
    let key_env = outpost_core::KeyEnv::take_from_process_env();
    let rendering = outpost_core::desktop::rendering::apply();
    let log_file = logging::init();
    tracing::info!(
        compositing_turned_off = rendering.disable_compositing,
        reason = %rendering.reason,
        "web view rendering"
    );
    let data_dir = match shell::data_dir() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let lock = match outpost_core::desktop::instance::InstanceLock::acquire(&data_dir) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(3);
        }
    };
    tracing::info!(
        data_dir = %data_dir.display(),
        log_file = %log_file.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into()),
        "outpost-desktop starting"
    );
    let shell = Shell::start(data_dir, key_env, log_file, lock, started);

    let app = tauri::Builder::default()
        .plugin(tauri_plugin_window_state::Builder::default().build())
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_updater::Builder::new().build())
        .manage(shell)
        .manage(updates::Updates::default())
        .invoke_handler(commands::handler())
        .setup(|app| {
            let has_tray = tray::install(app.handle());
            app.state::<Shell>().set_tray(has_tray);
            // Signed in before: sync from the first second, whatever the window does.
            app.state::<Shell>().start_engine(app.handle());
            updates::check_after_start(app.handle());
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::CloseRequested { api, .. } = event {
                let has_tray = window.state::<Shell>().has_tray();
                api.prevent_close();
                if has_tray {
                    // Keep running (and, once the engine exists, syncing) in the tray.
                    if let Err(e) = window.hide() {
                        tracing::warn!("cannot hide the window: {e}");
                    }
                } else if let Err(e) = events::CLOSE_REQUESTED.emit(window, &()) {
                    // The UI asks whether to quit; if it cannot be asked, quit.
                    tracing::warn!("cannot ask the UI whether to quit ({e}); quitting");
                    window.app_handle().exit(0);
                }
            }
        })
        .build(tauri::generate_context!());
    match app {
        Ok(app) => {
            app.run(|_, _| {});
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("the window could not be started: {e}");
            ExitCode::from(1)
        }
    }
}
