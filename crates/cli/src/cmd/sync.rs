//! `outpost login`, `sync` (one pass, or `--watch` in the background) and `status`:
//! everything that talks to the sync server.
//!
//! The protocol, the engine and their decisions live in `core` and `sync`; this module
//! only drives them, shows progress on a terminal, and prints the outcome. Failed
//! syncs and conflicts a pass leaves behind are `failed` and `conflicts`.

use std::io::Read;
use std::path::Path;

use outpost_core::{
    connectivity_name, ClientOptions, CoreError, EngineConfig, Outpost, PassOptions, Progress,
};
use zeroize::Zeroizing;

use super::{open, options};
use crate::print::{outln, print_json};

pub(crate) fn login(dir: &Path, server: &str, username: &str, json: bool) -> Result<(), CoreError> {
    let mut password = Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| CoreError::BadInput(format!("cannot read the password: {e}")))?;
    let password = Zeroizing::new(password.trim_end_matches(['\n', '\r']).to_owned());
    let mut app = if Outpost::is_initialized(dir) {
        open(dir)?
    } else {
        Outpost::init(options(dir), None)?
    };
    let info =
        runtime()?.block_on(app.login(server, username, &password, &ClientOptions::default()))?;
    if json {
        print_json(&info)?;
    } else {
        outln!(
            "Signed in to {} as {} ({}).",
            info.server_url,
            info.username,
            info.role.as_str()
        );
        if info.clock_skew_secs.abs() > 300 {
            outln!(
                "Warning: this computer's clock is {} minutes {} the server's; times on your records may look wrong.",
                info.clock_skew_secs.abs() / 60,
                if info.clock_skew_secs > 0 { "ahead of" } else { "behind" }
            );
        }
    }
    Ok(())
}

pub(crate) fn sync(dir: &Path, json: bool) -> Result<(), CoreError> {
    let mut app = open(dir)?;
    let bar = if json { None } else { progress_bar() };
    let bar2 = bar.clone();
    let mut on_progress = move |p: Progress| {
        if let Some(b) = &bar2 {
            show_progress(b, p);
        }
    };
    let pass = PassOptions {
        ignore_backoff: true,
        ..PassOptions::default()
    };
    let result =
        pass_runtime()?.block_on(app.sync_once(&ClientOptions::default(), pass, &mut on_progress));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = result?;
    if json {
        print_json(&report)?;
    } else {
        outln!(
            "Synced: {} change(s) sent, {} acknowledged, {} row(s) received.",
            report.pushed,
            report.acknowledged,
            report.pulled_rows
        );
        if report.remaining.failed > 0 || report.remaining.conflicts > 0 {
            outln!(
                "Needs a person: {} failed sync(s), {} conflict(s).",
                report.remaining.failed,
                report.remaining.conflicts
            );
        }
        if report.remaining.pending > 0 {
            outln!("Still waiting: {} change(s).", report.remaining.pending);
        }
    }
    // Reached the server; the outbox is drained except what waits for a person.
    if report.remaining.pending > 0 {
        return Err(CoreError::Sync(outpost_core::SyncError::BadAnswer(
            format!(
                "{} change(s) could not be sent yet; they stay queued",
                report.remaining.pending
            ),
        )));
    }
    Ok(())
}

/// One step of a sync pass, on the terminal's progress bar.
fn show_progress(b: &indicatif::ProgressBar, p: Progress) {
    match p {
        Progress::Pushing { done, total, .. } => {
            b.set_message("pushing changes");
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
        Progress::Uploading { done, total } => {
            b.set_message("uploading photos");
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
        Progress::Priming { phase, done, total } => {
            b.set_message(format!("downloading {phase:?}").to_lowercase());
            b.set_length(total);
            b.set_position(done);
        }
        Progress::Pulling { rows } => {
            b.set_message("pulling changes");
            b.set_length(rows);
            b.set_position(rows);
        }
        Progress::Documents {
            file,
            files,
            done_bytes,
            total_bytes,
        } => {
            b.set_message(format!("downloading documents ({file} of {files})"));
            b.set_length(total_bytes);
            b.set_position(done_bytes);
        }
    }
}

pub(crate) fn watch(dir: &Path, json: bool) -> Result<(), CoreError> {
    let app = open(dir)?;
    pass_runtime()?.block_on(async move {
        let engine = app.start_engine(EngineConfig::default())?;
        let mut rx = engine.subscribe();
        let mut last = String::new();
        loop {
            let line = {
                let s = rx.borrow_and_update().clone();
                if json {
                    serde_json::to_string(&s).unwrap_or_default()
                } else {
                    format!(
                        "{}: {} pending, {} failed, {} conflicts{}",
                        connectivity_name(&s.connectivity),
                        s.pending,
                        s.failed,
                        s.conflicts,
                        s.last_error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )
                }
            };
            if line != last {
                outln!("{line}");
                last = line;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { break; },
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        engine.stop(std::time::Duration::from_secs(10)).await;
        Ok::<(), CoreError>(())
    })
}

pub(crate) fn status(dir: &Path, json: bool) -> Result<(), CoreError> {
    let app = open(dir)?;
    let opts = ClientOptions {
        connect_timeout: std::time::Duration::from_secs(3),
        ..ClientOptions::default()
    };
    let s = runtime()?.block_on(app.status(&opts))?;
    if json {
        print_json(&s)?;
    } else {
        outln!("connectivity: {}", s.connectivity);
        if let (Some(u), Some(server)) = (&s.signed_in_as, &s.server) {
            outln!("signed in:    {u} at {server}");
        }
        outln!("pending:      {}", s.pending);
        outln!("failed:       {}", s.failed);
        outln!("conflicts:    {}", s.conflicts);
        if s.skipped > 0 {
            outln!(
                "skipped:      {} changes from the server that this version cannot show: update Outpost",
                s.skipped
            );
        }
        outln!(
            "last sync:    {}",
            s.last_sync
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "never".into())
        );
        if let Some(r) = &s.reason {
            outln!("reason:       {r}");
        }
    }
    Ok(())
}

/// The runtime for sync passes (`sync`, `watch`): two workers, so that the next pull page is fetched
/// and decoded while this thread applies the current one.
fn pass_runtime() -> Result<tokio::runtime::Runtime, CoreError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CoreError::Io(format!("cannot start the async runtime: {e}")))
}

/// A single-threaded runtime for one request (`watch` builds its own).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CoreError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CoreError::Io(format!("cannot start the async runtime: {e}")))
}

/// A progress bar on stderr, only when stderr is a terminal.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} {msg:<24} [{bar:30}] {pos}/{len}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    Some(bar)
}
