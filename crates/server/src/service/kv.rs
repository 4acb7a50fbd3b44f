//! The public `KeyValue` service (proto/ringkv/v1/kv.proto).
//!
//! Each RPC only validates its request and builds a `Command` (or a read);
//! routing, committing, forwarding to the leader and error mapping are
//! shared by every service (`dispatch.rs`).

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use ringkv_api::pb::{self, key_value_server::KeyValue};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::batch::{self, Keyed};
use super::dispatch::{Answer as Answered, Dispatch, Write};
use super::forward::Routed;
use super::range::{self, Span};
use super::status::InputError;
use crate::sm::command::{self, Command};
use crate::sm::key as store_key;
use crate::sm::session::Session;

/// A write request: it may carry an exactly-once session tag.
trait WriteMessage: Routed<Reply = pb::Reply> {
    fn session(&self) -> Option<Session>;
}

macro_rules! keyed {
    ($($req:ty),*) => {$(
        impl Keyed for $req {
            fn batch_key(&self) -> &[u8] {
                &self.key
            }
        }
    )*};
}

keyed!(pb::GetRequest, pb::PutRequest, pb::DelRequest);

/// A read request: its key, and whether a stale answer will do.
trait ReadMessage: Routed {
    fn key(&self) -> &Bytes;
    fn serializable(&self) -> bool;
}

macro_rules! read_message {
    ($($req:ty),*) => {$(
        impl ReadMessage for $req {
            fn key(&self) -> &Bytes {
                &self.key
            }
            fn serializable(&self) -> bool {
                self.serializable
            }
        }
    )*};
}

read_message!(pb::GetRequest, pb::GetAtRequest, pb::HistoryRequest);

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

write_message!(
    pb::SetRequest,
    pb::DelRequest,
    pb::DelVersionRequest,
    pb::TestAndSetRequest,
    pb::PutRequest,
    pb::TrimRequest
);

type Answer<R = pb::Reply> = Answered<R>;

/// Serves `KeyValue` from one node.
#[derive(Clone)]
pub struct KvService {
    d: Dispatch,
}

/// The store key of a request's (integer) key.
fn key(key: &Bytes) -> Result<Vec<u8>, InputError> {
    ringkv_api::key::validate_key(key)?;
    Ok(store_key::int(key))
}

impl KvService {
    pub fn new(d: Dispatch) -> Self {
        Self { d }
    }

    /// A write of `build`'s command, with the request's session tag.
    async fn write<T: WriteMessage>(
        &self,
        req: Request<T>,
        build: impl FnOnce(&T) -> Result<Command, InputError>,
    ) -> Answer {
        let write = |r: &T| Ok(Write { cmd: build(r)?, session: r.session() });
        self.d.serve(req, |req| self.d.write(req, write, pb::Reply::from)).await
    }

    /// A read of the request's key from the store.
    async fn read<T: ReadMessage>(
        &self,
        req: Request<T>,
        read: impl FnOnce(&T, &crate::sm::store::KvStore, &[u8]) -> Result<T::Reply, crate::sm::store::StoreError>,
    ) -> Answer<T::Reply> {
        self.d
            .serve(req, |req| async move {
                let (k, serializable) = (key(req.get_ref().key())?, req.get_ref().serializable());
                self.d.read(req, serializable, |r, store| read(r, store, &k)).await
            })
            .await
    }
}

