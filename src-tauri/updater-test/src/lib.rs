//! Empty: the test lives in `tests/tamper.rs`.
