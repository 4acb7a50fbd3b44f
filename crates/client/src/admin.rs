//! The operations API (`ringkv.v1.Admin`), typed: what one server says
//! about itself and its group (`status`), and the ring map as it knows it
//! (`ring`). The CLI's `status`, `ringkv up`, the fault harness, the test
//! kit and the ring-aware client all ask through this one handle, so the
//! wire's messages are read in one place.

use std::fmt;
use std::time::Duration;

use ringkv_api::pb::{self, admin_client::AdminClient};
use tonic::transport::Channel;

use crate::{endpoint, ClientError, ClientOptions};

/// A handle on one server's `Admin` service. Connects lazily and again
/// after a failure; cheap to clone.
#[derive(Clone)]
pub struct Admin {
    stub: AdminClient<Channel>,
    timeout: Duration,
}

impl Admin {
    /// A handle on the server at `addr` ("host:port" or a URL). Each call
    /// gets `opts.timeout` (a digest scans the whole state: give it room).
    pub fn new(addr: &str, opts: &ClientOptions) -> Result<Admin, ClientError> {
        let channel = endpoint(addr, opts)?.connect_lazy();
        Ok(Admin::on(channel, opts.timeout))
    }

    /// A handle on an existing channel (the ring-aware client's seeds).
    pub(crate) fn on(channel: Channel, timeout: Duration) -> Admin {
        Admin { stub: AdminClient::new(channel), timeout }
    }

    /// The same handle with another per-call deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Admin {
        self.timeout = timeout;
        self
    }

    /// Role, term and log progress of the server; with `digest`, also a
    /// digest of its whole state (a full scan) at the index it was taken.
    pub async fn status(&self, digest: bool) -> Result<NodeStatus, ClientError> {
        let mut req = tonic::Request::new(pb::StatusRequest { with_digest: digest });
        req.set_timeout(self.timeout);
        let reply = self.call(self.stub.clone().status(req)).await?;
        Ok(NodeStatus::from(reply))
    }

    /// The ring map as this server knows it (other groups' leaders as it
    /// last learned them).
    pub async fn ring(&self) -> Result<RingMap, ClientError> {
        let mut req = tonic::Request::new(pb::RingRequest {});
        req.set_timeout(self.timeout);
        let reply = self.call(self.stub.clone().ring(req)).await?;
        Ok(RingMap::from(reply))
    }

    /// One call, bounded by the deadline even while connecting.
    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(ClientError::Timeout),
            Ok(Err(status)) => Err(ClientError::from(status)),
            Ok(Ok(r)) => Ok(r.into_inner()),
        }
    }
}

/// A replica's role in its Raft group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
    /// A role this client does not know (a newer server).
    Other(String),
}

impl Role {
    fn parse(s: &str) -> Role {
        match s {
            "leader" => Role::Leader,
            "follower" => Role::Follower,
            "candidate" => Role::Candidate,
            "learner" => Role::Learner,
            "shutdown" => Role::Shutdown,
            other => Role::Other(other.to_owned()),
        }
    }

    /// The role as the server names it.
    pub fn as_str(&self) -> &str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Shutdown => "shutdown",
            Role::Other(s) => s,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One replica of a group: its id, client and Raft addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub addr: String,
    pub raft_addr: String,
}

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Member { id: m.id, addr: m.addr, raft_addr: m.raft_addr }
    }
}

/// A digest of a replica's whole state, taken in one read transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDigest {
    /// The digest (hex).
    pub digest: String,
    /// The applied index it belongs to.
    pub index: u64,
    /// Keys in the state.
    pub keys: u64,
}

/// What a server says about itself (`Admin.Status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub node_id: u64,
    pub role: Role,
    pub term: u64,
    pub leader_id: Option<u64>,
    pub last_log_index: u64,
    pub applied_index: u64,
    pub snapshot_index: u64,
    pub purged_index: u64,
    pub members: Vec<Member>,
    /// Only when asked for.
    pub digest: Option<StateDigest>,
    /// The server's version.
    pub version: String,
    /// Its group's ring position (0 without a ring).
    pub position: u32,
    /// Why it refuses writes now (quota, disk nearly full); empty when it
    /// accepts them.
    pub alarms: Vec<String>,
}

impl NodeStatus {
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}

impl From<pb::StatusReply> for NodeStatus {
    fn from(s: pb::StatusReply) -> Self {
        let digest = s.digest.map(|digest| StateDigest { digest, index: s.digest_index, keys: s.keys });
        NodeStatus {
            node_id: s.node_id,
            role: Role::parse(&s.role),
            term: s.term,
            leader_id: s.leader_id,
            last_log_index: s.last_log_index,
            applied_index: s.applied_index,
            snapshot_index: s.snapshot_index,
            purged_index: s.purged_index,
            members: s.members.into_iter().map(Member::from).collect(),
            digest,
            version: s.version,
            position: s.position,
            alarms: s.alarms,
        }
    }
}

/// One position of the ring: a Raft group and the ids it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingPosition {
    pub position: u32,
    /// Its ring id, decimal (ids may be wider than 64 bits).
    pub id: String,
    /// It owns the ids in `(range_start, id]`.
    pub range_start: String,
    pub replicas: Vec<Member>,
    /// Its leader's client address as the answering server last learned it.
    pub leader: Option<String>,
}

/// The ring map (`Admin.Ring`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingMap {
    /// Ids are `m` bits wide.
    pub m: u32,
    /// "hash" or "direct".
    pub placement: String,
    pub positions: Vec<RingPosition>,
    /// The answering server's position.
    pub position: u32,
    /// The hop limit of server-side routing.
    pub max_hops: u32,
}

impl From<pb::RingReply> for RingMap {
    fn from(r: pb::RingReply) -> Self {
        let positions = r
            .positions
            .into_iter()
            .map(|p| RingPosition {
                position: p.position,
                id: p.id,
                range_start: p.range_start,
                replicas: p.replicas.into_iter().map(Member::from).collect(),
                leader: p.leader,
            })
            .collect();
        RingMap { m: r.m, placement: r.placement, positions, position: r.position, max_hops: r.max_hops }
    }
}
