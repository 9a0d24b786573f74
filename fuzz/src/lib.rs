//! Outpost's fuzz targets (issue 17 item 2), as plain functions of the input bytes so
//! that each target in `fuzz_targets/` is one line and a crash found here replays as
//! a `#[test]` next to the code it tests.
//!
//! - [`wire`]: the wire decoders, as the server reads requests (`parse_json`, the pull
//!   cursor, attachment names) and as the device reads answers; what is accepted must
//!   write back to the same value.
//! - [`merge`]: the merge rules on generated orders, stamps and mutations: no panic, a
//!   deterministic decision, no `set` dropped silently, versions and stamps consistent.
//! - [`store`]: the device's store opened over a database whose schema and rows were
//!   changed arbitrarily: a typed error or a working store, never a panic.
//!
//! Run with `scripts/fuzz.sh` (cargo-fuzz, libFuzzer, RUSTC_BOOTSTRAP=1 on stable).

pub mod merge;
pub mod store;
pub mod wire;
