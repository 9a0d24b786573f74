//! Compatibility across releases: which sync protocol versions a server serves, what
//! each version added, and the answer for a client outside that range.
//!
//! A fleet is never upgraded at once, so a server serves the current protocol and the
//! previous one. A client names its version in the `x-outpost-protocol` header of
//! every request; the server sends new entity kinds, outcomes, enum variants and
//! mutation members only to clients that announced a version that knows them, and
//! shapes the rest for the version announced. New members are optional and left out
//! when empty, so a body written before them re-serializes (and hashes) byte for byte.
//! The rules are stated in docs/protocol.md, "Compatibility"; CHANGELOG.md names every
//! wire change under its release.
//!
//! Left out on purpose: any negotiation beyond one number per request. A client speaks
//! one version; the server decides from it alone.

/// The sync protocol this build speaks.
pub const PROTOCOL_VERSION: u32 = 2;

/// The oldest protocol a server serves by default: the previous release's.
pub const PREVIOUS_PROTOCOL_VERSION: u32 = 1;

/// The first protocol version that knows each addition (a server sends an addition
/// only to a client whose announced version is at least this).
pub mod since {
    /// Mutations carry `base_epoch` and `seen`; pull pages carry `epoch`.
    pub const BASE_EPOCH_AND_SEEN: u32 = 2;
    /// A resolution's `reason` (issue 20): shaped away with `base_epoch` and `seen`
    /// for protocol 1 readers, which refuse unknown members in a `Mutation`.
    pub const DECISION_REASON: u32 = 2;
    /// The `held_behind` push outcome (a protocol 1 client gets
    /// `missing_attachments` with no hashes instead: not acknowledged, resent).
    pub const HELD_BEHIND: u32 = 2;
    /// The `quota_exceeded` error code (413) for a file refused by the uploader's
    /// storage quota (a protocol 1 client gets 413 `payload_too_large` with the same
    /// message: it sets the completion naming the file aside, as for any file too
    /// large to send).
    pub const QUOTA_EXCEEDED: u32 = 2;
    /// `more` on conflict and failed-sync lists cut at their byte budget (a protocol 1
    /// client gets the shorter list without it).
    pub const LIST_MORE: u32 = 2;
}

/// Why a client's announced version is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VersionProblem {
    /// Unreadable header: not a number.
    #[error("the x-outpost-protocol header is not a version number; update Outpost")]
    Unreadable,
    /// Older than the oldest version this server still serves.
    #[error("this Outpost speaks sync protocol {announced}, which this server no longer serves (it needs {oldest} or newer): update Outpost")]
    TooOld { announced: u32, oldest: u32 },
    /// Newer than this server.
    #[error("this Outpost speaks sync protocol {announced}, newer than this server's {PROTOCOL_VERSION}: ask your administrator to update the server")]
    TooNew { announced: u32 },
}

/// The version to serve a request with: the announced one when it is between `oldest`
/// and [`PROTOCOL_VERSION`]; a request without the header is served as `oldest` (the
/// most conservative shape, for tools that do not announce one).
pub fn served_version(announced: Option<&str>, oldest: u32) -> Result<u32, VersionProblem> {
    let Some(text) = announced else {
        return Ok(oldest);
    };
    let v: u32 = text
        .trim()
        .parse()
        .map_err(|_| VersionProblem::Unreadable)?;
    if v < oldest {
        Err(VersionProblem::TooOld {
            announced: v,
            oldest,
        })
    } else if v > PROTOCOL_VERSION {
        Err(VersionProblem::TooNew { announced: v })
    } else {
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_and_the_previous_version_are_served_and_others_are_told_why() {
        let oldest = PREVIOUS_PROTOCOL_VERSION;
        assert_eq!(served_version(Some("2"), oldest), Ok(2));
        assert_eq!(served_version(Some(" 1 "), oldest), Ok(1));
        assert_eq!(served_version(None, oldest), Ok(1));
        assert_eq!(
            served_version(Some("0"), oldest),
            Err(VersionProblem::TooOld {
                announced: 0,
                oldest: 1
            })
        );
        assert_eq!(
            served_version(Some("3"), oldest),
            Err(VersionProblem::TooNew { announced: 3 })
        );
        assert_eq!(
            served_version(Some("two"), oldest),
            Err(VersionProblem::Unreadable)
        );
        let too_old = served_version(Some("1"), 2).expect_err("refused");
        assert!(too_old.to_string().ends_with("update Outpost"), "{too_old}");
    }
}
