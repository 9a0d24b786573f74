//! Updates through Tauri's updater plugin: check on the channel this device follows,
//! then download, verify and install on request.
//!
//! The plugin verifies the update's minisign signature against the public key in
//! `tauri.conf.json` before it installs anything (`src-tauri/updater-test` proves a
//! tampered update is refused). What is added here: the channel (a setting kept by
//! `outpost-core`) as the `channel` query parameter of every configured endpoint, one
//! quiet check after start-up (`OUTPOST_UPDATE_CHECK=0` turns it off; a find is the
//! `update-available` event), the update found kept until the person says "Install and
//! restart", and the download's progress as `update-progress` events (both declared in
//! `events.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outpost_core::updates::{UpdateChannel, UpdateProgressView, UpdateView};
use outpost_core::views::AppError;
use tauri::{AppHandle, Manager, Url};
use tauri_plugin_updater::{Update, UpdaterExt};

use crate::events::{UPDATE_AVAILABLE, UPDATE_PROGRESS};
use crate::shell::Shell;

/// How long after start-up the quiet check waits (the first sync comes first).
const FIRST_CHECK_DELAY: Duration = Duration::from_secs(20);

/// The update found by the last check, until it is installed.
#[derive(Default)]
pub struct Updates {
    found: tokio::sync::Mutex<Option<Update>>,
    installing: AtomicBool,
}

/// The configured endpoints (`plugins.updater.endpoints`), each on `channel`.
fn endpoints(app: &AppHandle, channel: UpdateChannel) -> Result<Vec<Url>, AppError> {
    let configured = app
        .config()
        .plugins
        .0
        .get("updater")
        .and_then(|u| u.get("endpoints"))
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default();
    let urls: Vec<Url> = configured
        .iter()
        .filter_map(|v| v.as_str())
        .filter_map(|s| Url::parse(s).ok())
        .map(|u| outpost_core::updates::with_channel(&u, channel))
        .collect();
    if urls.is_empty() {
        return Err(AppError::new(
            "updates_off",
            "this build has no update server configured: install new versions from your administrator's packages",
        ));
    }
    Ok(urls)
}

fn channel(app: &AppHandle) -> UpdateChannel {
    app.state::<Shell>()
        .with(|o| o.update_channel())
        .unwrap_or_default()
}

fn update_error(e: tauri_plugin_updater::Error) -> AppError {
    use tauri_plugin_updater::Error as E;
    match e {
        E::Minisign(_) | E::SignatureUtf8(_) => AppError::new(
            "update_signature",
            "the update's signature does not match Outpost's release key: it was not installed. Tell your administrator.",
        ),
        E::Reqwest(_) | E::Network(_) => AppError::new(
            "update_offline",
            format!("cannot reach the update server ({e}); try again when online"),
        ),
        E::UnsupportedOs => AppError::new(
            "update_unsupported",
            "this installation cannot update itself: install the new package from your administrator",
        ),
        other => AppError::new("update_failed", format!("the update failed: {other}")),
    }
}

fn view(u: &Update) -> UpdateView {
    UpdateView::new(
        u.version.clone(),
        u.current_version.clone(),
        u.body.clone(),
        u.date.map(|d| d.unix_timestamp()),
    )
}

/// Ask the update server of this device's channel; `None` when up to date.
pub async fn check(app: &AppHandle) -> Result<Option<UpdateView>, AppError> {
    let updater = app
        .updater_builder()
        .endpoints(endpoints(app, channel(app))?)
        .map_err(update_error)?
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(update_error)?;
    let found = updater.check().await.map_err(update_error)?;
    let v = found.as_ref().map(view);
    *app.state::<Updates>().found.lock().await = found;
    Ok(v)
}

/// Download the update found by the last check, verify its signature, install it and
/// restart. The outbox is in the database, so unsynced work waits for the new version.
pub async fn install(app: &AppHandle) -> Result<(), AppError> {
    let updates = app.state::<Updates>();
    if updates.installing.swap(true, Ordering::SeqCst) {
        return Err(AppError::new(
            "update_busy",
            "the update is already being installed",
        ));
    }
    let result = install_found(app, &updates).await;
    updates.installing.store(false, Ordering::SeqCst);
    result?;
    tracing::info!("update installed: restarting");
    app.restart()
}

async fn install_found(app: &AppHandle, updates: &Updates) -> Result<(), AppError> {
    let guard = updates.found.lock().await;
    let update = guard.as_ref().ok_or_else(|| {
        AppError::new(
            "no_update",
            "there is no update to install: check for updates first",
        )
    })?;
    tracing::info!(version = %update.version, "downloading the update");
    let mut downloaded: u64 = 0;
    update
        .download_and_install(
            |chunk, total| {
                downloaded += chunk as u64;
                let progress = UpdateProgressView { downloaded, total };
                if let Err(e) = UPDATE_PROGRESS.emit(app, &progress) {
                    tracing::debug!("update progress not shown: {e}");
                }
            },
            || tracing::info!("update downloaded; signature verified"),
        )
        .await
        .map_err(|e| {
            tracing::warn!("update not installed: {e}");
            update_error(e)
        })
}

/// One quiet check some seconds after start-up, when a database is open (a device that
/// is set up); the result is an event, a failure only a log line (offline is normal).
pub fn check_after_start(app: &AppHandle) {
    if std::env::var("OUTPOST_UPDATE_CHECK").as_deref() == Ok("0") {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(FIRST_CHECK_DELAY).await;
        if app.state::<Shell>().with(|_| Ok(())).is_err() {
            return;
        }
        match check(&app).await {
            Ok(Some(v)) => {
                tracing::info!(version = %v.version, "an update is available");
                if let Err(e) = UPDATE_AVAILABLE.emit(&app, &v) {
                    tracing::debug!("update notice not shown: {e}");
                }
            }
            Ok(None) => tracing::info!("up to date"),
            Err(e) => tracing::info!(code = %e.code, "no update check: {}", e.message),
        }
    });
}
