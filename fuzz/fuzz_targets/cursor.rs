#![no_main]
//! Fuzz target `cursor`: [`outpost_fuzz::wire::cursor`] (its module says what is checked).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outpost_fuzz::wire::cursor(data));
