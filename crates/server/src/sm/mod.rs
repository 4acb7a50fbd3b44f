//! The state machine: deterministic application of commands to the store.

pub mod command;
#[cfg(test)]
mod outcome_table;
pub mod session;
pub mod snapshot;
pub mod store;
