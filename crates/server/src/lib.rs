//! The ringkv server.
//!
//! A request flows: gRPC service (`service/`) → `node.rs` → Raft (`raft/`:
//! openraft with our on-disk log in `raft/log_store`) → the state machine
//! (`sm/`: the outcome table in `sm/command.rs`, LMDB in `sm/store.rs`,
//! snapshots in `sm/snapshot.rs`) → reply. `server.rs` runs a process from
//! its `config.rs`. Errors point down: the replica answers with its own
//! `NodeError` (`node/error.rs`), and `service/status.rs` alone turns errors
//! into gRPC statuses.
//!
//! Other crates use `cli` (a replica's flags, the ring file of a local
//! cluster), `config` (a server's configuration), `server::run` (a
//! server process), `verify` (the offline check of a data directory) and
//! `sm::digest` (what a state's digest covers). Everything else is the
//! server's own; tests outside the crate go through these and the wire.

pub(crate) mod broken;
pub mod cli;
pub mod config;
pub(crate) mod disk;
pub(crate) mod metrics;
pub(crate) mod node;
pub(crate) mod raft;
pub(crate) mod read_batch;
pub mod server;
pub(crate) mod service;
pub mod sm;
pub mod verify;
pub(crate) mod write_batch;

/// The version status reports; a deliberately broken build says so.
pub fn build_version() -> String {
    let version = env!("CARGO_PKG_VERSION");
    match broken::version_suffix() {
        Some(broken) => format!("{version} {broken}"),
        None => version.to_owned(),
    }
}
