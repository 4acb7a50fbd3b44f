//! The openraft type configuration: which command, answer, node and snapshot
//! types the Raft layer carries. Declared once here; everything else names
//! these aliases.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::sm::command::Reply;
use crate::sm::session::Request;

/// A replica's identity within its Raft group.
pub type NodeId = u64;

/// How to reach a replica: its client-facing gRPC address and its Raft
/// address (they may be the same listener).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub client_addr: String,
    pub raft_addr: String,
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{client: {}, raft: {}}}", self.client_addr, self.raft_addr)
    }
}

/// What one log entry carries: client writes batched together
/// (`write_batch.rs`), applied in order, each answered on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal(pub Vec<Request>);

openraft::declare_raft_types!(
    /// ringkv's Raft types.
    pub TypeConfig:
        D = Proposal,
        R = Vec<Reply>,
        NodeId = NodeId,
        Node = Node,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogFlushed = openraft::storage::LogFlushed<TypeConfig>;
