//! The fleet's sync health for dispatchers (issue 21 item 1): the request to the
//! server (`GET /v1/fleet`) and the view the desktop's Fleet screen shows.
//!
//! A request runs on a connection of its own ([`FleetRequest`], taken from the open
//! `Outpost` and then sent without holding it), so the desktop's shared database stays
//! usable while the server answers. The table itself (who is late, worst first) is the
//! server's, by `outpost_protocol::fleet`'s rules.

use chrono::{DateTime, Utc};
use outpost_protocol::fleet::{DeviceHealth, FleetHealth};
use outpost_store::Store;
use outpost_sync::{ClientOptions, SyncClient, SyncError};
use serde::Serialize;
use ts_rs::TS;

use crate::{CoreError, Outpost};

/// What a fleet request needs, taken from the open data directory: a connection of its
/// own (for the session and a token refresh) and the time.
#[derive(Debug)]
pub struct FleetRequest {
    store: Store,
    now: DateTime<Utc>,
}

impl Outpost {
    /// A fleet request, refused unless signed in as a dispatcher.
    pub fn fleet_request(&self) -> Result<FleetRequest, CoreError> {
        self.require_dispatcher("the fleet view")?;
        Ok(FleetRequest {
            store: self.connect()?,
            now: self.now(),
        })
    }

    /// The fleet's sync health from the server, worst first (dispatchers only).
    /// `stale_after_secs`: the server's default limit when `None`.
    pub async fn fleet_health(
        &self,
        client: &ClientOptions,
        stale_after_secs: Option<u64>,
    ) -> Result<FleetHealth, CoreError> {
        self.fleet_request()?.send(client, stale_after_secs).await
    }
}

impl FleetRequest {
    /// Ask the server. A 403 (the server's role differs from this device's record of
    /// it) is "dispatchers only" too.
    pub async fn send(
        mut self,
        client: &ClientOptions,
        stale_after_secs: Option<u64>,
    ) -> Result<FleetHealth, CoreError> {
        let session = self.store.session()?.ok_or(SyncError::NotSignedIn)?;
        let c = SyncClient::new(&session.server_url, client)?;
        match outpost_sync::fetch_fleet(&mut self.store, &c, self.now, stale_after_secs).await {
            Ok(f) => Ok(f),
            Err(SyncError::Server {
                status: 403,
                message,
                ..
            }) => Err(CoreError::DispatchersOnly(format!(
                "the fleet view is for dispatchers only ({message})"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// One technician's device on the Fleet screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DeviceHealthView {
    pub username: String,
    pub device_id: String,
    pub last_seen: DateTime<Utc>,
    pub last_push: Option<DateTime<Utc>>,
    pub last_pull: Option<DateTime<Utc>>,
    /// Changes not accepted yet, as the device last reported (null: never reported).
    pub unsent: Option<u32>,
    pub unsent_set_aside: Option<u32>,
    pub oldest_unsent: Option<DateTime<Utc>>,
    pub open_failed_syncs: u32,
    pub open_conflicts: u32,
    pub app_version: Option<String>,
    /// Not seen for longer than the fleet's limit.
    pub stale: bool,
}

/// The Fleet screen: every device, worst first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct FleetView {
    /// The server's time when the table was made (ages count from it).
    pub as_of: DateTime<Utc>,
    pub stale_after_secs: u32,
    pub devices: Vec<DeviceHealthView>,
}

fn small(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl From<&DeviceHealth> for DeviceHealthView {
    fn from(d: &DeviceHealth) -> Self {
        DeviceHealthView {
            username: d.username.clone(),
            device_id: d.device_id.to_string(),
            last_seen: d.last_seen,
            last_push: d.last_push,
            last_pull: d.last_pull,
            unsent: d.unsent.map(small),
            unsent_set_aside: d.unsent_set_aside.map(small),
            oldest_unsent: d.oldest_unsent,
            open_failed_syncs: small(d.open_failed_syncs),
            open_conflicts: small(d.open_conflicts),
            app_version: d.app_version.clone(),
            stale: d.stale,
        }
    }
}

impl From<&FleetHealth> for FleetView {
    fn from(f: &FleetHealth) -> Self {
        FleetView {
            as_of: f.as_of,
            stale_after_secs: small(f.stale_after_secs),
            devices: f.items.iter().map(DeviceHealthView::from).collect(),
        }
    }
}
