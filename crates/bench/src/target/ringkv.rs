//! ringkv through its own client library (`ringkv-client`): the same calls,
//! retries and exactly-once sessions an application gets.

use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use num_bigint::BigInt;
use ringkv_client::{Client, ClientOptions, Outcome};

use super::{spread, Cas, Conn};
use crate::args::BenchArgs;

/// One connection: a `Client` on one address (one HTTP/2 connection).
#[derive(Clone)]
pub struct Ringkv(Client);

pub fn connect(addrs: &[String], args: &BenchArgs) -> anyhow::Result<Vec<Ringkv>> {
    // Ring-aware, as applications and the CLI run: writes and linearizable
    // reads go straight to the owner group's leader, serializable reads to
    // its replicas in turn.
    let opts = ClientOptions { timeout: Duration::from_secs(10), ring: true, ..ClientOptions::default() };
    spread(addrs, args.connections(), |a| Ok(Ringkv(Client::new(a, opts.clone()).context("bad --addr")?)))
}

fn key(bytes: &[u8]) -> BigInt {
    BigInt::from_signed_bytes_be(bytes)
}

impl Conn for Ringkv {
    async fn insert(&self, k: Vec<u8>, value: Bytes) -> anyhow::Result<bool> {
        let r = self.0.set(&key(&k), 0, value).await?;
        match r.outcome {
            Outcome::Success => Ok(true),
            Outcome::Error => Ok(false),
            other => bail!("set answered {other}"),
        }
    }

    async fn get(&self, k: Vec<u8>, linearizable: bool) -> anyhow::Result<Option<i64>> {
        let k = key(&k);
        let r = if linearizable { self.0.get(&k).await? } else { self.0.get_serializable(&k).await? };
        Ok(r.value.map(|v| v.version))
    }

    async fn cas(&self, k: Vec<u8>, version: i64, value: Bytes) -> anyhow::Result<Cas> {
        let r = self.0.test_and_set(&key(&k), 0, value, version).await?;
        let current = r.value.map(|v| v.version);
        match r.outcome {
            Outcome::Success => Ok(Cas::Done(current.unwrap_or(version + 1))),
            Outcome::ErrorWv | Outcome::ErrorNe => Ok(Cas::Conflict(current)),
            Outcome::Error => bail!("testAndSet answered ERROR"),
        }
    }
}
