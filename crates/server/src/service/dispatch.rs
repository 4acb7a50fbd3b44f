//! What every key's RPC does, in whichever service it is (`kv.rs`,
//! `compat.rs`): routed along the ring to the group that owns the key
//! (`route.rs`), then served there — a write committed through Raft, a
//! read from the store once linearizable — or forwarded to the group's
//! leader (`forward.rs`). The services only validate requests, build
//! commands and shape answers.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::forward::{Forwardable, Forwarder, Leg, Routed, Via};
use super::route::Router;
use super::status::InputError;
use crate::metrics;
use crate::node::{Node, NodeError};
use crate::sm::command::{self, Command};
use crate::sm::session::{Request as LogRequest, Session};
use crate::sm::store::{KvStore, StoreError};

pub type Answer<R> = Result<Response<R>, Status>;

/// The proposing replica's clock, carried in the log so that session expiry
/// (and the compatibility API's versions) are the same on every replica.
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A write as a service built it: the command and its session tag.
pub struct Write {
    pub cmd: Command,
    pub session: Option<Session>,
}

/// Serves routed requests from one node.
#[derive(Clone)]
pub struct Dispatch {
    pub node: Node,
    pub forwarder: Arc<Forwarder>,
    pub router: Arc<Router>,
}

impl Dispatch {
    pub fn new(node: Node, router: Arc<Router>, max_message: usize) -> Self {
        Self { node, forwarder: Arc::new(Forwarder::new(max_message)), router }
    }

    /// Forwarded along the ring when this group does not own the key, else
    /// served here by `here`; the answer is stamped with its hop count and
    /// this group's leader on the way out.
    pub async fn serve<T, Fut>(&self, req: Request<T>, here: impl FnOnce(Request<T>) -> Fut) -> Answer<T::Reply>
    where
        T: Routed,
        Fut: std::future::Future<Output = Answer<T::Reply>>,
    {
        let (started, entry) = (std::time::Instant::now(), Via::of(&req).hops == 0);
        let answer = match self.router.next_hop(&req) {
            Ok(None) => here(req).await,
            Ok(Some(next)) => self.router.forward(&self.forwarder, next, req).await,
            Err(s) => Err(s),
        };
        let answer = self.router.stamp(answer);
        metrics::get().rpc(T::RPC, &answer, started, entry);
        answer
    }

    /// Checks a value's size against `max_value_bytes`.
    pub fn data(&self, data: &[u8]) -> Result<Vec<u8>, InputError> {
        let limit = self.node.max_value_bytes();
        if data.len() > limit {
            return Err(InputError::DataTooLarge { len: data.len(), limit });
        }
        Ok(data.to_vec())
    }

    /// Answers from the local result, or forwards `msg` to the leader when
    /// this replica is not it and knows who is (once: see `forward.rs`).
    pub async fn answer<T: Forwardable>(
        &self,
        via: Via,
        msg: T,
        local: Result<T::Reply, NodeError>,
    ) -> Answer<T::Reply> {
        match local {
            Ok(reply) => Ok(Response::new(reply)),
            Err(NodeError::NotLeader { leader: Some(leader) }) if !via.forwarded => {
                self.forwarder.forward(&leader, "the leader", msg, via, Leg::ToLeader).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A write: commit what `build` makes of the request through Raft here,
    /// or forward the request; `reply` shapes the state machine's answer.
    ///
    /// The choice is made before proposing: a write that this replica
    /// proposed and then lost leadership over may still be committed by the
    /// next leader, so forwarding it then could apply it twice. Such a
    /// write is answered UNAVAILABLE (its effect is unknown) instead.
    pub async fn write<T: Forwardable>(
        &self,
        req: Request<T>,
        build: impl FnOnce(&T) -> Result<Write, InputError>,
        reply: impl FnOnce(command::Reply) -> T::Reply,
    ) -> Answer<T::Reply> {
        let via = Via::of(&req);
        let msg = req.into_inner();
        let Write { cmd, session } = build(&msg)?;
        let cmd = LogRequest { cmd, session, time_ms: now_ms(), max_versions: self.node.max_versions() };
        if let Err(not_leader) = self.node.leads() {
            return self.answer(via, msg, Err(not_leader)).await;
        }
        // Proposed: whatever the answer, it is not forwarded.
        let answer = self.node.write(cmd).await?;
        Ok(Response::new(reply(answer)))
    }

    /// A read, served by this group: `read` on the local store, once the
    /// read is linearizable unless `serializable`.
    pub async fn read<T: Forwardable>(
        &self,
        request: Request<T>,
        serializable: bool,
        read: impl FnOnce(&T, &KvStore) -> Result<T::Reply, StoreError>,
    ) -> Answer<T::Reply> {
        let via = Via::of(&request);
        let msg = request.into_inner();
        let run = |store: &KvStore| read(&msg, store);
        if serializable {
            return Ok(Response::new(self.node.read_local(run)?));
        }
        let local = self.node.read(run).await;
        self.answer(via, msg, local).await
    }
}
