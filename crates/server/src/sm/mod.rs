//! The state machine: deterministic application of commands to the store.

pub(crate) mod command;
pub mod digest;
pub mod key;
#[cfg(test)]
mod outcome_table;
pub(crate) mod session;
pub(crate) mod snapshot;
pub(crate) mod store;
