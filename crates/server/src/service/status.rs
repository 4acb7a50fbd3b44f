//! The one place where internal errors become gRPC statuses.
//!
//! Bad input is `INVALID_ARGUMENT` with a message that says what to fix;
//! anything that a retry may cure (no leader yet, shutting down) is
//! `UNAVAILABLE`; a broken disk is `INTERNAL`, and is logged.

use ringkv_api::KeyError;
use tonic::Status;

use crate::node::NodeError;

/// A request field the server refuses.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("invalid key: {0}")]
    Key(#[from] KeyError),
    #[error("data is {len} bytes; the limit is {limit} bytes (max_value_bytes)")]
    DataTooLarge { len: usize, limit: usize },
    #[error("trim must keep at least 1 version (keep = 0); use del to remove a key")]
    KeepNothing,
    #[error("a text key must be UTF-8")]
    NotText,
    #[error("key is {len} bytes; the longest key is {limit} bytes")]
    TextKeyTooLong { len: usize, limit: usize },
}

impl From<InputError> for Status {
    fn from(e: InputError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// What a client is told when its request was not served by this replica
/// and not forwarded. Only a `NotLeader` that was already forwarded once
/// (or has no leader to go to) reaches here: the `KeyValue` service
/// forwards the others.
impl From<NodeError> for Status {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::NotLeader { .. } => no_leader(),
            NodeError::LeadershipLost | NodeError::NoQuorum(_) | NodeError::Stopping(_) | NodeError::HandingOver => {
                Status::unavailable(e.to_string())
            }
            NodeError::Membership(_) => Status::failed_precondition(e.to_string()),
            NodeError::NoSpace(_) => Status::resource_exhausted(e.to_string()),
            NodeError::Storage(ref s) => {
                tracing::error!("state machine read failed: {s}");
                Status::internal(e.to_string())
            }
            NodeError::Internal(_) => Status::internal(e.to_string()),
        }
    }
}

/// No leader to send a request to (none known, or it was already
/// forwarded to one that no longer leads): retryable.
fn no_leader() -> Status {
    Status::unavailable("no leader is known yet (election in progress); retry shortly")
}

/// The answer of a node a request was forwarded to (`to` says what it is,
/// `addr` where), as relayed to the client: one that could not be reached
/// is, for a leader, the same as having none (UNAVAILABLE, saying whom we
/// could not reach); any other answer passes unchanged. The metadata
/// (hops, leader) is kept.
pub fn relayed(s: Status, to: &str, addr: &str) -> Status {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
            let mut u = Status::unavailable(format!("cannot reach {to} at {addr}: {}", s.message()));
            *u.metadata_mut() = s.metadata().clone();
            u
        }
        _ => s,
    }
}

/// A node address that is not a valid endpoint (a configuration error).
pub fn bad_address(addr: &str, e: impl std::fmt::Display) -> Status {
    Status::internal(format!("bad node address {addr:?}: {e}"))
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

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::sm::store::StoreError;

    fn status(e: NodeError) -> (Code, String) {
        let s = Status::from(e);
        (s.code(), s.message().to_owned())
    }

    /// The codes and the words clients (and the tests that drive them)
    /// rely on.
    #[test]
    fn every_node_error_has_its_code_and_says_what_to_do() {
        let cases = [
            (NodeError::NotLeader { leader: None }, Code::Unavailable, "no leader"),
            (NodeError::NotLeader { leader: Some("l:1".into()) }, Code::Unavailable, "no leader"),
            (NodeError::LeadershipLost, Code::Unavailable, "may or may not have taken effect"),
            (NodeError::NoQuorum("got {1}".into()), Code::Unavailable, "majority"),
            (NodeError::Stopping("the server is shutting down".into()), Code::Unavailable, "shutting down"),
            (NodeError::Membership("in progress".into()), Code::FailedPrecondition, "in progress"),
            (NodeError::NoSpace("quota exceeded: 9 of 8 bytes".into()), Code::ResourceExhausted, "quota exceeded"),
            (NodeError::HandingOver, Code::Unavailable, "handing leadership over"),
            (NodeError::Storage(StoreError::CorruptValue("3 bytes".into())), Code::Internal, "storage error"),
            (NodeError::Internal("reply count mismatch".into()), Code::Internal, "reply count mismatch"),
        ];
        for (e, code, words) in cases {
            let shown = format!("{e:?}");
            let (got, message) = status(e);
            assert_eq!(got, code, "{shown}");
            assert!(message.contains(words), "{shown}: {message:?} lacks {words:?}");
        }
    }
}
