#![no_main]
//! Fuzz target `attachments`: [`outpost_fuzz::wire::attachments`] (its module says what is checked).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| outpost_fuzz::wire::attachments(data));
