//! The `project.KeyValueStore` compatibility service
//! (proto/project/kvs.proto, docs/design.md §3.8): the classic
//! multi-version key-value store assignment's API, served as-is on the
//! client port, so that programs written for it run against ringkv.
//!
//! Its keys are strings, in a key space of their own (`sm/key.rs`: text
//! keys never meet integer keys), placed on the ring by their store key's
//! bytes and routed like any other key (`dispatch.rs`). A version is the
//! millisecond time of the put that made it (`Command::ClockPut`), so a
//! read "at version v" is a read of the newest version made at or before
//! v. Absent values are `""` with version 0, never an error. Its writes
//! carry no session (the API has none): a put retried after an unanswered
//! attempt may make two versions.

use std::borrow::Cow;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt};
use ringkv_api::pb;
use ringkv_api::project::{
    self, key_value_store_client::KeyValueStoreClient, key_value_store_server::KeyValueStore, KeyRange, KeyRequest,
    KeyValueRequest, KeyValueVersionReply, PutReply,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use super::batch::{self, Keyed};
use super::dispatch::{Answer, Dispatch, Write};
use super::forward::{Forwardable, Routed};
use super::range::{self, Span};
use super::status::InputError;
use crate::sm::command::{Command, Value};
use crate::sm::key as store_key;

impl Keyed for KeyRequest {
    fn batch_key(&self) -> &[u8] {
        self.key.as_bytes()
    }
}

impl Keyed for KeyValueRequest {
    fn batch_key(&self) -> &[u8] {
        self.key.as_bytes()
    }
}

/// The store key of a text key, its length checked.
fn text_key(key: &str) -> Result<Vec<u8>, InputError> {
    if key.len() > ringkv_api::MAX_KEY_BYTES {
        return Err(InputError::TextKeyTooLong { len: key.len(), limit: ringkv_api::MAX_KEY_BYTES });
    }
    Ok(store_key::text(key))
}

fn client(channel: Channel, max_message: usize) -> KeyValueStoreClient<Channel> {
    KeyValueStoreClient::new(channel).max_decoding_message_size(max_message).max_encoding_message_size(max_message)
}

/// One RPC of the service as a routed request: `KeyRequest` serves three
/// RPCs, so each gets a type of its own that knows where to forward it.
macro_rules! routed_op {
    ($($op:ident($msg:ty) => $method:ident: $reply:ty),* $(,)?) => {$(
        struct $op($msg);

        impl Forwardable for $op {
            type Reply = $reply;
            const RPC: &'static str = concat!("project.", stringify!($method));

            fn send(
                channel: Channel,
                max_message: usize,
                req: Request<Self>,
            ) -> BoxFuture<'static, Result<Response<$reply>, Status>> {
                Box::pin(async move { client(channel, max_message).$method(req.map(|op| op.0)).await })
            }
        }

        impl Routed for $op {
            fn route_key(&self) -> Result<Cow<'_, [u8]>, InputError> {
                Ok(Cow::Owned(text_key(&self.0.key)?))
            }
        }
    )*};
}

routed_op!(
    GetOp(KeyRequest) => get: KeyValueVersionReply,
    PutOp(KeyValueRequest) => put: PutReply,
    DelOp(KeyRequest) => del: KeyValueVersionReply,
    TrimOp(KeyRequest) => trim: KeyValueVersionReply,
);

/// A key's value as the API answers it: `""` and version 0 when absent.
fn version_reply(key: &str, value: Option<Value>) -> KeyValueVersionReply {
    match value {
        Some(v) => KeyValueVersionReply { key: key.to_owned(), val: text(v.data), ver: v.version },
        None => KeyValueVersionReply { key: key.to_owned(), val: String::new(), ver: 0 },
    }
}

