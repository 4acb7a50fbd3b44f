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

/// A request that can be sent, unchanged, to the same RPC on another node.
pub trait Forwardable: Send + 'static + Sized {
    /// What the RPC answers.
    type Reply: Send + 'static;
    /// The RPC's name, as metrics label it.
    const RPC: &'static str;
    /// Calls the RPC over `channel`, accepting messages up to `max_message`.
    fn send(
        channel: Channel,
        max_message: usize,
        req: Request<Self>,
    ) -> BoxFuture<'static, Result<Response<Self::Reply>, Status>>;
}

/// A request routed along the ring by its key.
pub trait Routed: Forwardable<Reply: crate::metrics::Outcome> {
    /// What the ring places: an integer key's wire bytes (checked here), or
    /// another key space's own bytes.
    fn route_key(&self) -> Result<std::borrow::Cow<'_, [u8]>, super::status::InputError>;
}

/// A `KeyValue` stub over `channel`.
pub fn kv_client(channel: Channel, max_message: usize) -> KeyValueClient<Channel> {
    KeyValueClient::new(channel).max_decoding_message_size(max_message).max_encoding_message_size(max_message)
}

macro_rules! forwardable {
    ($($req:ty => $method:ident: $reply:ty),* $(,)?) => {$(
        impl Forwardable for $req {
            type Reply = $reply;
            const RPC: &'static str = stringify!($method);

            fn send(
                channel: Channel,
                max_message: usize,
                req: Request<Self>,
            ) -> BoxFuture<'static, Result<Response<$reply>, Status>> {
                Box::pin(async move { kv_client(channel, max_message).$method(req).await })
            }
        }
    )*};
}

/// `KeyValue` requests routed by their integer key.
macro_rules! routed {
    ($($req:ty),* $(,)?) => {$(
        impl Routed for $req {
            fn route_key(&self) -> Result<std::borrow::Cow<'_, [u8]>, super::status::InputError> {
                ringkv_api::key::validate_key(&self.key)?;
                Ok(std::borrow::Cow::Borrowed(&self.key[..]))
            }
        }
    )*};
}

forwardable!(
    pb::SetRequest => set: pb::Reply,
    pb::GetRequest => get: pb::Reply,
    pb::DelRequest => del: pb::Reply,
    pb::DelVersionRequest => del_version: pb::Reply,
    pb::TestAndSetRequest => test_and_set: pb::Reply,
    pb::PutRequest => put: pb::Reply,
    pb::GetAtRequest => get_at: pb::Reply,
    pb::HistoryRequest => history: pb::HistoryReply,
    pb::TrimRequest => trim: pb::Reply,
    pb::RangePartRequest => range_part: pb::RangePartReply,
);

routed!(
    pb::SetRequest,
    pb::GetRequest,
    pb::DelRequest,
    pb::DelVersionRequest,
    pb::TestAndSetRequest,
    pb::PutRequest,
    pb::GetAtRequest,
    pb::HistoryRequest,
    pb::TrimRequest,
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
    channels: Mutex<HashMap<String, Channel>>,
}

impl Forwarder {
    pub fn new(max_message: usize) -> Self {
        Self { max_message, channels: Mutex::default() }
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
    ) -> Result<Response<T::Reply>, Status> {
        let channel = self.channel(addr)?;
        crate::metrics::get().forwarded(leg);
        let mut req = Request::new(msg);
        req.set_timeout(FORWARD_TIMEOUT);
        set_hops(req.metadata_mut(), via.hops + 1);
        if leg == Leg::ToLeader {
            req.metadata_mut().insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
        }
        match T::send(channel, self.max_message, req).await {
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

    /// The connection to `addr` (shared by every service's stubs).
    pub fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).map_err(|e| status::bad_address(addr, e))?;
        let channel = endpoint.connect_timeout(Duration::from_millis(500)).tcp_nodelay(true).connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }
}
