//! What the shell tells the UI without being asked, declared once here: every event as
//! a typed constant (`Event<P>`, `P` its payload), which `cargo xtask codegen` reads for
//! the UI's typed listeners (`ui/src/generated/ipc/events.ts`). Sent from here: the
//! engine's status on every change (`sync-status`), a refresh hint after a pass that
//! changed local data (`orders-changed`; the engine's `data_changes`, so an idle pass
//! every interval wakes no screen), and an OS notification when a pass finds a new failed sync or
//! conflict. Without a session bus the notification fails; that is logged and nothing
//! else changes.
//!
//! Left out on purpose: events to one window only (there is one window; every event
//! goes to all of them).

use std::fmt;
use std::marker::PhantomData;

use outpost_core::app::EngineStatusView;
use outpost_core::desk::NoticeView;
use outpost_core::updates::{UpdateProgressView, UpdateView};
use outpost_core::EngineStatus;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime};
use tauri_plugin_notification::NotificationExt;
use tokio::sync::watch;

/// An event the shell sends to the UI: its name on the wire and, as a type, its payload.
pub struct Event<P: ?Sized> {
    name: &'static str,
    payload: PhantomData<fn(&P)>,
}

impl<P: ?Sized> Event<P> {
    /// Declare an event; write the name out (the generator reads it from the source).
    pub const fn new(name: &'static str) -> Self {
        Event {
            name,
            payload: PhantomData,
        }
    }
}

impl<P: Serialize + ?Sized> Event<P> {
    /// Send it to every window.
    pub fn emit<R: Runtime>(&self, to: &impl Emitter<R>, payload: &P) -> tauri::Result<()> {
        to.emit(self.name, payload)
    }
}

impl<P: ?Sized> fmt::Display for Event<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// An order changed (the payload is its id), or a sync pass changed local data (empty):
/// refresh what is shown. Not sent after a pass that changed nothing.
pub const ORDERS_CHANGED: Event<str> = Event::new("orders-changed");
/// The window's close button where there is no tray: ask whether to quit.
pub const CLOSE_REQUESTED: Event<()> = Event::new("close-requested");
/// "Sync now" was chosen in the tray.
pub const SYNC_NOW_REQUESTED: Event<()> = Event::new("sync-now-requested");
/// The engine's status, on every change.
pub const SYNC_STATUS: Event<EngineStatusView> = Event::new("sync-status");
/// The quiet check after start-up found an update.
pub const UPDATE_AVAILABLE: Event<UpdateView> = Event::new("update-available");
/// A pass brought decisions on this user's changes (issue 20 item 4): the app shows
/// them, and an OS notification says each.
pub const DECISION_NOTICES: Event<Vec<NoticeView>> = Event::new("decision-notices");
/// Download progress of the update being installed, in bytes.
pub const UPDATE_PROGRESS: Event<UpdateProgressView> = Event::new("update-progress");

/// Forward the engine's status until the engine stops.
pub async fn forward_status(app: AppHandle, mut rx: watch::Receiver<EngineStatus>) {
    let (mut data_changes, mut notices) = {
        let s = rx.borrow();
        (s.data_changes, s.notices)
    };
    loop {
        let status = rx.borrow_and_update().clone();
        let view = EngineStatusView::from(&status);
        if let Err(e) = SYNC_STATUS.emit(&app, &view) {
            tracing::warn!("cannot emit {SYNC_STATUS}: {e}");
        }
        if status.data_changes != data_changes {
            data_changes = status.data_changes;
            if let Err(e) = ORDERS_CHANGED.emit(&app, "") {
                tracing::warn!("cannot emit {ORDERS_CHANGED}: {e}");
            }
            announce_decisions(&app);
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

/// Tell the user about decisions on their changes that a pass brought, once each.
fn announce_decisions(app: &AppHandle) {
    use tauri::Manager;
    let shell = app.state::<crate::shell::Shell>();
    let fresh = match shell.with(|o| o.take_new_decision_notices()) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("cannot read decision notices: {}", e.message);
            return;
        }
    };
    if fresh.is_empty() {
        return;
    }
    if let Err(e) = DECISION_NOTICES.emit(app, &fresh) {
        tracing::warn!("cannot emit {DECISION_NOTICES}: {e}");
    }
    for n in &fresh {
        tracing::info!("notification: {}", n.text);
        if let Err(e) = app
            .notification()
            .builder()
            .title("Outpost: a decision on your work")
            .body(&n.text)
            .show()
        {
            tracing::warn!("no OS notification ({e}); the order shows the decision");
        }
    }
}
