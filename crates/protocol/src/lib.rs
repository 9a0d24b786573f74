//! The contract between the device and the server.
//!
//! Everything both sides must agree on lives here and nowhere else: the domain types
//! (work orders, inventory), their validation and status machine, the mutation format
//! (field operations) and how operations apply to an order. This crate does no I/O and
//! reads no clock (it only declares the [`Clock`] trait): callers pass times in, so
//! every rule is a pure, testable function.

pub mod apply;
pub mod clock;
pub mod compat;
pub mod digest;
pub mod domain;
pub mod fleet;
pub mod limits;
pub mod merge;
pub mod mutation;
pub mod status;
pub mod stock;
mod time_json;
pub mod unsent;
pub mod validate;
pub mod wire;

pub use apply::{apply_mutation, apply_ops, ApplyError};
pub use clock::Clock;
pub use digest::{attachment_hash, sha256_hex};
pub use domain::*;
pub use mutation::{ListName, Mutation, MutationKind, Op, SetOp, FORMAT_VERSION};
pub use status::Status;
pub use validate::{FieldError, ValidationErrors};

/// The sync protocol version this build speaks (see [`compat`] for the versions a
/// server serves).
pub use compat::PROTOCOL_VERSION;
