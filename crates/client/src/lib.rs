//! A typed async client for ringkv.
//!
//! Keys are big integers (`num_bigint::BigInt`), values are `Value`s, and
//! every call answers a `Reply` whose `Outcome` is the operation's result
//! (docs/design.md §2) or a `ClientError` when there was no answer. The channel
//! connects lazily and reconnects by itself when the server comes back, so
//! one `Client` can outlive server restarts.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ringkv_client::ClientError> {
//! use ringkv_client::{Client, ClientOptions, Outcome};
//! let client = Client::new("127.0.0.1:7070", ClientOptions::default())?;
//! let key = num_bigint::BigInt::from(42);
//! client.set(&key, 0, "hello").await?;
//! let r = client.get(&key).await?;
//! assert_eq!(r.outcome, Outcome::Success);
//! # Ok(()) }
//! ```

mod admin;
mod error;
mod ring;
mod session;
mod types;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use num_bigint::BigInt;
use ringkv_api::encode_key;
use ringkv_api::pb::{self, key_value_client::KeyValueClient};
use tonic::transport::{Channel, Endpoint};

pub use admin::{Admin, Member, NodeStatus, RingMap, RingPosition, Role, StateDigest};
pub use error::ClientError;
pub use ring::RouteStats;
use ring::{Keyed, Routing, Stats};
use session::{Tagged, WriteSession};
pub use types::{History, Outcome, Reply, Value};

/// Largest message the client sends or accepts: the server's 4 MiB value
/// limit plus headroom (a server configured higher needs a matching client).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Pause before the second retry of a call (the first is immediate: a
/// failed attempt usually means a replica or leader gone, and the next one
/// goes elsewhere); doubles up to `MAX_BACKOFF`. Short, because the usual
/// reason to retry is an election, and a new leader is known some 10 ms
/// after a vote: the pause after it is time a writer waits for nothing.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(25);
/// The pause between `connect`'s probes.
const CONNECT_PROBE: Duration = Duration::from_millis(100);
/// Shortest time given to one attempt of a call.
const ATTEMPT_MIN: Duration = Duration::from_millis(500);

/// How the client talks to the server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Deadline of one call, retries included.
    pub timeout: Duration,
    /// Deadline of one connection attempt.
    pub connect_timeout: Duration,
    /// Ring-aware: fetch the ring map from the given servers and send each
    /// request straight to the group that owns its key (see `ring.rs`).
    /// Off: send every request to the given servers and let them route it.
    pub ring: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(5), connect_timeout: Duration::from_secs(3), ring: false }
    }
}

/// A connection to a ringkv server. Cheap to clone; clones share it, and
/// share one exactly-once session: every write is numbered, and a write
/// whose answer was lost is resent with its number until the deadline, so
/// the server applies it once.
#[derive(Clone)]
pub struct Client {
    stub: KeyValueClient<Channel>,
    opts: ClientOptions,
    session: Arc<WriteSession>,
    routing: Option<Arc<Routing>>,
    stats: Arc<Stats>,
}

