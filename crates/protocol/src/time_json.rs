//! Timestamps written as chrono writes them, but faster.
//!
//! chrono's `Serialize` for `DateTime` hands serde a `Display` (`collect_str`); its
//! RFC 3339 writer emits the digits one `write_char` at a time, and serde_json runs
//! its string escaping on every one of them. An order with fifty notes spent more time
//! there than on the rest of its JSON. These functions format with the same chrono
//! writer (`to_rfc3339_opts(AutoSi, use_z)` is what chrono's `Serialize` calls, with
//! the same arguments) into a buffer first and hand serde one string, so the text is
//! byte for byte the same (a mutation's body hash, for idempotency, depends on it).
//! Reading is unchanged (chrono's `Deserialize`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// `#[serde(serialize_with = "crate::time_json::utc")]`
pub(crate) fn utc<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// The same for an optional timestamp.
pub(crate) fn opt_utc<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&Rfc3339(t)),
        None => s.serialize_none(),
    }
}

struct Rfc3339<'a>(&'a DateTime<Utc>);

impl Serialize for Rfc3339<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        utc(self.0, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Ours {
        #[serde(serialize_with = "utc")]
        t: DateTime<Utc>,
        #[serde(serialize_with = "opt_utc")]
        o: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chronos {
        t: DateTime<Utc>,
        o: Option<DateTime<Utc>>,
    }

    fn same(t: DateTime<Utc>, o: Option<DateTime<Utc>>) -> (String, String) {
        (
            serde_json::to_string(&Ours { t, o }).expect("json"),
            serde_json::to_string(&Chronos { t, o }).expect("json"),
        )
    }

    #[test]
    fn edge_timestamps_are_written_as_chrono_writes_them() {
        let cases = [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::UNIX_EPOCH,
            DateTime::<Utc>::from_timestamp(-1, 999_999_999).expect("valid"),
            DateTime::<Utc>::from_timestamp(1_700_000_000, 5_000).expect("valid"),
            DateTime::<Utc>::from_timestamp(1_700_000_000, 120_000_000).expect("valid"),
            // A leap second (nanoseconds past one second, at :59).
            DateTime::<Utc>::from_timestamp(1_483_228_799, 1_500_000_000).expect("valid"),
            DateTime::<Utc>::from_timestamp(253_402_300_800, 0).expect("valid"), // year 10000
            DateTime::<Utc>::from_timestamp(-62_167_219_201, 0).expect("valid"), // year -1
        ];
        for t in cases {
            for o in [None, Some(t)] {
                let (ours, chronos) = same(t, o);
                assert_eq!(ours, chronos);
            }
        }
    }

    proptest! {
        #[test]
        fn timestamps_are_written_as_chrono_writes_them(
            secs in -8_000_000_000_000i64..8_000_000_000_000,
            nanos in prop_oneof![Just(0u32), 0u32..1_000, 0u32..1_000_000_000],
            some in any::<bool>(),
        ) {
            let t = DateTime::<Utc>::from_timestamp(secs, nanos).expect("in range");
            let (ours, chronos) = same(t, some.then_some(t));
            prop_assert_eq!(ours, chronos);
        }
    }
}
