//! The work-order status machine, shared by the device and the server.
//!
//! `completed` is reached only through the complete action (which also checks the
//! evidence); `cancelled` only through cancel. Both are terminal for technicians; a
//! dispatcher or administrator may reopen a cancelled order to `scheduled`
//! (a technician may not: `merge::technician_reopens`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Scheduled,
    EnRoute,
    InProgress,
    OnHold,
    Completed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Scheduled,
        Status::EnRoute,
        Status::InProgress,
        Status::OnHold,
        Status::Completed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::EnRoute => "en_route",
            Status::InProgress => "in_progress",
            Status::OnHold => "on_hold",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Cancelled)
    }

    /// Whether a plain status change (an edit, not complete or cancel) may move an
    /// order from `self` to `to`. Setting the same status is always allowed (no-op).
    pub fn can_edit_to(self, to: Status) -> bool {
        use Status::*;
        if self == to {
            return true;
        }
        match (self, to) {
            (_, Completed) | (_, Cancelled) => false,
            (Completed, _) => false,
            (Cancelled, Scheduled) => true,
            (Cancelled, _) => false,
            (Scheduled | EnRoute | InProgress | OnHold, _) => true,
        }
    }

    /// Whether the complete action may finish an order in this status.
    pub fn can_complete(self) -> bool {
        !self.is_terminal()
    }

    /// Whether the cancel action may cancel an order in this status.
    pub fn can_cancel(self) -> bool {
        !self.is_terminal()
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!("unknown status {s:?}: use scheduled, en_route, in_progress or on_hold")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_and_cancelled_are_never_reached_by_an_edit() {
        for from in Status::ALL {
            assert!(!from.can_edit_to(Status::Completed) || from == Status::Completed);
            assert!(!from.can_edit_to(Status::Cancelled) || from == Status::Cancelled);
        }
    }

    #[test]
    fn a_completed_order_stays_completed() {
        for to in Status::ALL {
            assert_eq!(Status::Completed.can_edit_to(to), to == Status::Completed);
        }
        assert!(!Status::Completed.can_complete());
        assert!(!Status::Completed.can_cancel());
    }

    #[test]
    fn a_cancelled_order_can_only_be_reopened_as_scheduled() {
        assert!(Status::Cancelled.can_edit_to(Status::Scheduled));
        assert!(!Status::Cancelled.can_edit_to(Status::InProgress));
    }

    #[test]
    fn statuses_parse_from_their_names() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        assert!("done".parse::<Status>().is_err());
    }
}
