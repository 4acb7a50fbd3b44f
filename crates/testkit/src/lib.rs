//! The one way to start real processes for ringkv's tests and tools.
//!
//! `ringkv up`, the fault harness, every integration test and the shop's
//! tests start servers through this crate, so that choosing ports,
//! starting, waiting (with deadlines, never a bare sleep), killing,
//! restarting, pausing and cleaning up are written once:
//!
//! - [`Cluster`] / [`ClusterSpec`]: a standalone server, a Raft group or a
//!   ring of groups, on free (or fixed) loopback ports, with an optional
//!   proxy on every directed Raft link;
//! - [`Process`]: any child process run from its command line (the shop's
//!   portals, a broker), with `kill -9`, restart, SIGSTOP/SIGCONT, stop;
//! - [`LinkProxy`]: a userspace TCP proxy that passes, delays, blackholes
//!   or refuses one direction of one link;
//! - [`wait`]: polling a condition until a deadline;
//! - [`exe`]: finding the workspace's executables, running one to the end;
//! - [`outcomes`]: the outcome table as data, for every test that runs it;
//! - [`Mosquitto`]: a real MQTT broker on a free port (the shop's caches).
//!
//! Everything is killed when dropped: a failing test leaves nothing behind.

pub mod cluster;
mod error;
pub mod exe;
pub mod mosquitto;
pub mod outcomes;
pub mod port;
pub mod process;
pub mod proxy;
pub mod wait;

pub use cluster::{Cluster, ClusterSpec, Converged, Ports, Replica};
pub use error::TestkitError;
pub use mosquitto::Mosquitto;
pub use port::{free_port, free_port_block};
pub use process::Process;
pub use proxy::{LinkProxy, Mode};
