#![no_main]
//! Fuzz target `push_request`: [`outpost_fuzz::wire::push_request`] (its module says what is checked).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outpost_fuzz::wire::push_request(data));
