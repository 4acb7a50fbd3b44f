//! The `Admin` service (`admin.proto`): a replica's view of itself and its
//! group, from openraft's metrics and the store (with `with_digest`, the
//! state's digest of `sm/digest.rs`), and of the ring (`Ring`).

use openraft::ServerState;
use std::sync::Arc;

use ringkv_api::pb::{admin_server::Admin, Member, RingReply, RingRequest, StatusReply, StatusRequest};
use tonic::{Request, Response, Status};

use super::route::Router;
use crate::node::Node;
use crate::sm::digest;

#[derive(Clone)]
pub struct AdminService {
    node: Node,
    router: Arc<Router>,
}

impl AdminService {
    pub fn new(node: Node, router: Arc<Router>) -> Self {
        Self { node, router }
    }
}

fn role(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let m = self.node.raft().metrics().borrow().clone();
        let members = m
            .membership_config
            .nodes()
            .map(|(id, n)| Member { id: *id, addr: n.client_addr.clone(), raft_addr: n.raft_addr.clone() })
            .collect();
        let mut reply = StatusReply {
            node_id: m.id,
            role: role(m.state).into(),
            term: m.current_term,
            leader_id: m.current_leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |id| id.index),
            snapshot_index: m.snapshot.map_or(0, |id| id.index),
            purged_index: m.purged.map_or(0, |id| id.index),
            members,
            version: crate::build_version(),
            position: self.router.position() as u32,
            alarms: self.node.alarms(),
            ..Default::default()
        };
        if request.into_inner().with_digest {
            let (index, digest) = self.node.digest().await?;
            reply.digest = Some(digest::show(digest.state));
            reply.digest_index = index;
            reply.keys = digest.keys;
        }
        Ok(Response::new(reply))
    }

    async fn ring(&self, _request: Request<RingRequest>) -> Result<Response<RingReply>, Status> {
        Ok(Response::new(self.router.map()))
    }
}
