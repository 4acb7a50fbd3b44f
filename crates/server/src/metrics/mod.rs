//! What a server says about itself on `/metrics` and `/healthz`
//! (`metrics_listen`; the endpoint itself is `ringkv-metrics`).
//!
//! Two kinds of figures:
//! - **counted on the way** (this file): requests by RPC and outcome and
//!   their latency, forwards and hops, write batches, read-index rounds,
//!   log appends and fsyncs, snapshots, elections. One process is one
//!   replica, so they live in one process-wide `Recorder` (`get()`) that
//!   the layers bump where the event happens, without a handle threaded
//!   through every constructor. Counters and `Histogram`s are relaxed
//!   atomics; a request's labels are two `&'static str`, so recording
//!   allocates nothing.
//! - **read at scrape** (`raft.rs`): what openraft's metrics and the log
//!   already know (term, role, leader, indexes, log files), read when
//!   Prometheus asks and never on a request's path.
//!
//! `/healthz` (`health.rs`) is 200 only once the replica serves clients
//! and its group has a leader that hears from a quorum.

mod health;
mod raft;
mod recorder;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use prometheus_client::registry::Registry;
use ringkv_metrics::{Endpoint, MetricsError};

use crate::node::Node;
use crate::raft::types::Raft;
pub use recorder::{get, Outcome};

/// What the endpoint can see of the replica, filled in as start-up goes.
#[derive(Default)]
pub struct Replica {
    /// Set once Raft exists (recovery done, electing).
    raft: OnceLock<Raft>,
    /// Set once the replica serves clients.
    node: OnceLock<Node>,
    /// `election_timeout_max_ms`: a leader silent from its quorum for
    /// longer may have been replaced.
    election_timeout_ms: u64,
    node_id: u64,
    position: usize,
}

impl Replica {
    pub fn new(node_id: u64, position: usize, election_timeout_ms: u64) -> Arc<Replica> {
        Arc::new(Replica { node_id, position, election_timeout_ms, ..Replica::default() })
    }

    pub fn set_raft(&self, raft: Raft) {
        let _ = self.raft.set(raft);
    }

    pub fn set_node(&self, node: Node) {
        let _ = self.node.set(node);
    }
}

/// Binds `addr` and serves the replica's metrics and health from now on:
/// `/healthz` answers 503 ("recovering") while the state is rebuilt.
/// Returns the bound address (port 0 picks one).
pub async fn serve(addr: SocketAddr, replica: Arc<Replica>) -> Result<Option<SocketAddr>, MetricsError> {
    let endpoint = Endpoint::bind(addr).await?;
    let bound = endpoint.local_addr();
    // The process's own figures (added by the endpoint) keep their usual
    // unprefixed names; ours are ringkv_*.
    let mut registry = Registry::default();
    let ours = registry.sub_registry_with_prefix("ringkv");
    get().register(ours);
    ours.register_collector(Box::new(raft::RaftCollector::new(replica.clone())));
    endpoint.serve(registry, move || health::check(&replica));
    Ok(bound)
}
