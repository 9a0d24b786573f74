#![no_main]
//! Fuzz target `merge`: [`outpost_fuzz::merge::merge`] (its module says what is checked).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outpost_fuzz::merge::merge(data));
