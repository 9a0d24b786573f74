//! The reference sync server. Depends on `protocol` only, never on the client crates.