impl Client {
    /// A client for `addr` ("host:port" or "http://host:port"), or for
    /// several replicas of a group ("h:p1,h:p2,h:p3": requests are spread
    /// over those that answer, so one replica down is no outage). Connects
    /// on first use, and again after any failure.
    pub fn new(addr: &str, opts: ClientOptions) -> Result<Client, ClientError> {
        let endpoints: Vec<Endpoint> = addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| endpoint(a, &opts))
            .collect::<Result<_, _>>()?;
        let channel = match &endpoints[..] {
            [] => return Err(ClientError::Config("no server address given".into())),
            [one] => one.connect_lazy(),
            _ => Channel::balance_list(endpoints.into_iter()),
        };
        let stub = kv_stub(channel.clone());
        let routing = opts.ring.then(|| {
            let o = opts.clone();
            let make = move |addr: &str| Ok(kv_stub(endpoint(addr, &o)?.connect_lazy()));
            Arc::new(Routing::new(stub.clone(), channel, Box::new(make)))
        });
        Ok(Client { stub, opts, session: Arc::new(WriteSession::new()), routing, stats: Arc::default() })
    }

    /// Forwarding hops of the answers this client (and its clones) got:
    /// read from each reply's `ringkv-hops` header.
    pub fn route_stats(&self) -> RouteStats {
        self.stats.get()
    }

    /// Like `new`, then waits up to `wait` until the server answers.
    pub async fn connect(addr: &str, opts: ClientOptions, wait: Duration) -> Result<Client, ClientError> {
        let client = Client::new(addr, opts)?;
        let deadline = Instant::now() + wait;
        loop {
            match client.get(&BigInt::from(0)).await {
                Ok(_) => return Ok(client),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(CONNECT_PROBE).await,
            }
        }
    }

    /// Inserts `(1, timestamp, data)` if `key` is absent.
    pub async fn set(&self, key: &BigInt, timestamp: i64, data: impl Into<Bytes>) -> Result<Reply, ClientError> {
        let req = pb::SetRequest { key: key_bytes(key), timestamp, data: data.into(), ..Default::default() };
        self.once(req, |mut s, r| async move { s.set(r).await }).await
    }

    /// Reads `key` (linearizable). Retried on UNAVAILABLE within the
    /// timeout: a read has no effect to duplicate.
    pub async fn get(&self, key: &BigInt) -> Result<Reply, ClientError> {
        let req = pb::GetRequest { key: key_bytes(key), serializable: false };
        self.retrying(req, |mut s, r| async move { s.get(r).await }).await
    }

    /// Reads `key` from whichever replica answers, without confirming with
    /// the leader: faster, but possibly stale (may miss recent writes).
    pub async fn get_serializable(&self, key: &BigInt) -> Result<Reply, ClientError> {
        let req = pb::GetRequest { key: key_bytes(key), serializable: true };
        self.retrying(req, |mut s, r| async move { s.get(r).await }).await
    }

    /// Removes `key`.
    pub async fn del(&self, key: &BigInt) -> Result<Reply, ClientError> {
        let req = pb::DelRequest { key: key_bytes(key), ..Default::default() };
        self.once(req, |mut s, r| async move { s.del(r).await }).await
    }

    /// Removes `key` if its version is `version`.
    pub async fn del_version(&self, key: &BigInt, version: i64) -> Result<Reply, ClientError> {
        let req = pb::DelVersionRequest { key: key_bytes(key), version, ..Default::default() };
        self.once(req, |mut s, r| async move { s.del_version(r).await }).await
    }

    /// Replaces `key` with `(version + 1, timestamp, data)` if its version is
    /// `version`.
    pub async fn test_and_set(
        &self,
        key: &BigInt,
        timestamp: i64,
        data: impl Into<Bytes>,
        version: i64,
    ) -> Result<Reply, ClientError> {
        let req =
            pb::TestAndSetRequest { key: key_bytes(key), timestamp, data: data.into(), version, ..Default::default() };
        self.once(req, |mut s, r| async move { s.test_and_set(r).await }).await
    }

    /// Inserts `(1, timestamp, data)` if `key` is absent, else replaces it
    /// with `(version + 1, timestamp, data)`; answers the value replaced.
    pub async fn put(&self, key: &BigInt, timestamp: i64, data: impl Into<Bytes>) -> Result<Reply, ClientError> {
        let req = pb::PutRequest { key: key_bytes(key), timestamp, data: data.into(), ..Default::default() };
        self.once(req, |mut s, r| async move { s.put(r).await }).await
    }

    /// Reads version `version` of `key`, if it is still kept (linearizable).
    pub async fn get_at(&self, key: &BigInt, version: i64) -> Result<Reply, ClientError> {
        let req = pb::GetAtRequest { key: key_bytes(key), version, serializable: false };
        self.retrying(req, |mut s, r| async move { s.get_at(r).await }).await
    }

    /// The kept versions of `key`, newest first, at most `limit` (0: all)
    /// (linearizable).
    pub async fn history(&self, key: &BigInt, limit: u32) -> Result<History, ClientError> {
        let req = pb::HistoryRequest { key: key_bytes(key), limit, serializable: false };
        self.retrying(req, |mut s, r| async move { s.history(r).await }).await
    }

    /// Drops all but the newest `keep` versions of `key` (`keep` ≥ 1).
    pub async fn trim(&self, key: &BigInt, keep: u32) -> Result<Reply, ClientError> {
        let req = pb::TrimRequest { key: key_bytes(key), keep, ..Default::default() };
        self.once(req, |mut s, r| async move { s.trim(r).await }).await
    }

    /// The keys in `[from, to]`, in numeric order, each with its newest
    /// value (with `at_timestamp`: its newest kept version whose timestamp
    /// is at most that), at most `limit` (0: all). The server called
    /// gathers them from every group; one call, not retried (a range is
    /// read page by page: ask again from the last key + 1).
    pub async fn range(
        &self,
        from: &BigInt,
        to: &BigInt,
        limit: u32,
        at_timestamp: Option<i64>,
    ) -> Result<Vec<(BigInt, Value)>, ClientError> {
        let req =
            pb::RangeRequest { from: key_bytes(from), to: key_bytes(to), limit, at_timestamp, serializable: false };
        let stream = self.stub.clone().range(req).await.map_err(ClientError::from)?.into_inner();
        collect_pairs(stream).await
    }

    /// Removes every key in `[from, to]` (each atomically, the range as a
    /// whole not) and answers the removed keys with their values.
    pub async fn del_range(&self, from: &BigInt, to: &BigInt) -> Result<Vec<(BigInt, Value)>, ClientError> {
        let req = pb::DelRangeRequest { from: key_bytes(from), to: key_bytes(to) };
        let stream = self.stub.clone().del_range(req).await.map_err(ClientError::from)?.into_inner();
        collect_pairs(stream).await
    }

    /// Puts many keys over one stream (`PutMany`): one reply per item, in
    /// order; each key atomic, the batch not. Not retried.
    pub async fn put_many(&self, items: Vec<(BigInt, i64, Bytes)>) -> Result<Vec<Reply>, ClientError> {
        let reqs: Vec<pb::PutRequest> = items
            .into_iter()
            .map(|(k, timestamp, data)| pb::PutRequest { key: key_bytes(&k), timestamp, data, ..Default::default() })
            .collect();
        let stream = self.stub.clone().put_many(futures::stream::iter(reqs)).await.map_err(ClientError::from)?;
        collect_replies(stream.into_inner()).await
    }

    /// Reads many keys over one stream (`GetMany`), linearizable each.
    pub async fn get_many(&self, keys: &[BigInt]) -> Result<Vec<Reply>, ClientError> {
        let reqs: Vec<pb::GetRequest> =
            keys.iter().map(|k| pb::GetRequest { key: key_bytes(k), serializable: false }).collect();
        let stream = self.stub.clone().get_many(futures::stream::iter(reqs)).await.map_err(ClientError::from)?;
        collect_replies(stream.into_inner()).await
    }

    /// Removes many keys over one stream (`DelMany`).
    pub async fn del_many(&self, keys: &[BigInt]) -> Result<Vec<Reply>, ClientError> {
        let reqs: Vec<pb::DelRequest> =
            keys.iter().map(|k| pb::DelRequest { key: key_bytes(k), ..Default::default() }).collect();
        let stream = self.stub.clone().del_many(futures::stream::iter(reqs)).await.map_err(ClientError::from)?;
        collect_replies(stream.into_inner()).await
    }

    /// The generated stub, for tests that must send what the typed API
    /// will not build (the server's input checks, session fields by hand).
    /// Hidden from the documentation and not part of the supported API: a
    /// request sent through it skips this client's session numbering, its
    /// retries and its ring routing.
    #[doc(hidden)]
    pub fn raw(&self) -> KeyValueClient<Channel> {
        self.stub.clone()
    }

    /// A write: numbered in this client's session and resent with the same
    /// number while the server is unavailable or silent, until the
    /// deadline. The server applies it at most once.
    async fn once<T, F, Fut>(&self, mut req: T, call: F) -> Result<Reply, ClientError>
    where
        T: Tagged + Keyed + Clone,
        F: Fn(KeyValueClient<Channel>, tonic::Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<pb::Reply>, tonic::Status>>,
    {
        let ticket = self.session.begin();
        req.tag(ticket.tag());
        self.retrying(req, call).await
    }

    /// Attempts until an answer, a non-retryable error, or the timeout. An
    /// attempt gets a share of the time left, so that one lost to a dead
    /// connection leaves room for another. When time runs out on an attempt
    /// that hung after others were refused (a channel waiting to reconnect
    /// to a server that refuses), the refusal is what the caller is told:
    /// UNAVAILABLE says more than "no answer in time".
    async fn retrying<T, F, Fut, R, Out>(&self, req: T, call: F) -> Result<Out, ClientError>
    where
        T: Keyed + Clone,
        F: Fn(KeyValueClient<Channel>, tonic::Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
        Out: TryFrom<R, Error = ClientError>,
    {
        let deadline = Instant::now() + self.opts.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0;
        let mut refused = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = left.min(self.opts.timeout.div_f64(3.0).max(ATTEMPT_MIN));
            let target = match &self.routing {
                Some(r) => Some(r.pick(req.key(), req.any_replica(), tries, attempt).await),
                None => None,
            };
            let stub = target.as_ref().map_or_else(|| self.stub.clone(), |t| t.stub.clone());
            let mut request = tonic::Request::new(req.clone());
            request.set_timeout(attempt);
            let err = match tokio::time::timeout(attempt, call(stub, request)).await {
                Err(_) => ClientError::Timeout,
                Ok(Ok(r)) => {
                    self.stats.record(r.metadata());
                    if let (Some(routing), Some(t)) = (&self.routing, &target) {
                        routing.answered(t, r.metadata());
                    }
                    return Out::try_from(r.into_inner());
                }
                Ok(Err(status)) => ClientError::from(status),
            };
            let retryable = err.is_unavailable() || matches!(err, ClientError::Timeout);
            if let (Some(routing), Some(t), true) = (&self.routing, &target, retryable) {
                routing.failed(t);
            }
            if !retryable || Instant::now() + backoff >= deadline {
                return Err(match (err, refused) {
                    (ClientError::Timeout, Some(unavailable)) => unavailable,
                    (err, _) => err,
                });
            }
            if err.is_unavailable() {
                refused = Some(err);
            }
            if tries > 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            tries += 1;
        }
    }
}

