#![no_main]
//! Fuzz target `pull`: [`outpost_fuzz::wire::pull`] (its module says what is checked).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outpost_fuzz::wire::pull(data));
