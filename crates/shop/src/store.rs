//! Documents in ringkv, through `ringkv-client` only.
//!
//! Every change is a compare-and-set: `set` for a new key, `testAndSet` on
//! the version that was read for an existing one, `del` at that version
//! for a removal. A change that loses the race (`ERROR_WV`) reads again and
//! retries after a jittered pause, at most `MAX_ATTEMPTS` times, then
//! answers `Contention`: two writers never silently overwrite each other.
//!
//! Index documents make listing possible: every id of a kind is in one of
//! `INDEX_SHARDS` shard documents (`{"ids": [...]}`, sorted). The invariant
//! is one-sided: **every existing document is listed**; a listed id may
//! have no document (a create that failed half-way, a delete interrupted
//! before it cleaned up), and listings skip such ids. Create adds the id
//! first and checks it is still listed after the document is written;
//! delete removes the document, then the id, then re-adds the id if the
//! document came back meanwhile. Whichever of a racing create and delete
//! writes last also checks last, so the invariant holds (docs/shop.md).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::try_join_all;
use num_bigint::BigInt;
use rand::Rng;
use ringkv_client::{Client, Outcome, Reply, Value};
use serde::{Deserialize, Serialize};

use crate::keys::{self, Kind, INDEX_SHARDS};
use crate::model::{Document, Versioned};
use crate::ShopError;

/// Most tries of one compare-and-set before giving up.
pub const MAX_ATTEMPTS: u32 = 64;
/// The longest pause between two tries.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

/// One shard of a kind's list of ids.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IndexShard {
    ids: BTreeSet<String>,
}

/// The shop's documents in a ringkv ring.
#[derive(Clone)]
pub struct Store {
    db: Client,
}

impl Store {
    pub fn new(db: Client) -> Store {
        Store { db }
    }

    /// The document `id` of kind `T`, read from the database (linearizable).
    pub async fn read<T: Document>(&self, id: &str) -> Result<Option<Versioned<T>>, ShopError> {
        let reply = self.db.get(&keys::doc_key(T::KIND, id)).await?;
        match (reply.outcome, reply.value) {
            (Outcome::Success, Some(v)) => Ok(Some(decode_doc(id, &v)?)),
            _ => Ok(None),
        }
    }

    /// Writes a new document; `AlreadyExists` if its id is taken.
    pub async fn create<T: Document>(&self, doc: T) -> Result<Versioned<T>, ShopError> {
        doc.validate()?;
        let (index, id) = (T::KIND.index(), doc.id().to_owned());
        self.list(index, &id).await?;
        let reply = self.db.set(&keys::doc_key(T::KIND, &id), now_ms(), encode(&doc)).await?;
        if reply.outcome != Outcome::Success {
            return Err(ShopError::AlreadyExists { kind: T::KIND, id });
        }
        // A delete of an earlier document with this id may have unlisted
        // it between our listing and our write.
        if !self.listed(index, &id).await? {
            self.list(index, &id).await?;
        }
        Ok(Versioned { version: 1, doc })
    }

    /// Replaces document `id` with `change(current)`, on the version read.
    /// With `expected`, only at that version (else `VersionMismatch`);
    /// without, a lost race reads again and retries. Answers the document
    /// before and after.
    pub async fn update<T, F>(
        &self,
        id: &str,
        expected: Option<i64>,
        change: F,
    ) -> Result<(Versioned<T>, Versioned<T>), ShopError>
    where
        T: Document,
        F: Fn(&T) -> Result<T, ShopError>,
    {
        let key = keys::doc_key(T::KIND, id);
        for attempt in 0..MAX_ATTEMPTS {
            let cur: Versioned<T> = self.read(id).await?.ok_or_else(|| not_found::<T>(id))?;
            if let Some(expected) = expected.filter(|&e| e != cur.version) {
                return Err(mismatch::<T>(id, expected, cur.version));
            }
            let new = change(&cur.doc)?;
            new.validate()?;
            let reply = self.db.test_and_set(&key, now_ms(), encode(&new), cur.version).await?;
            match reply.outcome {
                Outcome::Success => {
                    let version = cur.version + 1;
                    return Ok((cur, Versioned { version, doc: new }));
                }
                Outcome::ErrorNe | Outcome::Error => return Err(not_found::<T>(id)),
                Outcome::ErrorWv if expected.is_some() => {
                    return Err(mismatch::<T>(id, cur.version, current_version(&reply)))
                }
                Outcome::ErrorWv => backoff(attempt).await,
            }
        }
        Err(ShopError::Contention { kind: T::KIND, id: id.to_owned(), attempts: MAX_ATTEMPTS })
    }

    /// Writes `new` over the document at version `read` (compare-and-set,
    /// no retry): the new version, or `None` if another write came first.
    pub async fn replace<T: Document>(&self, read: i64, new: T) -> Result<Option<Versioned<T>>, ShopError> {
        new.validate()?;
        let key = keys::doc_key(T::KIND, new.id());
        let reply = self.db.test_and_set(&key, now_ms(), encode(&new), read).await?;
        match reply.outcome {
            Outcome::Success => Ok(Some(Versioned { version: read + 1, doc: new })),
            Outcome::ErrorNe | Outcome::Error => Err(not_found::<T>(new.id())),
            Outcome::ErrorWv => Ok(None),
        }
    }

