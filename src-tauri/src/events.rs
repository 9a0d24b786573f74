//! What the shell tells the UI without being asked: the engine's status on every
//! change (`sync-status`), a refresh hint after each pass (`orders-changed`), and an OS
//! notification when a pass finds a new failed sync or conflict. Without a session bus
//! the notification fails; that is logged and nothing else changes.

use outpost_core::app::EngineStatusView;
use outpost_core::EngineStatus;
use tauri::{AppHandle, Emitter};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::watch;

pub const SYNC_STATUS: &str = "sync-status";
pub const ORDERS_CHANGED: &str = "orders-changed";

/// Forward the engine's status until the engine stops.
pub async fn forward_status(app: AppHandle, mut rx: watch::Receiver<EngineStatus>) {
    let mut last_sync = None;
    let mut notices = rx.borrow().notices;
    loop {
        let status = rx.borrow_and_update().clone();
        let view = EngineStatusView::from(&status);
        if let Err(e) = app.emit(SYNC_STATUS, &view) {
            tracing::warn!("cannot emit {SYNC_STATUS}: {e}");
        }
        if status.last_sync != last_sync {
            last_sync = status.last_sync;
            if let Err(e) = app.emit(ORDERS_CHANGED, "") {
                tracing::warn!("cannot emit {ORDERS_CHANGED}: {e}");
            }
        }
        if status.notices > notices {
            notices = status.notices;
            notify(&app, &view);
        }
        if rx.changed().await.is_err() {
            tracing::info!("sync engine stopped");
            break;
        }
    }
}

fn notify(app: &AppHandle, s: &EngineStatusView) {
    let body = match (s.failed, s.conflicts) {
        (0, c) => format!("{c} conflict(s) need a decision."),
        (f, 0) => format!("{f} change(s) were refused by the server: open Failed syncs."),
        (f, c) => format!("{f} change(s) were refused and {c} conflict(s) need a decision."),
    };
    tracing::info!("notification: {body}");
    if let Err(e) = app
        .notification()
        .builder()
        .title("Outpost: a sync needs you")
        .body(body)
        .show()
    {
        tracing::warn!("no OS notification ({e}); the app shows the counts");
    }
}
