//! The documents step of a pass (issue 22): bring the device's cached technical
//! documents in line with what its open orders need.
//!
//! Runs when a first sync's snapshot has brought the orders and before the inventory
//! catalogue (the page that starts the inventory phase), and after every pull: ask the
//! server's index, let the store drop what is no longer needed and decide what the
//! budget keeps, then download what is missing one range of
//! `limits::DOCUMENT_CHUNK_BYTES` at a time, due today first. Each range is kept
//! (encrypted) as it arrives, so a cut connection resumes at the next range on a
//! later pass. On a link the bandwidth setting marks as slow or metered (the one that
//! keeps photos for a better link) nothing is downloaded and the status says so.
//! A failure here never fails the pass: its work (push, pull) is done; the status
//! says what waits, and the next pass goes on.

use chrono::{DateTime, Utc};
use outpost_protocol::limits::{DOCUMENT_BUDGET_BYTES_DEFAULT, DOCUMENT_CHUNK_BYTES};
use outpost_store::Store;

use crate::auth::authed;
use crate::error::SyncError;
use crate::pass::{PassReport, Progress, PHOTO_UPLOADS_WITH_COMPLETIONS, SETTING_PHOTO_UPLOADS};
use crate::transport::Transport;

/// The setting that holds the documents budget a person chose, in bytes.
pub const SETTING_DOCUMENTS_BUDGET: &str = "documents_budget_bytes";
/// The administrator's budget, as the server's index last said it.
const SETTING_SERVER_BUDGET: &str = "documents_server_budget_bytes";

/// The budget in force: the person's, else the administrator's, else the default.
pub fn documents_budget(store: &Store) -> Result<u64, SyncError> {
    for key in [SETTING_DOCUMENTS_BUDGET, SETTING_SERVER_BUDGET] {
        if let Some(v) = store.get_setting(key)?.and_then(|v| v.parse().ok()) {
            return Ok(v);
        }
    }
    Ok(DOCUMENT_BUDGET_BYTES_DEFAULT)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// One documents step. Only a session that must sign in again is an error.
pub(crate) async fn sync_documents(
    store: &mut Store,
    client: &impl Transport,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    report: &mut PassReport,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SyncError> {
    // What an order's documents panel shows, before and after: a change is told to
    // the window (`PassReport::changed_local_data`), the same documents are not.
    let before = store.all_documents().ok();
    let result = step(store, client, clock, report, progress).await;
    if store.all_documents().ok() != before {
        report.documents_changed = 1;
    }
    match result {
        Ok(()) => Ok(()),
        Err(e @ (SyncError::SignInRequired(_) | SyncError::NotSignedIn)) => Err(e),
        Err(e) => {
            tracing::warn!("documents not brought up to date: {e}");
            store.set_documents_note(Some(&format!(
                "documents are not all here yet ({e}); the next sync goes on"
            )))?;
            Ok(())
        }
    }
}

async fn step(
    store: &mut Store,
    client: &impl Transport,
    clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    report: &mut PassReport,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SyncError> {
    // Documents of orders that left the device go first, even if the server cannot
    // be asked below.
    store.forget_unneeded_documents()?;
    let now = clock();
    let index = authed!(store, client, now, report, |t| client.document_index(&t))?;
    match index.budget_bytes {
        Some(b) => store.set_setting(SETTING_SERVER_BUDGET, &b.to_string())?,
        None => {
            store.set_setting(SETTING_SERVER_BUDGET, "")?;
        }
    }
    store.set_document_index(&index, now)?;
    let budget = documents_budget(store)?;
    let plan = store.plan_documents(budget, now + chrono::Duration::days(1))?;
    let mut notes: Vec<String> = Vec::new();
    if let Some(today) = plan.today_over_budget {
        notes.push(format!(
            "the documents of today's orders need {}, more than the {} documents budget: all of them are kept",
            megabytes(today),
            megabytes(budget)
        ));
    }
    if plan.held > 0 {
        notes.push(format!(
            "{} document(s) are not kept: the {} documents budget is full",
            plan.held,
            megabytes(budget)
        ));
    }
    let metered = store.get_setting(SETTING_PHOTO_UPLOADS)?.as_deref()
        == Some(PHOTO_UPLOADS_WITH_COMPLETIONS);
    if metered && !plan.fetch.is_empty() {
        notes.push(format!(
            "{} document(s) wait for a better connection (the bandwidth setting keeps downloads for later)",
            plan.fetch.len()
        ));
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    store.set_documents_note(note.as_deref())?;
    if metered {
        return Ok(());
    }
    let total: u64 = plan.fetch.iter().map(|w| w.size - w.received).sum();
    let mut done: u64 = 0;
    let files = plan.fetch.len();
    for (i, work) in plan.fetch.iter().enumerate() {
        let mut offset = work.received;
        while offset < work.size {
            let end = (offset + DOCUMENT_CHUNK_BYTES).min(work.size);
            let now = clock();
            let bytes = authed!(store, client, now, report, |t| client.document_range(
                &t,
                &work.id,
                &work.sha256,
                (offset, end)
            ))?;
            report.bytes_received += bytes.len();
            store.append_document_range(work, offset, &bytes)?;
            crate::crash_point!("client:document-range-kept");
            done += end - offset;
            offset = end;
            progress(Progress::Documents {
                file: i + 1,
                files,
                done_bytes: done,
                total_bytes: total,
            });
        }
        store.finish_document(work)?;
    }
    Ok(())
}