/// Values in this key space are only ever written from strings.
fn text(data: Vec<u8>) -> String {
    String::from_utf8(data).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Serves `project.KeyValueStore` from one node.
#[derive(Clone)]
pub struct CompatService {
    d: Dispatch,
}

impl CompatService {
    pub fn new(d: Dispatch) -> Self {
        Self { d }
    }

    /// A write of `cmd(key)` on the request's key, answered by `reply`.
    async fn write<T: Routed>(
        &self,
        req: Request<T>,
        key: &str,
        cmd: impl FnOnce(Vec<u8>) -> Result<Command, InputError>,
        reply: impl FnOnce(crate::sm::command::Reply) -> T::Reply,
    ) -> Answer<T::Reply> {
        let k = text_key(key)?;
        let build = |_: &T| Ok(Write { cmd: cmd(k)?, session: None });
        self.d.serve(req, |req| self.d.write(req, build, reply)).await
    }

    /// The keys of a range as a stream of their values (`range.rs`).
    fn range(&self, r: &KeyRange) -> Result<ReceiverStream<Result<pb::KeyValuePair, Status>>, Status> {
        let (fr, to) = (r.fr.clone().unwrap_or_default(), r.to.clone().unwrap_or_default());
        let ver = fr.ver.unwrap_or(0).max(to.ver.unwrap_or(0));
        text_key(&fr.key)?;
        text_key(&to.key)?;
        let span = Span {
            space: pb::KeySpace::Text,
            from: fr.key.into_bytes().into(),
            to: to.key.into_bytes().into(),
            limit: 0,
            at_timestamp: (ver > 0).then_some(ver),
            serializable: false,
        };
        Ok(ReceiverStream::new(range::gather(self.d.clone(), span)?))
    }
}

/// A pair of the text space as the API answers it.
fn pair_reply(pair: pb::KeyValuePair) -> KeyValueVersionReply {
    let value = pair.value.unwrap_or_default();
    KeyValueVersionReply { key: text(pair.key.to_vec()), val: text(value.data.to_vec()), ver: value.version }
}

#[tonic::async_trait]
impl KeyValueStore for CompatService {
    async fn get(&self, request: Request<KeyRequest>) -> Answer<KeyValueVersionReply> {
        let req = request.map(GetOp);
        let k = text_key(&req.get_ref().0.key)?;
        self.d
            .serve(req, |req| {
                self.d.read(req, false, |r, store| {
                    Ok(version_reply(&r.0.key, store.read_at_or_before(&k, r.0.ver.unwrap_or(0))?))
                })
            })
            .await
    }

    type GetRangeStream = BoxStream<'static, Result<KeyValueVersionReply, Status>>;

    async fn get_range(&self, request: Request<KeyRange>) -> Answer<Self::GetRangeStream> {
        let pairs = self.range(request.get_ref())?;
        Ok(Response::new(Box::pin(pairs.map(|p| p.map(pair_reply)))))
    }

    type GetAllStream = BoxStream<'static, Result<KeyValueVersionReply, Status>>;

    async fn get_all(&self, request: Request<Streaming<KeyRequest>>) -> Answer<Self::GetAllStream> {
        let svc = self.clone();
        Ok(Response::new(batch::in_order(request, move |msg| {
            let svc = svc.clone();
            async move { svc.get(Request::new(msg)).await }
        })))
    }

    async fn put(&self, request: Request<KeyValueRequest>) -> Answer<PutReply> {
        let key = request.get_ref().key.clone();
        let data = self.d.data(request.get_ref().val.as_bytes())?;
        self.write(
            request.map(PutOp),
            &key,
            |k| Ok(Command::ClockPut { key: k, data }),
            |reply| {
                let old = version_reply(&key, reply.value);
                PutReply { key: key.clone(), old_val: old.val, old_ver: old.ver, ver: reply.made.unwrap_or(0) }
            },
        )
        .await
    }

    type PutAllStream = BoxStream<'static, Result<PutReply, Status>>;

    async fn put_all(&self, request: Request<Streaming<KeyValueRequest>>) -> Answer<Self::PutAllStream> {
        let svc = self.clone();
        Ok(Response::new(batch::in_order(request, move |msg| {
            let svc = svc.clone();
            async move { svc.put(Request::new(msg)).await }
        })))
    }

    async fn del(&self, request: Request<KeyRequest>) -> Answer<KeyValueVersionReply> {
        let key = request.get_ref().key.clone();
        let reply = |r: crate::sm::command::Reply| version_reply(&key, r.value);
        self.write(request.map(DelOp), &key.clone(), |k| Ok(Command::Del { key: k }), reply).await
    }

    type DelRangeStream = BoxStream<'static, Result<KeyValueVersionReply, Status>>;

    async fn del_range(&self, request: Request<KeyRange>) -> Answer<Self::DelRangeStream> {
        let pairs = self.range(request.get_ref())?;
        let svc = self.clone();
        let removed = pairs
            .map(move |pair| {
                let svc = svc.clone();
                async move {
                    let key = text(pair?.key.to_vec());
                    let req = Request::new(KeyRequest { key, ver: None });
                    Ok::<_, Status>(svc.del(req).await?.into_inner())
                }
            })
            .buffered(batch::WINDOW)
            // A version 0 answer: removed by someone else since it was read.
            .filter(|r| std::future::ready(!matches!(r, Ok(reply) if reply.ver == 0)));
        Ok(Response::new(Box::pin(removed)))
    }

    type DelAllStream = BoxStream<'static, Result<KeyValueVersionReply, Status>>;

    async fn del_all(&self, request: Request<Streaming<KeyRequest>>) -> Answer<Self::DelAllStream> {
        let svc = self.clone();
        Ok(Response::new(batch::in_order(request, move |msg| {
            let svc = svc.clone();
            async move { svc.del(Request::new(msg)).await }
        })))
    }

    async fn trim(&self, request: Request<KeyRequest>) -> Answer<KeyValueVersionReply> {
        let key = request.get_ref().key.clone();
        let reply = |r: crate::sm::command::Reply| version_reply(&key, r.value);
        self.write(request.map(TrimOp), &key.clone(), |k| Ok(Command::Trim { key: k, keep: 1 }), reply).await
    }
}

/// The generated server, sized like `KeyValue`'s.
pub fn server(
    svc: CompatService,
    max_message: usize,
) -> project::key_value_store_server::KeyValueStoreServer<CompatService> {
    project::key_value_store_server::KeyValueStoreServer::new(svc)
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message)
}
