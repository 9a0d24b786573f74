//! The sync engine: a state machine with no I/O (events in, instructions out) and a thin
//! tokio driver that runs its instructions with reqwest and the store.
//!
//! Not built yet: this crate marks the engine's place in the architecture. Until it
//! exists, mutations stay in the outbox (`outpost outbox list`) and nothing is uploaded.
