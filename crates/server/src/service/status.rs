//! The one place where internal errors become gRPC statuses.
//!
//! Bad input is `INVALID_ARGUMENT` with a message that says what to fix;
//! anything that a retry may cure (no leader yet, shutting down) is
//! `UNAVAILABLE`; a broken disk is `INTERNAL`, and is logged.

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use ringkv_api::KeyError;
use tonic::Status;

use crate::raft::types::{Node, NodeId};
use crate::sm::store::StoreError;

/// A request field the server refuses.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("invalid key: {0}")]
    Key(#[from] KeyError),
    #[error("data is {len} bytes; the limit is {limit} bytes (max_value_bytes)")]
    DataTooLarge { len: usize, limit: usize },
}

impl From<InputError> for Status {
    fn from(e: InputError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// Why this replica did not serve a request itself.
#[derive(Debug)]
pub enum Unserved {
    /// Another replica leads; its client address. The request can be
    /// forwarded there.
    Elsewhere(String),
    /// An answer for the client.
    Status(Status),
}

impl From<Status> for Unserved {
    fn from(s: Status) -> Self {
        Unserved::Status(s)
    }
}

/// The status a client gets when a request cannot be served here and is
/// not forwarded (no leader known, or already forwarded once).
pub fn no_leader() -> Status {
    Status::unavailable("no leader is known yet (election in progress); retry shortly")
}

/// A write proposed here whose leadership ended before it committed: the
/// next leader may or may not commit it.
pub fn leadership_lost() -> Status {
    Status::unavailable(
        "leadership changed while the write was in flight; it may or may not have taken effect (read before retrying)",
    )
}

/// A request that went round the ring `max_hops` times without reaching
/// its owner: the nodes cannot agree on the ring.
pub fn hop_limit(max_hops: u32, key_id: &str, position: usize) -> Status {
    Status::failed_precondition(format!(
        "routing loop: the request was forwarded {max_hops} times (ring.max_hops = {max_hops}) without reaching \
         the owner of key id {key_id} (now at position {position}); the servers' ring configurations probably \
         disagree (compare `ringkv status` of every node)"
    ))
}

fn not_leader(f: &ForwardToLeader<NodeId, Node>) -> Unserved {
    match &f.leader_node {
        Some(node) => Unserved::Elsewhere(node.client_addr.clone()),
        None => Unserved::Status(no_leader()),
    }
}

fn fatal(e: &openraft::error::Fatal<NodeId>) -> Status {
    tracing::error!("raft stopped: {e}");
    Status::unavailable(format!("the server is stopping: {e}"))
}

/// A write that Raft could not commit.
pub fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, Node>>) -> Unserved {
    match &e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(f),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(m)) => {
            Status::failed_precondition(m.to_string()).into()
        }
        RaftError::Fatal(f) => fatal(f).into(),
    }
}

/// A read whose linearizability could not be established.
pub fn read_error(e: RaftError<NodeId, CheckIsLeaderError<NodeId, Node>>) -> Unserved {
    match &e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => not_leader(f),
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            Status::unavailable(format!("cannot reach a majority of replicas: {q}")).into()
        }
        RaftError::Fatal(f) => fatal(f).into(),
    }
}

/// The local store failed: a server fault, never the client's.
pub fn store_error(e: StoreError) -> Unserved {
    tracing::error!("state machine read failed: {e}");
    Status::internal(format!("storage error: {e}")).into()
}
