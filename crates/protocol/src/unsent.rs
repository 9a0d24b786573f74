//! What a device has not sent: the figures it reports on every request, in the
//! `x-outpost-unsent` header ([`crate::wire::UNSENT_HEADER`]), so that dispatchers can
//! see a device that is holding work back (the server keeps the latest figures per
//! device).
//!
//! The value is a structured-field dictionary (RFC 8941) of integers:
//! `count=3, set_aside=1, oldest_secs=5400`. `count` is every change made on the device
//! that the server has not accepted (waiting to be sent, sent without an answer yet,
//! or set aside by the device); `set_aside` how many of those the device set aside
//! itself (a change refused as a whole request, or whose photo is missing: the server
//! never saw it and keeps no failed-sync record of it), left out when 0; `oldest_secs`
//! the age of the oldest of them in seconds, left out when `count` is 0.
//!
//! Compatibility (docs/protocol.md): the header is optional. A server accepts requests
//! without it, and an unreadable value never fails a request (the figures are only
//! not recorded); a reader ignores keys it does not know, so later releases may add
//! some. Left out on purpose: anything about which changes (ids, orders): the figures
//! are a signal for a person to follow up, not a second copy of the outbox.

/// The figures of one report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UnsentReport {
    /// Changes the server has not accepted, set-aside ones included.
    pub count: u64,
    /// Of those, set aside by the device itself.
    pub set_aside: u64,
    /// Age of the oldest of them, in seconds (`None` when there are none).
    pub oldest_secs: Option<u64>,
}

impl UnsentReport {
    /// The header value: `count=N`, then `set_aside=K` when K > 0, then
    /// `oldest_secs=S` when there is an oldest change.
    pub fn to_header(&self) -> String {
        let mut v = format!("count={}", self.count);
        if self.set_aside > 0 {
            v.push_str(&format!(", set_aside={}", self.set_aside));
        }
        if let (Some(age), true) = (self.oldest_secs, self.count > 0) {
            v.push_str(&format!(", oldest_secs={age}"));
        }
        v
    }

    /// Read a header value. `None` when it is not a dictionary of the known members as
    /// non-negative integers, or lacks `count`, or says more set aside than unsent;
    /// unknown members are ignored.
    pub fn parse(value: &str) -> Option<UnsentReport> {
        let mut count = None;
        let mut report = UnsentReport::default();
        for member in value.split(',') {
            let (key, val) = member.trim().split_once('=')?;
            let read = || val.trim().parse::<u64>().ok();
            match key.trim() {
                "count" => count = Some(read()?),
                "set_aside" => report.set_aside = read()?,
                "oldest_secs" => report.oldest_secs = Some(read()?),
                _ => {}
            }
        }
        report.count = count?;
        (report.set_aside <= report.count).then_some(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back_as_written_and_a_bad_one_is_not_read() {
        for r in [
            UnsentReport::default(),
            UnsentReport {
                count: 3,
                set_aside: 1,
                oldest_secs: Some(5_400),
            },
            UnsentReport {
                count: 2,
                set_aside: 0,
                oldest_secs: Some(0),
            },
        ] {
            assert_eq!(
                UnsentReport::parse(&r.to_header()),
                Some(r),
                "{}",
                r.to_header()
            );
        }
        assert_eq!(UnsentReport::default().to_header(), "count=0");
        assert_eq!(
            UnsentReport::parse("count=4, oldest_secs=9, later_key=x"),
            Some(UnsentReport {
                count: 4,
                set_aside: 0,
                oldest_secs: Some(9)
            }),
            "unknown members are ignored"
        );
        for bad in [
            "",
            "count",
            "count=-1",
            "oldest_secs=3",
            "count=1, set_aside=2",
            "count=1;x",
        ] {
            assert_eq!(UnsentReport::parse(bad), None, "{bad:?}");
        }
    }
}
