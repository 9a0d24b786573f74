//! Wake the engine when the operating system's network changes.
//!
//! Online means the sync server's health endpoint answers, so a network change is only
//! a hint: the engine probes at once instead of waiting out its offline backoff (up to
//! a minute). The events come from the OS through the `if-watch` crate: netlink address
//! notifications on Linux, the System Configuration framework on macOS, the IP Helper
//! API's change callbacks on Windows. An address appearing or going (a Wi-Fi network
//! joined, a cable plugged in, a VPN brought up) is a change.
//!
//! Every watcher first reports the addresses that already exist; those are absorbed
//! until the first quiet moment, and later bursts (one interface brings up several
//! addresses) are folded into one wake-up. Where the watcher cannot start (no netlink
//! in a sandbox), the engine logs why and relies on its probes alone.

use std::future::poll_fn;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

/// How long the OS must stay quiet before a burst of address events counts as one
/// change (and before the addresses present at start count as the starting state).
const SETTLE: Duration = Duration::from_millis(250);

/// Watch the OS's network addresses and call `on_change` once per settled burst of
/// changes, until `on_change` returns false or the watcher fails.
pub async fn watch(mut on_change: impl FnMut() -> bool) {
    let mut watcher = match if_watch::tokio::IfWatcher::new() {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(
                "network change events are not available ({e}); the engine probes the server on its own"
            );
            return;
        }
    };
    let mut started = false;
    let mut settles_at = Some(Instant::now() + SETTLE);
    let mut burst: Vec<String> = Vec::new();
    loop {
        tokio::select! {
            event = poll_fn(|cx| watcher.poll_if_event(cx)) => {
                let text = match event {
                    Ok(if_watch::IfEvent::Up(net)) => format!("{net} up"),
                    Ok(if_watch::IfEvent::Down(net)) => format!("{net} down"),
                    Err(e) => {
                        tracing::warn!(
                            "network change events stopped ({e}); the engine probes the server on its own"
                        );
                        return;
                    }
                };
                if started && burst.len() < 16 {
                    burst.push(text);
                }
                settles_at = Some(Instant::now() + SETTLE);
            }
            () = sleep_until(settles_at.unwrap_or_else(Instant::now)), if settles_at.is_some() => {
                settles_at = None;
                if !started {
                    started = true;
                    tracing::debug!("watching the network for changes");
                    continue;
                }
                tracing::info!(changes = %burst.join(", "), "the network changed: probing the server");
                burst.clear();
                if !on_change() {
                    return;
                }
            }
        }
    }
}
