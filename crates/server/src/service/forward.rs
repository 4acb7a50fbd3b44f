//! Forwarding a client request to another node, unchanged, and relaying
//! its answer: from a follower to its group's leader, or (`route.rs`) from
//! a position that does not own the key to the next position on the ring.
//!
//! Any replica accepts any request. One that is not the leader passes the
//! request unchanged to the leader's client address and relays the answer,
//! so a client never has to know who leads. A request forwarded to a leader
//! is marked (`ringkv-forwarded`) and never forwarded to a leader again: if
//! it lands on a replica that is not the leader either (leadership moved),
//! the answer is a retryable UNAVAILABLE rather than a loop. A request
//! forwarded along the ring is not marked so: inside the owner group it may
//! still go from a follower to the leader, once.
//!
//! Every forward adds one to the hop count: the request carries the hops
//! so far in its `ringkv-hops` metadata (the ring's loop guard reads it),
//! and every reply carries the hops taken from the node that sent it on, in
//! its `ringkv-hops` header; the node the client called answers with the
//! total.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use ringkv_api::pb::{self, key_value_client::KeyValueClient};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::status;

/// The request header that marks a request forwarded to a leader.
pub const FORWARDED: &str = "ringkv-forwarded";

pub use ringkv_api::headers::HOPS;

/// How long a forwarded call may take before the follower gives up.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// A request type that can be sent to another replica's `KeyValue`.
pub trait Forwardable: Send + 'static + Sized {
    /// The RPC's name (its client method), as metrics label it.
    const RPC: &'static str;
    fn send(
        client: KeyValueClient<Channel>,
        req: Request<Self>,
    ) -> BoxFuture<'static, Result<Response<pb::Reply>, Status>>;
    /// The key's wire bytes: what routing places on the ring.
    fn key(&self) -> &bytes::Bytes;
}

macro_rules! forwardable {
    ($($req:ty => $method:ident),* $(,)?) => {$(
        impl Forwardable for $req {
            const RPC: &'static str = stringify!($method);

            fn key(&self) -> &bytes::Bytes {
                &self.key
            }

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

/// How a request reached this node.
#[derive(Debug, Clone, Copy, Default)]
pub struct Via {
    /// Forwarded here by a follower of this group (never again to a leader).
    pub forwarded: bool,
    /// Forwards so far.
    pub hops: u32,
}

impl Via {
    pub fn of<T>(req: &Request<T>) -> Via {
        Via { forwarded: Forwarder::was_forwarded(req), hops: hops_in(req.metadata()) }
    }
}

/// What a forward is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    /// From a follower to its group's leader.
    ToLeader,
    /// From one ring position to the next hop.
    ToPosition,
}

/// The hop count in request or reply metadata (0 when absent or garbled).
pub fn hops_in(md: &tonic::metadata::MetadataMap) -> u32 {
    md.get(HOPS).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

pub fn set_hops(md: &mut tonic::metadata::MetadataMap, hops: u32) {
    md.insert(HOPS, tonic::metadata::MetadataValue::from(hops));
}

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

    /// Sends `msg` to the node at `addr` (`to` says what it is, for errors)
    /// and returns its answer, with one more hop counted. `via` is how the
    /// request reached this node; `leg` what this forward is.
    pub async fn forward<T: Forwardable>(
        &self,
        addr: &str,
        to: &str,
        msg: T,
        via: Via,
        leg: Leg,
    ) -> Result<Response<pb::Reply>, Status> {
        let client = self.client(addr)?;
        crate::metrics::get().forwarded(leg);
        let mut req = Request::new(msg);
        req.set_timeout(FORWARD_TIMEOUT);
        set_hops(req.metadata_mut(), via.hops + 1);
        if leg == Leg::ToLeader {
            req.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
        }
        match T::send(client, req).await {
            Ok(mut r) => {
                let hops = hops_in(r.metadata()) + 1;
                set_hops(r.metadata_mut(), hops);
                Ok(r)
            }
            Err(s) => {
                let hops = hops_in(s.metadata()) + 1;
                let mut s = status::relayed(s, to, addr);
                set_hops(s.metadata_mut(), hops);
                Err(s)
            }
        }
    }

    fn client(&self, addr: &str) -> Result<KeyValueClient<Channel>, Status> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| status::bad_address(addr, e))?;
        let channel = endpoint.connect_timeout(Duration::from_millis(500)).tcp_nodelay(true).connect_lazy();
        let client = KeyValueClient::new(channel)
            .max_decoding_message_size(self.max_message)
            .max_encoding_message_size(self.max_message);
        clients.insert(addr.to_owned(), client.clone());
        Ok(client)
    }
}
