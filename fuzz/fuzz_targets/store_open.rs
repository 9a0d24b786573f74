#![no_main]
//! Fuzz target `store_open`: [`outpost_fuzz::store::open`] (its module says what is checked).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outpost_fuzz::store::open(data));
