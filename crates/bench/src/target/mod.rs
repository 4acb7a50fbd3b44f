//! What the driver needs from a system: three calls, one request each.
//!
//! A `Conn` is one gRPC connection (HTTP/2, requests multiplexed on it);
//! `connect` of each target opens `--connections` of them, spread
//! round-robin over the addresses given, and client tasks share them
//! round-robin: the same shape for both systems.

pub mod etcd;
pub mod ringkv;

use std::future::Future;

use bytes::Bytes;

/// The answer to a compare-and-set on a key's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cas {
    /// It took effect; the key is now at this version.
    Done(i64),
    /// The version differed: the key's current version (None: absent).
    Conflict(Option<i64>),
}

pub trait Conn: Clone + Send + Sync + 'static {
    /// Inserts `key`; false if it already existed (ringkv then leaves it
    /// alone; etcd overwrites it).
    fn insert(&self, key: Vec<u8>, value: Bytes) -> impl Future<Output = anyhow::Result<bool>> + Send;
    /// Reads `key`, linearizably or from the contacted replica; answers its
    /// version (None: absent).
    fn get(&self, key: Vec<u8>, linearizable: bool) -> impl Future<Output = anyhow::Result<Option<i64>>> + Send;
    /// Replaces `key`'s value if its version is `version`.
    fn cas(&self, key: Vec<u8>, version: i64, value: Bytes) -> impl Future<Output = anyhow::Result<Cas>> + Send;
}

/// `n` items, the i-th made for address `i % addrs.len()`.
pub(crate) fn spread<T>(
    addrs: &[String],
    n: usize,
    mut make: impl FnMut(&str) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let addrs: Vec<&str> = addrs.iter().flat_map(|a| a.split(',')).map(str::trim).filter(|a| !a.is_empty()).collect();
    if addrs.is_empty() {
        anyhow::bail!("no address given");
    }
    (0..n).map(|i| make(addrs[i % addrs.len()])).collect()
}
