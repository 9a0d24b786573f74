//! The system tray: a status icon with "Sync now", "Open" and "Quit", so that closing
//! the window keeps Outpost (and, with the engine, its sync) running.
//!
//! On Linux the tray (AppIndicator) needs a D-Bus session bus. Without one (CI, a
//! kiosk, a bare X server) there is no tray: this logs a line and returns false, and the
//! window then asks whether to quit when it is closed, rather than hiding into nothing.
//! "Sync now" wakes the engine (when signed in) and tells the UI (`sync-now-requested`).

use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager};

fn session_bus_present() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|v| !v.is_empty())
}

/// Install the tray; false when this desktop has none.
pub fn install(app: &AppHandle) -> bool {
    if !session_bus_present() {
        tracing::warn!(
            "no D-Bus session bus: no tray icon; closing the window will ask whether to quit"
        );
        return false;
    }
    match build(app) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("no tray icon ({e}); closing the window will ask whether to quit");
            false
        }
    }
}

fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

fn build(app: &AppHandle) -> tauri::Result<()> {
    let sync = MenuItem::with_id(app, "sync", "Sync now", true, None::<&str>)?;
    let open = MenuItem::with_id(app, "open", "Open Outpost", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Outpost", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&sync, &open, &quit])?;
    let mut tray = TrayIconBuilder::with_id("outpost")
        .tooltip("Outpost")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "sync" => {
                tracing::info!("sync now asked from the tray");
                if let Err(e) = app.state::<crate::shell::Shell>().sync_now() {
                    tracing::info!("{}", e.message);
                }
                let _ = crate::events::SYNC_NOW_REQUESTED.emit(app, &());
            }
            "open" => show_main(app),
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}
