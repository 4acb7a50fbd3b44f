//! Forwarding a client request from a follower to the leader.
//!
//! Any replica accepts any request. One that is not the leader passes the
//! request unchanged to the leader's client address and relays the answer,
//! so a client never has to know who leads. A forwarded request is marked
//! (`ringkv-forwarded`) and never forwarded again: if it lands on a replica
//! that is not the leader either (leadership moved), the answer is a
//! retryable UNAVAILABLE rather than a loop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use ringkv_api::pb::{self, key_value_client::KeyValueClient};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

/// The request header that marks a forwarded request.
pub const FORWARDED: &str = "ringkv-forwarded";

/// How long a forwarded call may take before the follower gives up.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A request type that can be sent to another replica's `KeyValue`.
pub trait Forwardable: Send + 'static + Sized {
    fn send(client: KeyValueClient<Channel>, req: Request<Self>) -> BoxFuture<'static, Result<Response<pb::Reply>, Status>>;
}

macro_rules! forwardable {
    ($($req:ty => $method:ident),* $(,)?) => {$(
        impl Forwardable for $req {
            fn send(
                mut client: KeyValueClient<Channel>,
                req: Request<Self>,
            ) -> BoxFuture<'static, Result<Response<pb::Reply>, Status>> {
                Box::pin(async move { client.$method(req).await })
            }
        }
    )*};
}

forwardable!(
    pb::SetRequest => set,
    pb::GetRequest => get,
    pb::DelRequest => del,
    pb::DelVersionRequest => del_version,
    pb::TestAndSetRequest => test_and_set,
);

/// Connections to the other replicas, made on first use and kept.
pub struct Forwarder {
    max_message: usize,
    clients: Mutex<HashMap<String, KeyValueClient<Channel>>>,
}

impl Forwarder {
    pub fn new(max_message: usize) -> Self {
        Self { max_message, clients: Mutex::default() }
    }

    /// Whether `req` was already forwarded once.
    pub fn was_forwarded<T>(req: &Request<T>) -> bool {
        req.metadata().contains_key(FORWARDED)
    }

    /// Sends `msg` to the replica at `addr` and returns its answer.
    pub async fn forward<T: Forwardable>(&self, addr: &str, msg: T) -> Result<Response<pb::Reply>, Status> {
        let client = self.client(addr)?;
        let mut req = Request::new(msg);
        req.set_timeout(FORWARD_TIMEOUT);
        req.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
        T::send(client, req).await.map_err(|s| match s.code() {
            // The leader could not be reached: the same as having none.
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                Status::unavailable(format!("cannot reach the leader at {addr}: {}", s.message()))
            }
            _ => s,
        })
    }

    fn client(&self, addr: &str) -> Result<KeyValueClient<Channel>, Status> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::internal(format!("bad leader address {addr:?}: {e}")))?;
        let channel = endpoint.connect_timeout(Duration::from_millis(500)).tcp_nodelay(true).connect_lazy();
        let client = KeyValueClient::new(channel)
            .max_decoding_message_size(self.max_message)
            .max_encoding_message_size(self.max_message);
        clients.insert(addr.to_owned(), client.clone());
        Ok(client)
    }
}
