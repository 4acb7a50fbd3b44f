//! The subcommands, one file per group: adding a command is adding a file
//! here and a variant to `Cmd` in `main.rs`.
//!
//! - `server`: run one replica in the foreground.
//! - `up`: a local cluster of server processes, plus the shell.
//! - `ops`: the five key-value operations, shared by the one-shot commands
//!   and the shell.
//! - `admin`: operator tools (`status`, `verify`); `ring`: the ring view
//!   that `status` and `up` print.
//! - `bench`: the load generator.
//! - `faults`: the fault harness (kill, pause, partition; linearizability).
//! - `top`: a live view of a ring's replicas, from their `/metrics`.
//! - `probe`: back-to-back writes, one line per acknowledgement (outages as
//!   a client sees them).

pub mod admin;
pub mod bench;
pub mod faults;
pub mod ops;
pub mod probe;
pub mod ring;
pub mod server;
pub mod top;
pub mod up;