    /// Removes document `id` if `allowed(current)` holds on the version
    /// removed; answers what was removed.
    pub async fn delete<T, F>(&self, id: &str, allowed: F) -> Result<Versioned<T>, ShopError>
    where
        T: Document,
        F: Fn(&T) -> Result<(), ShopError>,
    {
        let key = keys::doc_key(T::KIND, id);
        for attempt in 0..MAX_ATTEMPTS {
            let cur: Versioned<T> = self.read(id).await?.ok_or_else(|| not_found::<T>(id))?;
            allowed(&cur.doc)?;
            let reply = self.db.del_version(&key, cur.version).await?;
            match reply.outcome {
                Outcome::Success => {
                    self.unlist::<T>(id).await?;
                    return Ok(cur);
                }
                Outcome::ErrorNe | Outcome::Error => return Err(not_found::<T>(id)),
                Outcome::ErrorWv => backoff(attempt).await,
            }
        }
        Err(ShopError::Contention { kind: T::KIND, id: id.to_owned(), attempts: MAX_ATTEMPTS })
    }

    /// Every listed id of `kind` after `after`, ascending (bytewise). May
    /// hold ids without a document (see the module's comment).
    pub async fn listed_after(&self, kind: Kind, after: &str) -> Result<Vec<String>, ShopError> {
        let index = kind.index();
        let shards = try_join_all((0..INDEX_SHARDS).map(|s| self.read_shard(index, s))).await?;
        let mut ids: Vec<String> = shards
            .into_iter()
            .flat_map(|s| s.map(|(shard, _)| shard.ids).unwrap_or_default())
            .filter(|id| id.as_str() > after)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Removes `id` from its index after its document was deleted, and
    /// lists it again if a create wrote the document meanwhile.
    async fn unlist<T: Document>(&self, id: &str) -> Result<(), ShopError> {
        let index = T::KIND.index();
        self.change_shard(index, id, |ids| ids.remove(id)).await?;
        if self.read::<T>(id).await?.is_some() {
            self.list(index, id).await?;
        }
        Ok(())
    }

    async fn list(&self, index: Kind, id: &str) -> Result<(), ShopError> {
        self.change_shard(index, id, |ids| ids.insert(id.to_owned())).await
    }

    async fn listed(&self, index: Kind, id: &str) -> Result<bool, ShopError> {
        let shard = self.read_shard(index, keys::shard_of(id)).await?;
        Ok(shard.is_some_and(|(s, _)| s.ids.contains(id)))
    }

    /// Applies `edit` to the shard listing `id` by compare-and-set; `edit`
    /// answers whether it changed anything (nothing is written if not).
    async fn change_shard<F>(&self, index: Kind, id: &str, edit: F) -> Result<(), ShopError>
    where
        F: Fn(&mut BTreeSet<String>) -> bool,
    {
        let n = keys::shard_of(id);
        let key = keys::shard_key(index, n);
        for attempt in 0..MAX_ATTEMPTS {
            let (mut shard, version) = self.read_shard(index, n).await?.unwrap_or_default();
            if !edit(&mut shard.ids) {
                return Ok(());
            }
            let data = encode(&shard);
            let reply = match version {
                0 => self.db.set(&key, now_ms(), data).await?,
                v => self.db.test_and_set(&key, now_ms(), data, v).await?,
            };
            if reply.outcome == Outcome::Success {
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(ShopError::Contention { kind: index, id: n.to_string(), attempts: MAX_ATTEMPTS })
    }

    /// Shard `n` of `index` and its version; `None` if never written.
    async fn read_shard(&self, index: Kind, n: u8) -> Result<Option<(IndexShard, i64)>, ShopError> {
        let reply = self.db.get(&keys::shard_key(index, n)).await?;
        let Some(v) = reply.value.filter(|_| reply.outcome == Outcome::Success) else {
            return Ok(None);
        };
        let shard = serde_json::from_slice(&v.data).map_err(|e| ShopError::Corrupt {
            kind: index,
            id: n.to_string(),
            why: e.to_string(),
        })?;
        Ok(Some((shard, v.version)))
    }

    /// The database client, for tools that look under the shop (tests).
    pub fn db(&self) -> &Client {
        &self.db
    }
}

/// A stored document, checked to be the one asked for.
pub fn decode_doc<T: Document>(id: &str, v: &Value) -> Result<Versioned<T>, ShopError> {
    let corrupt = |why: String| ShopError::Corrupt { kind: T::KIND, id: id.to_owned(), why };
    let doc: T = serde_json::from_slice(&v.data).map_err(|e| corrupt(e.to_string()))?;
    if doc.id() != id {
        return Err(corrupt(format!("it holds id {:?}", doc.id())));
    }
    Ok(Versioned { version: v.version, doc })
}

fn encode<T: Serialize>(doc: &T) -> Vec<u8> {
    serde_json::to_vec(doc).expect("documents are plain data and always serialize")
}

fn not_found<T: Document>(id: &str) -> ShopError {
    ShopError::NotFound { kind: T::KIND, id: id.to_owned() }
}

fn mismatch<T: Document>(id: &str, expected: i64, current: i64) -> ShopError {
    ShopError::VersionMismatch { kind: T::KIND, id: id.to_owned(), expected, current }
}

fn current_version(reply: &Reply) -> i64 {
    reply.value.as_ref().map_or(0, |v| v.version)
}

/// A random pause in [0, cap), the cap doubling per attempt up to
/// `MAX_BACKOFF` ("full jitter": racing writers spread out instead of
/// colliding again in step).
pub async fn backoff(attempt: u32) {
    let cap = Duration::from_micros(500 << attempt.min(10)).min(MAX_BACKOFF);
    let pause = rand::rng().random_range(Duration::ZERO..cap);
    tokio::time::sleep(pause).await;
}

/// The value timestamp: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The key of a document, for tools that look under the shop.
pub fn key_of<T: Document>(id: &str) -> BigInt {
    keys::doc_key(T::KIND, id)
}