#[tonic::async_trait]
impl KeyValue for KvService {
    async fn set(&self, request: Request<pb::SetRequest>) -> Answer {
        self.write(request, |r| {
            Ok(Command::Set { key: key(&r.key)?, timestamp: r.timestamp, data: self.d.data(&r.data)? })
        })
        .await
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Answer {
        self.read(request, |_, store, k| Ok(store.read(k)?.into())).await
    }

    async fn del(&self, request: Request<pb::DelRequest>) -> Answer {
        self.write(request, |r| Ok(Command::Del { key: key(&r.key)? })).await
    }

    async fn del_version(&self, request: Request<pb::DelVersionRequest>) -> Answer {
        self.write(request, |r| Ok(Command::DelVersion { key: key(&r.key)?, version: r.version })).await
    }

    async fn test_and_set(&self, request: Request<pb::TestAndSetRequest>) -> Answer {
        self.write(request, |r| {
            Ok(Command::TestAndSet {
                key: key(&r.key)?,
                timestamp: r.timestamp,
                data: self.d.data(&r.data)?,
                version: r.version,
            })
        })
        .await
    }

    async fn put(&self, request: Request<pb::PutRequest>) -> Answer {
        self.write(request, |r| {
            Ok(Command::Put { key: key(&r.key)?, timestamp: r.timestamp, data: self.d.data(&r.data)? })
        })
        .await
    }

    async fn get_at(&self, request: Request<pb::GetAtRequest>) -> Answer {
        self.read(request, |r, store, k| Ok(store.read_at(k, r.version)?.into())).await
    }

    async fn history(&self, request: Request<pb::HistoryRequest>) -> Answer<pb::HistoryReply> {
        self.read(request, |r, store, k| {
            let (status, versions) = store.read_history(k, r.limit)?;
            Ok(pb::HistoryReply {
                status: pb::Status::from(status) as i32,
                values: versions.into_iter().map(pb::Value::from).collect(),
            })
        })
        .await
    }

    async fn trim(&self, request: Request<pb::TrimRequest>) -> Answer {
        self.write(request, |r| {
            if r.keep == 0 {
                return Err(InputError::KeepNothing);
            }
            Ok(Command::Trim { key: key(&r.key)?, keep: r.keep })
        })
        .await
    }

    type RangeStream = ReceiverStream<Result<pb::KeyValuePair, Status>>;

    async fn range(&self, request: Request<pb::RangeRequest>) -> Answer<Self::RangeStream> {
        let r = request.into_inner();
        let span = Span {
            space: pb::KeySpace::Integer,
            from: r.from,
            to: r.to,
            limit: u64::from(r.limit),
            at_timestamp: r.at_timestamp,
            serializable: r.serializable,
        };
        Ok(Response::new(ReceiverStream::new(range::gather(self.d.clone(), span)?)))
    }

    type DelRangeStream = BoxStream<'static, Result<pb::KeyValuePair, Status>>;

    async fn del_range(&self, request: Request<pb::DelRangeRequest>) -> Answer<Self::DelRangeStream> {
        let r = request.into_inner();
        let span = Span {
            space: pb::KeySpace::Integer,
            from: r.from,
            to: r.to,
            limit: 0,
            at_timestamp: None,
            serializable: false,
        };
        let keys = ReceiverStream::new(range::gather(self.d.clone(), span)?);
        let svc = self.clone();
        let removed = keys
            .map(move |pair| {
                let svc = svc.clone();
                async move {
                    let key = pair?.key;
                    let reply =
                        svc.del(Request::new(pb::DelRequest { key: key.clone(), ..Default::default() })).await?;
                    Ok::<_, Status>((key, reply.into_inner()))
                }
            })
            .buffered(batch::WINDOW)
            .filter_map(|answer| async move {
                match answer {
                    Ok((key, reply)) if reply.status == pb::Status::Success as i32 => {
                        Some(Ok(pb::KeyValuePair { key, value: reply.value }))
                    }
                    // Removed by someone else since the range was read.
                    Ok(_) => None,
                    Err(e) => Some(Err(e)),
                }
            });
        Ok(Response::new(Box::pin(removed)))
    }

    async fn range_part(&self, request: Request<pb::RangePartRequest>) -> Answer<pb::RangePartReply> {
        range::part_here(&self.d, request).await
    }

    type GetManyStream = BoxStream<'static, Result<pb::Reply, Status>>;

    async fn get_many(&self, request: Request<Streaming<pb::GetRequest>>) -> Answer<Self::GetManyStream> {
        let svc = self.clone();
        Ok(Response::new(batch::in_order(request, move |msg| {
            let svc = svc.clone();
            async move { svc.get(Request::new(msg)).await }
        })))
    }

    type PutManyStream = BoxStream<'static, Result<pb::Reply, Status>>;

    async fn put_many(&self, request: Request<Streaming<pb::PutRequest>>) -> Answer<Self::PutManyStream> {
        let svc = self.clone();
        Ok(Response::new(batch::in_order(request, move |msg| {
            let svc = svc.clone();
            async move { svc.put(Request::new(msg)).await }
        })))
    }

    type DelManyStream = BoxStream<'static, Result<pb::Reply, Status>>;

    async fn del_many(&self, request: Request<Streaming<pb::DelRequest>>) -> Answer<Self::DelManyStream> {
        let svc = self.clone();
        Ok(Response::new(batch::in_order(request, move |msg| {
            let svc = svc.clone();
            async move { svc.del(Request::new(msg)).await }
        })))
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
        pb::Reply { status: pb::Status::from(r.status) as i32, value: r.value.map(pb::Value::from) }
    }
}

impl From<command::Value> for pb::Value {
    fn from(v: command::Value) -> Self {
        pb::Value { version: v.version, timestamp: v.timestamp, data: Bytes::from(v.data) }
    }
}
