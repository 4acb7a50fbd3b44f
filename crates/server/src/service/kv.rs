//! The public `KeyValue` service (proto/ringkv/v1/kv.proto).
//!
//! Each RPC only validates its request and builds a `Command`; routing along
//! the ring (`serve`, `route.rs`), committing, answering, forwarding to the
//! leader and error mapping are shared by all of them (`answer`).

use std::sync::Arc;

use bytes::Bytes;
use ringkv_api::pb::{self, key_value_server::KeyValue};
use tonic::{Request, Response, Status};

use super::forward::{Forwardable, Forwarder, Leg, Via};
use super::route::Router;
use super::status::InputError;
use crate::node::{Node, NodeError};
use crate::sm::command::{self, Command, Reply};
use crate::sm::session::{Request as LogRequest, Session};

/// A write request: it may carry an exactly-once session tag.
trait WriteMessage: Forwardable {
    fn session(&self) -> Option<Session>;
}

macro_rules! write_message {
    ($($req:ty),*) => {$(
        impl WriteMessage for $req {
            fn session(&self) -> Option<Session> {
                (self.client_id != 0).then_some(Session {
                    client_id: self.client_id,
                    sequence: self.sequence,
                    first_unacked: self.first_unacked,
                })
            }
        }
    )*};
}

write_message!(pb::SetRequest, pb::DelRequest, pb::DelVersionRequest, pb::TestAndSetRequest);

/// The proposing replica's clock, carried in the log so that session expiry
/// is the same on every replica.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

type Answer = Result<Response<pb::Reply>, Status>;

/// Serves `KeyValue` from one node.
#[derive(Clone)]
pub struct KvService {
    node: Node,
    forwarder: Arc<Forwarder>,
    router: Arc<Router>,
}

impl KvService {
    pub fn new(node: Node, router: Arc<Router>, max_message: usize) -> Self {
        Self { node, forwarder: Arc::new(Forwarder::new(max_message)), router }
    }

    /// Every RPC: forwarded along the ring when this group does not own the
    /// key, else served here by `here`; the answer is stamped with its hop
    /// count and this group's leader on the way out.
    async fn serve<T, Fut>(&self, req: Request<T>, here: impl FnOnce(Request<T>) -> Fut) -> Answer
    where
        T: Forwardable,
        Fut: std::future::Future<Output = Answer>,
    {
        let (started, entry) = (std::time::Instant::now(), Via::of(&req).hops == 0);
        let answer = match self.router.next_hop(&req) {
            Ok(None) => here(req).await,
            Ok(Some(next)) => self.router.forward(&self.forwarder, next, req).await,
            Err(s) => Err(s),
        };
        let answer = self.router.stamp(answer);
        crate::metrics::get().rpc(T::RPC, &answer, started, entry);
        answer
    }

    fn key(&self, key: &Bytes) -> Result<Vec<u8>, InputError> {
        ringkv_api::key::validate_key(key)?;
        Ok(key.to_vec())
    }

    fn data(&self, data: &Bytes) -> Result<Vec<u8>, InputError> {
        let limit = self.node.max_value_bytes();
        if data.len() > limit {
            return Err(InputError::DataTooLarge { len: data.len(), limit });
        }
        Ok(data.to_vec())
    }

    /// Answers from the local result, or forwards `msg` to the leader when
    /// this replica is not it and knows who is (once: see `forward.rs`).
    async fn answer<T: Forwardable>(&self, via: Via, msg: T, local: Result<Reply, NodeError>) -> Answer {
        match local {
            Ok(reply) => Ok(Response::new(reply.into())),
            Err(NodeError::NotLeader { leader: Some(leader) }) if !via.forwarded => {
                self.forwarder.forward(&leader, "the leader", msg, via, Leg::ToLeader).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A write: commit `cmd` through Raft here, or forward it.
    ///
    /// The choice is made before proposing: a write that this replica
    /// proposed and then lost leadership over may still be committed by the
    /// next leader, so forwarding it then could apply it twice. Such a
    /// write is answered UNAVAILABLE (its effect is unknown) instead.
    async fn write<T: WriteMessage>(
        &self,
        req: Request<T>,
        cmd: impl FnOnce(&T) -> Result<Command, InputError>,
    ) -> Answer {
        let via = Via::of(&req);
        let msg = req.into_inner();
        let cmd = LogRequest { cmd: cmd(&msg)?, session: msg.session(), time_ms: now_ms() };
        if let Err(not_leader) = self.node.leads() {
            return self.answer(via, msg, Err(not_leader)).await;
        }
        // Proposed: whatever the answer, it is not forwarded.
        let reply = self.node.write(cmd).await?;
        Ok(Response::new(reply.into()))
    }

    /// A read, served by this group.
    async fn get_here(&self, request: Request<pb::GetRequest>) -> Answer {
        let via = Via::of(&request);
        let msg = request.into_inner();
        let key = self.key(&msg.key)?;
        if msg.serializable {
            return Ok(Response::new(self.node.read_local(&key)?.into()));
        }
        let local = self.node.read(&key).await;
        self.answer(via, msg, local).await
    }
}

#[tonic::async_trait]
impl KeyValue for KvService {
    async fn set(&self, request: Request<pb::SetRequest>) -> Answer {
        self.serve(request, |req| {
            self.write(req, |r| {
                Ok(Command::Set { key: self.key(&r.key)?, timestamp: r.timestamp, data: self.data(&r.data)? })
            })
        })
        .await
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Answer {
        self.serve(request, |req| self.get_here(req)).await
    }

    async fn del(&self, request: Request<pb::DelRequest>) -> Answer {
        self.serve(request, |req| self.write(req, |r| Ok(Command::Del { key: self.key(&r.key)? }))).await
    }

    async fn del_version(&self, request: Request<pb::DelVersionRequest>) -> Answer {
        self.serve(request, |req| {
            self.write(req, |r| Ok(Command::DelVersion { key: self.key(&r.key)?, version: r.version }))
        })
        .await
    }

    async fn test_and_set(&self, request: Request<pb::TestAndSetRequest>) -> Answer {
        self.serve(request, |req| {
            self.write(req, |r| {
                Ok(Command::TestAndSet {
                    key: self.key(&r.key)?,
                    timestamp: r.timestamp,
                    data: self.data(&r.data)?,
                    version: r.version,
                })
            })
        })
        .await
    }
}

impl From<command::Status> for pb::Status {
    fn from(s: command::Status) -> Self {
        match s {
            command::Status::Success => pb::Status::Success,
            command::Status::Error => pb::Status::Error,
            command::Status::ErrorNe => pb::Status::ErrorNe,
            command::Status::ErrorWv => pb::Status::ErrorWv,
        }
    }
}

impl From<command::Reply> for pb::Reply {
    fn from(r: command::Reply) -> Self {
        pb::Reply {
            status: pb::Status::from(r.status) as i32,
            value: r.value.map(|v| pb::Value { version: v.version, timestamp: v.timestamp, data: Bytes::from(v.data) }),
        }
    }
}
