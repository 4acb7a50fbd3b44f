//! etcd through its v3 gRPC API (`proto/etcd/kv.proto`, generated with
//! tonic like ringkv's client), one tonic channel per connection.
//!
//! The mapping, chosen so that both systems do the same work per operation:
//! - insert: `Put(key, value)` on a fresh key.
//! - linearizable get: `Range(key)` (etcd's default is linearizable);
//!   serializable get: `Range(key, serializable = true)`.
//! - compare-and-set: `Txn(if version(key) == v then Put(key, value) else
//!   Range(key))`. etcd's per-key `version` starts at 1 on creation and
//!   grows by 1 on every put, exactly like ringkv's version, so the same
//!   version the driver last saw is compared; the else branch returns the
//!   current version in the same round trip, as ringkv's ERROR_WV does.

use anyhow::{bail, Context};
use bytes::Bytes;
use tonic::transport::{Channel, Endpoint};

use super::{spread, Cas, Conn};
use crate::args::BenchArgs;

#[allow(clippy::all, clippy::pedantic)]
mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::kv_client::KvClient;
use pb::request_op::Request as Op;
use pb::response_op::Response as OpResponse;

/// One connection: a lazily connected channel to one etcd member.
#[derive(Clone)]
pub struct Etcd(KvClient<Channel>);

pub fn connect(addrs: &[String], args: &BenchArgs) -> anyhow::Result<Vec<Etcd>> {
    spread(addrs, args.connections(), |a| {
        let uri = if a.contains("://") { a.to_owned() } else { format!("http://{a}") };
        let endpoint = Endpoint::from_shared(uri).with_context(|| format!("bad address {a:?}"))?.tcp_nodelay(true);
        Ok(Etcd(KvClient::new(endpoint.connect_lazy())))
    })
}

fn range(key: Vec<u8>, serializable: bool) -> pb::RangeRequest {
    pb::RangeRequest { key: key.into(), serializable, ..Default::default() }
}

impl Conn for Etcd {
    async fn insert(&self, key: Vec<u8>, value: Bytes) -> anyhow::Result<bool> {
        self.0.clone().put(pb::PutRequest { key: key.into(), value, lease: 0 }).await?;
        Ok(true)
    }

    async fn get(&self, key: Vec<u8>, linearizable: bool) -> anyhow::Result<Option<i64>> {
        let r = self.0.clone().range(range(key, !linearizable)).await?.into_inner();
        Ok(r.kvs.first().map(|kv| kv.version))
    }

    async fn cas(&self, key: Vec<u8>, version: i64, value: Bytes) -> anyhow::Result<Cas> {
        let key = Bytes::from(key);
        let txn = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Version as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::Version(version)),
            }],
            success: vec![pb::RequestOp {
                request: Some(Op::RequestPut(pb::PutRequest { key: key.clone(), value, lease: 0 })),
            }],
            failure: vec![pb::RequestOp { request: Some(Op::RequestRange(range(key.to_vec(), false))) }],
        };
        let r = self.0.clone().txn(txn).await?.into_inner();
        if r.succeeded {
            return Ok(Cas::Done(version + 1));
        }
        match r.responses.into_iter().next().and_then(|op| op.response) {
            Some(OpResponse::ResponseRange(range)) => Ok(Cas::Conflict(range.kvs.first().map(|kv| kv.version))),
            _ => bail!("etcd answered a failed Txn without its Range"),
        }
    }
}
