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
//! until the first quiet moment. After that the first event of a burst wakes the
//! engine at once, and if the burst goes on (one interface brings up several
//! addresses, the IPv4 lease after the IPv6 link-local one) it is woken once more when
//! the burst has settled, so the probe also sees the network's final state. Where the
//! watcher cannot start (no netlink in a sandbox), the engine logs why and relies on
//! its probes alone.

use std::future::poll_fn;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

/// How long the OS must stay quiet before a burst of address events is over (and
/// before the addresses present at start count as the starting state).
const SETTLE: Duration = Duration::from_millis(250);

/// Watch the OS's network addresses and call `on_change` when they change (see the
/// module's header for bursts), until `on_change` returns false or the watcher fails.
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
    // Set while a burst (or the starting state) is still arriving.
    let mut burst_until = Some(Instant::now() + SETTLE);
    let mut more_in_burst = false;
    loop {
        tokio::select! {
            event = poll_fn(|cx| watcher.poll_if_event(cx)) => {
                let change = match event {
                    Ok(if_watch::IfEvent::Up(net)) => format!("{net} up"),
                    Ok(if_watch::IfEvent::Down(net)) => format!("{net} down"),
                    Err(e) => {
                        tracing::warn!(
                            "network change events stopped ({e}); the engine probes the server on its own"
                        );
                        return;
                    }
                };
                let quiet = burst_until.is_none();
                burst_until = Some(Instant::now() + SETTLE);
                if !started {
                    continue;
                }
                tracing::info!(%change, "the network changed: probing the server");
                if !quiet {
                    more_in_burst = true;
                } else if !on_change() {
                    return;
                }
            }
            () = sleep_until(burst_until.unwrap_or_else(Instant::now)), if burst_until.is_some() => {
                burst_until = None;
                if !started {
                    started = true;
                    tracing::debug!("watching the network for changes");
                } else if std::mem::take(&mut more_in_burst) && !on_change() {
                    return;
                }
            }
        }
    }
}
