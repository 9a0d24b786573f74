//! The update channel and the About box's facts.
//!
//! The desktop shell owns the updater itself (Tauri's updater plugin checks the
//! signature of every update before it installs it); what is decided here, so that it
//! tests without a window, is which channel this device follows and how that is stored:
//! a setting in the encrypted database, `stable` unless someone chose otherwise.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{CoreError, Outpost};

/// Settings key for the update channel.
const SETTING_UPDATE_CHANNEL: &str = "update_channel";

/// Which releases this device is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum UpdateChannel {
    /// Releases for everyone (the default).
    #[default]
    Stable,
    /// Release candidates, a few days before they reach `stable`.
    Beta,
}

impl UpdateChannel {
    pub const ALL: [UpdateChannel; 2] = [UpdateChannel::Stable, UpdateChannel::Beta];

    pub fn as_str(self) -> &'static str {
        match self {
            UpdateChannel::Stable => "stable",
            UpdateChannel::Beta => "beta",
        }
    }

    /// Parse a channel name as a person or a setting writes it (`" Beta "` is `beta`).
    pub fn parse(s: &str) -> Result<UpdateChannel, CoreError> {
        let s = s.trim().to_ascii_lowercase();
        UpdateChannel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                CoreError::BadInput(format!(
                    "unknown update channel {s:?}: choose one of {}",
                    UpdateChannel::ALL.map(UpdateChannel::as_str).join(", ")
                ))
            })
    }
}

impl std::fmt::Display for UpdateChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Outpost {
    /// The channel this device follows. A value this version does not know (written by
    /// a newer one) reads as the default rather than stopping updates altogether.
    pub fn update_channel(&self) -> Result<UpdateChannel, CoreError> {
        Ok(self
            .store
            .get_setting(SETTING_UPDATE_CHANNEL)?
            .and_then(|v| UpdateChannel::parse(&v).ok())
            .unwrap_or_default())
    }

    pub fn set_update_channel(&mut self, channel: UpdateChannel) -> Result<(), CoreError> {
        Ok(self
            .store
            .set_setting(SETTING_UPDATE_CHANNEL, channel.as_str())?)
    }
}

/// What the About box shows: the one version of the workspace, where this device keeps
/// its data and log, and the update channel (absent before a database exists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct AppInfoView {
    pub version: String,
    pub data_dir: String,
    /// The log folder (one file a day, the last seven kept); null when none could be
    /// opened.
    pub log_file: Option<String>,
    pub update_channel: Option<UpdateChannel>,
    /// The channels there are to choose from.
    pub channels: Vec<UpdateChannel>,
}

/// An update the server offers, signature not yet checked (that happens on download,
/// before anything is installed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct UpdateView {
    pub version: String,
    pub current_version: String,
    /// Release notes, as published.
    pub notes: Option<String>,
    /// RFC 3339 publication date, when given.
    pub date: Option<String>,
}

impl UpdateView {
    /// `published` in seconds since the Unix epoch (the updater's manifest date).
    pub fn new(
        version: String,
        current_version: String,
        notes: Option<String>,
        published: Option<i64>,
    ) -> UpdateView {
        UpdateView {
            version,
            current_version,
            notes,
            date: published
                .and_then(|s| chrono::DateTime::<chrono::Utc>::from_timestamp(s, 0))
                .map(|d| d.to_rfc3339()),
        }
    }
}

/// How far the download of the update being installed is (the `update-progress` event),
/// in bytes. Numbers, not `bigint`, in TypeScript: a download stays far below 2^53 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
pub struct UpdateProgressView {
    /// Received so far.
    #[ts(type = "number")]
    pub downloaded: u64,
    /// The whole download, when the server says.
    #[ts(type = "number | null")]
    pub total: Option<u64>,
}

/// `endpoint` with its `channel` query parameter set to `channel` (added when absent,
/// other parameters and the `{{…}}` placeholders kept as they are).
pub fn with_channel(endpoint: &url::Url, channel: UpdateChannel) -> url::Url {
    let mut url = endpoint.clone();
    let others: Vec<(String, String)> = endpoint
        .query_pairs()
        .filter(|(k, _)| k != "channel")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &others {
            q.append_pair(k, v);
        }
        q.append_pair("channel", channel.as_str());
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{fresh, options};

    #[test]
    fn update_progress_crosses_as_two_numbers() {
        let v = UpdateProgressView {
            downloaded: 4096,
            total: None,
        };
        assert_eq!(
            serde_json::to_value(v).expect("json"),
            serde_json::json!({ "downloaded": 4096, "total": null })
        );
    }

    #[test]
    fn channel_names_parse_forgivingly_and_unknown_ones_say_what_is_allowed() {
        assert_eq!(
            UpdateChannel::parse("stable").ok(),
            Some(UpdateChannel::Stable)
        );
        assert_eq!(
            UpdateChannel::parse(" Beta ").ok(),
            Some(UpdateChannel::Beta)
        );
        let err = UpdateChannel::parse("nightly").expect_err("not a channel");
        assert_eq!(err.code(), "bad_input");
        assert!(err.to_string().contains("stable, beta"), "{err}");
    }

    #[test]
    fn the_channel_defaults_to_stable_and_is_kept_in_the_database() {
        let (dir, creds, mut op) = fresh();
        assert_eq!(op.update_channel().ok(), Some(UpdateChannel::Stable));
        op.set_update_channel(UpdateChannel::Beta).expect("set");
        drop(op);
        let op = Outpost::open(options(dir.path(), &creds, None)).expect("reopen");
        assert_eq!(op.update_channel().ok(), Some(UpdateChannel::Beta));
    }

    #[test]
    fn a_channel_this_version_does_not_know_reads_as_stable() {
        let (_dir, _creds, mut op) = fresh();
        op.store
            .set_setting(SETTING_UPDATE_CHANNEL, "nightly")
            .expect("set");
        assert_eq!(op.update_channel().ok(), Some(UpdateChannel::Stable));
    }

    #[test]
    fn an_update_view_dates_its_release_in_rfc_3339() {
        let v = UpdateView::new("0.2.0".into(), "0.1.0".into(), None, Some(1_800_000_000));
        assert_eq!(v.date.as_deref(), Some("2027-01-15T08:00:00+00:00"));
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).expect("url")
    }

    #[test]
    fn the_channel_replaces_the_configured_one_and_keeps_the_placeholders() {
        let configured =
            url("https://releases.outpost.example/{{target}}/{{arch}}/{{current_version}}?channel=stable");
        let beta = with_channel(&configured, UpdateChannel::Beta);
        assert_eq!(
            beta.as_str(),
            "https://releases.outpost.example/%7B%7Btarget%7D%7D/%7B%7Barch%7D%7D/%7B%7Bcurrent_version%7D%7D?channel=beta"
        );
    }

    #[test]
    fn the_channel_is_added_when_absent_and_other_parameters_stay() {
        let u = with_channel(
            &url("https://u.example/latest.json?org=acme"),
            UpdateChannel::Stable,
        );
        assert_eq!(
            u.as_str(),
            "https://u.example/latest.json?org=acme&channel=stable"
        );
    }
}
