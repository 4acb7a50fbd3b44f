//! The server side of the replication transport (`raft.proto`): decodes
//! openraft's requests, hands them to the local Raft, encodes its answer.

use ringkv_api::pb::{raft_server, RaftPayload};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::raft::types::Raft;

/// Serves `Raft` RPCs for one replica.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
}

impl RaftService {
    pub fn new(raft: Raft) -> Self {
        Self { raft }
    }
}

fn decode<T: DeserializeOwned>(req: Request<RaftPayload>) -> Result<T, Status> {
    postcard::from_bytes(&req.into_inner().data)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode<T: Serialize>(answer: &T) -> Result<Response<RaftPayload>, Status> {
    let data = postcard::to_allocvec(answer).map_err(|e| Status::internal(format!("cannot encode: {e}")))?;
    Ok(Response::new(RaftPayload { data: data.into() }))
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        encode(&self.raft.append_entries(decode(req)?).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        encode(&self.raft.vote(decode(req)?).await)
    }

    async fn install_snapshot(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        encode(&self.raft.install_snapshot(decode(req)?).await)
    }
}
