//! Raft's transport between the replicas of a group: openraft's RPCs over
//! gRPC (`proto/ringkv/v1/raft.proto`), one lazily connected channel per
//! peer, kept for the process's life and shared by every client openraft
//! asks for (it asks for one per replication stream, but also one per
//! leadership confirmation: a new connection each time would cost a TCP and
//! HTTP/2 handshake per linearizable read round). A tonic channel
//! reconnects by itself when its peer comes back. Payloads are openraft's
//! own types, postcard-encoded.
//!
//! A standalone server is a group of one and never sends anything here.
//!
//! A peer that cannot be reached (connection refused: it is down) is tried
//! again after one heartbeat interval, not openraft's default of 500 ms:
//! a replica that comes back must hear its leader before its own election
//! timer runs out, or it stands, and its higher term unseats the leader
//! (openraft 0.9 has no pre-vote). Against a dead peer that costs one
//! refused connection per heartbeat.
//!
//! A peer is dialled at its `raft_addr` from the membership, unless the
//! configuration's `raft_dial` names another address for it (a proxy, a
//! NAT): the membership must be identical on every replica, but the route
//! from each one to a peer need not be.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use ringkv_api::pb::{raft_client::RaftClient, RaftPayload};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use super::types::{Node, NodeId, TypeConfig};

/// Largest Raft message a replica sends or accepts. An append larger than
/// this is split by openraft (we answer `PayloadTooLarge` with a hint).
pub const MAX_RAFT_MESSAGE: usize = 64 * 1024 * 1024;

/// Creates a client per peer.
#[derive(Clone)]
pub struct Network {
    me: NodeId,
    /// Per-peer dial addresses overriding the membership's `raft_addr`.
    dial: Arc<HashMap<NodeId, String>>,
    /// The channel to each Raft address.
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// The pause before trying an unreachable peer again.
    retry_unreachable: Duration,
}

impl Network {
    /// `retry_unreachable` is the heartbeat interval (see the module doc).
    pub fn new(me: NodeId, dial: HashMap<NodeId, String>, retry_unreachable: Duration) -> Self {
        Self { me, dial: Arc::new(dial), channels: Arc::default(), retry_unreachable }
    }

    /// The channel to `addr`, made on first use.
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
        let channel = endpoint.connect_timeout(Duration::from_millis(500)).tcp_nodelay(true).connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }
}

/// The client for one peer.
pub struct PeerClient {
    me: NodeId,
    target: NodeId,
    node: Node,
    client: Result<RaftClient<Channel>, String>,
    retry_unreachable: Duration,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerClient {
        let addr = self.dial.get(&target).unwrap_or(&node.raft_addr);
        let client = self
            .channel(addr)
            .map(|channel| {
                RaftClient::new(channel)
                    .max_decoding_message_size(MAX_RAFT_MESSAGE)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE)
            })
            .map_err(|e| format!("bad raft address {addr:?} for replica {target}: {e}"));
        PeerClient { me: self.me, target, node: node.clone(), client, retry_unreachable: self.retry_unreachable }
    }
}

/// Which RPC a call is, to the generated client.
#[derive(Clone, Copy)]
enum Call {
    Append,
    Vote,
    Snapshot,
}

impl PeerClient {
    /// Sends one RPC and decodes the peer's `Result<Resp, E>`.
    async fn call<Req, Resp, E>(
        &mut self,
        call: Call,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(why) => return Err(RPCError::Unreachable(Unreachable::new(&std::io::Error::other(why.clone())))),
        };
        let data = postcard::to_allocvec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let request = tonic::Request::new(RaftPayload { data: data.into() });
        let ttl = option.hard_ttl();
        let sent = tokio::time::timeout(ttl, send(client, call, request)).await;
        let reply = match sent {
            Err(_) => return Err(RPCError::Timeout(self.timeout(call, ttl))),
            Ok(Err(status)) => return Err(transport_error(status)),
            Ok(Ok(reply)) => reply,
        };
        let decoded: Result<Resp, E> =
            postcard::from_bytes(&reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }

    fn timeout(&self, call: Call, timeout: Duration) -> Timeout<NodeId> {
        let action = match call {
            Call::Append => RPCTypes::AppendEntries,
            Call::Vote => RPCTypes::Vote,
            Call::Snapshot => RPCTypes::InstallSnapshot,
        };
        Timeout { action, id: self.me, target: self.target, timeout }
    }
}

async fn send(
    mut client: RaftClient<Channel>,
    call: Call,
    request: tonic::Request<RaftPayload>,
) -> Result<RaftPayload, tonic::Status> {
    let reply = match call {
        Call::Append => client.append_entries(request).await?,
        Call::Vote => client.vote(request).await?,
        Call::Snapshot => client.install_snapshot(request).await?,
    };
    Ok(reply.into_inner())
}

/// Roughly how many bytes an entry takes on the wire.
fn entry_bytes(e: &super::types::Entry) -> usize {
    match &e.payload {
        openraft::EntryPayload::Normal(p) => 64 + p.0.iter().map(|req| 32 + req.cmd.size_hint()).sum::<usize>(),
        _ => 256,
    }
}

/// A peer that cannot be reached is `Unreachable` (openraft backs off);
/// anything else is a network error (openraft retries).
fn transport_error<E: std::error::Error>(status: tonic::Status) -> RPCError<NodeId, Node, E> {
    let err = std::io::Error::other(format!("{}: {}", status.code(), status.message()));
    match status.code() {
        tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&err)),
        _ => RPCError::Network(NetworkError::new(&err)),
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let entries = rpc.entries.len() as u64;
        let size: usize = rpc.entries.iter().map(entry_bytes).sum();
        if entries > 1 && size > MAX_RAFT_MESSAGE / 2 {
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)));
        }
        self.call(Call::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>> {
        self.call(Call::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.call(Call::Vote, &rpc, &option).await
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.retry_unreachable))
    }
}
