//! The openraft type configuration: which command, answer, node and snapshot
//! types the Raft layer carries. Declared once here; everything else names
//! these aliases.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
///
/// Shared, not owned: openraft clones an entry each time it reads it from
/// the log (once per follower it replicates to, once to apply it), and the
/// log keeps recent entries in memory; a clone is a reference count, not a
/// copy of every key and value. Encoded as the bare list, as before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal(pub Arc<Vec<Request>>);

impl Proposal {
    pub fn new(reqs: Vec<Request>) -> Self {
        Proposal(Arc::new(reqs))
    }
}

impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::deserialize(d).map(Proposal::new)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::command::Command;

    /// Sharing the requests did not change the log's or the wire's bytes.
    #[test]
    fn a_proposal_encodes_as_its_list_of_requests() {
        let reqs = vec![
            Request::plain(Command::Set { key: vec![1, 2], timestamp: 3, data: vec![4; 300] }, 5),
            Request::plain(Command::Del { key: vec![6] }, 7),
        ];
        let bytes = postcard::to_allocvec(&Proposal::new(reqs.clone())).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&reqs).unwrap());
        let back: Proposal = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(*back.0, reqs);
    }
}