async fn collect_pairs(mut stream: tonic::Streaming<pb::KeyValuePair>) -> Result<Vec<(BigInt, Value)>, ClientError> {
    let mut out = Vec::new();
    while let Some(pair) = stream.message().await.map_err(ClientError::from)? {
        let key = ringkv_api::decode_key(&pair.key)
            .map_err(|e| ClientError::Protocol(format!("server sent a bad key in a range: {e}")))?;
        let value = pair.value.ok_or_else(|| ClientError::Protocol("a range pair without a value".into()))?;
        out.push((key, Value::from(value)));
    }
    Ok(out)
}

async fn collect_replies(mut stream: tonic::Streaming<pb::Reply>) -> Result<Vec<Reply>, ClientError> {
    let mut out = Vec::new();
    while let Some(r) = stream.message().await.map_err(ClientError::from)? {
        out.push(Reply::try_from(r)?);
    }
    Ok(out)
}

fn kv_stub(channel: Channel) -> KeyValueClient<Channel> {
    KeyValueClient::new(channel).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE)
}

pub(crate) fn endpoint(addr: &str, opts: &ClientOptions) -> Result<Endpoint, ClientError> {
    let uri = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
    Ok(Endpoint::from_shared(uri)
        .map_err(|e| ClientError::Config(format!("bad server address {addr:?}: {e}")))?
        .connect_timeout(opts.connect_timeout)
        .tcp_nodelay(true))
}

fn key_bytes(key: &BigInt) -> Bytes {
    Bytes::from(encode_key(key))
}
