//! The ringkv server.
//!
//! A request flows: gRPC service (`service/`) → `node.rs` → Raft (`raft/`:
//! openraft with our on-disk log in `raft/log_store`) → the state machine
//! (`sm/`: the outcome table in `sm/command.rs`, LMDB in `sm/store.rs`,
//! snapshots in `sm/snapshot.rs`) → reply. `server.rs` runs a process from
//! its `config.rs`.

pub mod config;
pub mod node;
pub mod raft;
pub mod read_batch;
pub mod server;
pub mod service;
pub mod sm;
pub mod verify;
pub mod write_batch;
