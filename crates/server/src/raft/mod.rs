//! The Raft layer: openraft's type configuration, the on-disk log, and the
//! glue between openraft and the state machine.

pub mod log_store;
pub mod network;
pub mod state_machine;
pub mod types;
