//! The state machine: deterministic application of commands to the store.

pub mod command;
pub mod outcome_table;
pub mod session;
pub mod snapshot;
pub mod store;
