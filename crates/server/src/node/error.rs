//! Why a replica did not serve a request: the replica layer's own error.
//!
//! It says what happened in the replica's terms (another replica leads,
//! leadership ended mid-write, no majority, stopping, a broken store), not
//! what a client is told: `service/status.rs` turns it into a gRPC status,
//! and the `KeyValue` service decides from it whether to forward a request
//! to the leader. openraft's errors become these here, once.

use openraft::error::{CheckIsLeaderError, ClientWriteError, Fatal, ForwardToLeader, RaftError};

use crate::raft::types::{Node, NodeId};
use crate::sm::store::StoreError;

/// Why a replica did not serve a request.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// This replica does not lead, and nothing was proposed: the request
    /// may be sent to the leader, whose client address is given when known.
    #[error("this replica does not lead (leader: {})", leader.as_deref().unwrap_or("unknown"))]
    NotLeader { leader: Option<String> },
    /// A write was proposed here, and leadership ended before it
    /// committed: the next leader may or may not commit it, so it must not
    /// be forwarded (it could apply twice), and its effect is unknown.
    #[error(
        "leadership changed while the write was in flight; it may or may not have taken effect (read before retrying)"
    )]
    LeadershipLost,
    /// Leadership could not be confirmed with a majority of the group.
    #[error("cannot reach a majority of replicas: {0}")]
    NoQuorum(String),
    /// Raft refused a change of membership (openraft's write error can say
    /// so; client writes never change membership).
    #[error("{0}")]
    Membership(String),
    /// The server is shutting down or Raft has stopped (the message says
    /// which).
    #[error("{0}")]
    Stopping(String),
    /// Writes are refused until disk space is back (`node/space.rs`).
    #[error("{0}")]
    NoSpace(String),
    /// This leader's disk is nearly full and it is making way for a
    /// replica with space (`node/step_aside.rs`); nothing was proposed.
    #[error("this replica's disk is nearly full and it is handing leadership over; retry shortly")]
    HandingOver,
    /// The local store failed: a server fault, never the client's.
    #[error("storage error: {0}")]
    Storage(#[from] StoreError),
    /// An invariant of this server broke (a bug).
    #[error("{0}")]
    Internal(String),
}

impl NodeError {
    /// A write that Raft could not commit, having been proposed here.
    pub fn from_write(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> NodeError {
        match e {
            // Whether or not a successor is known yet: it was proposed.
            RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => NodeError::LeadershipLost,
            RaftError::APIError(ClientWriteError::ChangeMembershipError(m)) => NodeError::Membership(m.to_string()),
            RaftError::Fatal(f) => fatal(f),
        }
    }

    /// A read whose linearizability could not be established.
    pub fn from_read(e: RaftError<NodeId, CheckIsLeaderError<NodeId, Node>>) -> NodeError {
        match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => not_leader(f),
            RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => NodeError::NoQuorum(q.to_string()),
            RaftError::Fatal(f) => fatal(f),
        }
    }
}

fn not_leader(f: ForwardToLeader<NodeId, Node>) -> NodeError {
    NodeError::NotLeader { leader: f.leader_node.map(|n| n.client_addr) }
}

fn fatal(f: Fatal<NodeId>) -> NodeError {
    tracing::error!("raft stopped: {f}");
    NodeError::Stopping(format!("the server is stopping: {f}"))
}

#[cfg(test)]
mod tests {
    use openraft::error::QuorumNotEnough;

    use super::*;

    fn forward(leader: Option<&str>) -> ForwardToLeader<NodeId, Node> {
        ForwardToLeader {
            leader_id: leader.map(|_| 2),
            leader_node: leader.map(|a| Node { client_addr: a.into(), raft_addr: a.into() }),
        }
    }

    #[test]
    fn a_read_on_a_follower_names_the_leader_to_forward_to() {
        let e = NodeError::from_read(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward(Some("l:1")))));
        assert!(matches!(e, NodeError::NotLeader { leader: Some(ref a) } if a == "l:1"), "{e:?}");
        let e = NodeError::from_read(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward(None))));
        assert!(matches!(e, NodeError::NotLeader { leader: None }), "{e:?}");
        let q = QuorumNotEnough { cluster: "{1,2,3}".into(), got: [1].into() };
        let e = NodeError::from_read(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)));
        assert!(matches!(e, NodeError::NoQuorum(_)), "{e:?}");
    }

    #[test]
    fn a_proposed_write_that_lost_its_leader_is_never_a_forward() {
        let e = NodeError::from_write(RaftError::APIError(ClientWriteError::ForwardToLeader(forward(Some("l:1")))));
        assert!(matches!(e, NodeError::LeadershipLost), "{e:?}");
        let e = NodeError::from_write(RaftError::APIError(ClientWriteError::ForwardToLeader(forward(None))));
        assert!(matches!(e, NodeError::LeadershipLost), "no successor known yet: {e:?}");
        let e = NodeError::from_write(RaftError::Fatal(Fatal::Stopped));
        assert!(matches!(e, NodeError::Stopping(_)), "{e:?}");
    }
}
