//! The state machine's store: LMDB through `heed`.
//!
//! The store is durable on its own. Every apply batch is one LMDB write
//! transaction that also records the last applied log id, committed with
//! LMDB's own crash safety (data pages flushed before the meta page that
//! points at them; `NO_META_SYNC`, so a power cut can undo at most the
//! last commit, never tear one). So a restart opens the store where it was
//! and openraft replays only the log after its applied index. Snapshots
//! (`snapshot.rs`) are read from one read transaction: LMDB's MVCC makes
//! that one consistent state while writes go on.
//!
//! Three databases: `data` (key bytes → encoded value), `sessions` and
//! `meta` (the applied log id and membership, written in the same
//! transaction as the data they describe, and the store's format mark).

use std::path::Path;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

use super::command::{self, Reply, Value};
use super::digest::{Digest, Digester};
use super::session::{self, ClientRecord, Request, SessionStore};
use crate::raft::types::{LogId, StoredMembership};

const META_APPLIED: &[u8] = b"applied";
const META_MEMBERSHIP: &[u8] = b"membership";
const META_FORMAT: &[u8] = b"format";
/// Marks a store written durably. Format 1, a working copy rebuilt at
/// every start and written without syncing, has no mark: after a power cut
/// it may be torn, so it is never trusted.
const FORMAT: &[u8] = b"ringkv-store-2";

/// Why the store failed. These come from the disk, never from a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("lmdb: {0}")]
    Lmdb(#[from] heed::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt value for a key in the store ({len} bytes, need at least 16)")]
    CorruptValue { len: usize },
    #[error("corrupt store metadata: {0}")]
    CorruptMeta(String),
}

/// An LMDB environment holding the state machine.
#[derive(Clone)]
pub struct KvStore {
    env: Env<WithoutTls>,
    data: Database<Bytes, Bytes>,
    meta: Database<Bytes, Bytes>,
    /// Exactly-once sessions: client id (big-endian) → ClientRecord.
    sessions: Database<Bytes, Bytes>,
}

impl KvStore {
    /// Opens the store in `dir`, creating it when new. Returns whether it
    /// holds a state to recover from: false for a new store and for a
    /// store of the old unsynced format, which is emptied (the caller then
    /// loads a snapshot into it).
    pub fn open(dir: &Path, map_bytes: usize) -> Result<(Self, bool), StoreError> {
        std::fs::create_dir_all(dir)?;
        // SAFETY: the directory is ours alone (the server holds a lock on the
        // data dir) and no other mapping of these files exists in-process.
        let env = unsafe {
            EnvOpenOptions::new()
                .read_txn_without_tls()
                .map_size(map_bytes)
                .max_dbs(3)
                .flags(EnvFlags::NO_META_SYNC)
                .open(dir)?
        };
        let mut txn = env.write_txn()?;
        let data = env.create_database(&mut txn, Some("data"))?;
        let meta = env.create_database(&mut txn, Some("meta"))?;
        let sessions = env.create_database(&mut txn, Some("sessions"))?;
        txn.commit()?;
        let store = Self { env, data, meta, sessions };
        let mut txn = store.env.write_txn()?;
        let durable = store.meta.get(&txn, META_FORMAT)? == Some(FORMAT);
        if !durable {
            store.clear(&mut txn)?;
        }
        txn.commit()?;
        Ok((store, durable))
    }

    /// Opens an existing store without changing it (`ringkv verify` on a
    /// stopped server's directory): `None` when there is none, or only
    /// one of the old unsynced format.
    pub fn open_existing(dir: &Path, map_bytes: usize) -> Result<Option<Self>, StoreError> {
        if !dir.join("data.mdb").exists() {
            return Ok(None);
        }
        // SAFETY: as in `open`; the caller makes sure no server runs on it.
        let env = unsafe {
            EnvOpenOptions::new()
                .read_txn_without_tls()
                .map_size(map_bytes)
                .max_dbs(3)
                .flags(EnvFlags::READ_ONLY)
                .open(dir)?
        };
        let txn = env.read_txn()?;
        let missing = |name: &str| StoreError::CorruptMeta(format!("the store has no {name} database"));
        let data = env.open_database(&txn, Some("data"))?.ok_or_else(|| missing("data"))?;
        let meta: Database<Bytes, Bytes> = env.open_database(&txn, Some("meta"))?.ok_or_else(|| missing("meta"))?;
        let sessions = env.open_database(&txn, Some("sessions"))?.ok_or_else(|| missing("sessions"))?;
        // Committing a read transaction is what shares the handles it
        // opened with the environment (else later use is EINVAL).
        txn.commit()?;
        let txn = env.read_txn()?;
        let marked = meta.get(&txn, META_FORMAT)? == Some(FORMAT);
        drop(txn);
        Ok(marked.then(|| Self { env, data, meta, sessions }))
    }

    /// Empties every database and marks the store as of this format.
    fn clear(&self, txn: &mut RwTxn<'_>) -> Result<(), StoreError> {
        self.data.clear(txn)?;
        self.meta.clear(txn)?;
        self.sessions.clear(txn)?;
        self.meta.put(txn, META_FORMAT, FORMAT)?;
        Ok(())
    }

    /// The bytes the state's pages take (keys, values and sessions): what
    /// `quota_bytes` limits. It shrinks when keys are deleted, unlike the
    /// file, whose freed pages LMDB reuses.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let txn = self.env.read_txn()?;
        let mut total = 0;
        for db in [&self.data, &self.sessions, &self.meta] {
            let s = db.stat(&txn)?;
            total += (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64 * u64::from(s.page_size);
        }
        Ok(total)
    }

    /// Flushes every commit to disk, the last one's meta page included:
    /// after it returns the store survives a power cut as it is now.
    pub fn sync(&self) -> Result<(), StoreError> {
        Ok(self.env.force_sync()?)
    }

    /// A read transaction that owns its environment handle, so it can move
    /// to another thread (used to stream a snapshot while writes go on).
    pub fn read_owned(&self) -> Result<RoTxn<'static, WithoutTls>, StoreError> {
        Ok(self.env.clone().static_read_txn()?)
    }

    /// Reads one key in a fresh read transaction.
    pub fn read(&self, key: &[u8]) -> Result<Reply, StoreError> {
        let txn = self.env.read_txn()?;
        command::read(&mut ReadView { store: self, txn: &txn }, key)
    }

    /// Starts a batch of writes; nothing is visible until `Batch::commit`.
    pub fn batch(&self) -> Result<Batch<'_>, StoreError> {
        Ok(Batch { store: self, txn: self.env.write_txn()? })
    }

    /// The last applied log id and membership, as of `txn`.
    pub fn applied_state(&self, txn: &RoTxn<'_, WithoutTls>) -> Result<(Option<LogId>, StoredMembership), StoreError> {
        let applied = match self.meta.get(txn, META_APPLIED)? {
            Some(b) => Some(decode_meta(b)?),
            None => None,
        };
        let membership = match self.meta.get(txn, META_MEMBERSHIP)? {
            Some(b) => decode_meta(b)?,
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }

    /// Applied state in a fresh read transaction.
    pub fn current_applied_state(&self) -> Result<(Option<LogId>, StoredMembership), StoreError> {
        let txn = self.env.read_txn()?;
        self.applied_state(&txn)
    }

    /// Every key and its encoded value, in key order, as of `txn`.
    pub fn iter<'t>(&self, txn: &'t RoTxn<'_, WithoutTls>) -> Result<Pairs<'t>, StoreError> {
        Ok(Box::new(self.data.iter(txn)?.map(|r| r.map_err(StoreError::from))))
    }

    /// Every session record (client id bytes, encoded record), as of `txn`.
    pub fn iter_sessions<'t>(&self, txn: &'t RoTxn<'_, WithoutTls>) -> Result<Pairs<'t>, StoreError> {
        Ok(Box::new(self.sessions.iter(txn)?.map(|r| r.map_err(StoreError::from))))
    }
}

/// Key-value pairs as LMDB hands them out, borrowed from a transaction.
pub type Pairs<'t> = Box<dyn Iterator<Item = Result<(&'t [u8], &'t [u8]), StoreError>> + 't>;

impl KvStore {
    /// The applied index and the digest (`digest.rs`) of the state at it,
    /// from one read transaction: a full scan, for status checks and
    /// tests, not for the request path.
    pub fn digest(&self) -> Result<(u64, Digest), StoreError> {
        let txn = self.env.read_txn()?;
        let (applied, _) = self.applied_state(&txn)?;
        let mut digest = Digester::default();
        for kv in self.iter(&txn)? {
            let (k, v) = kv?;
            digest.data(k, v);
        }
        for kv in self.iter_sessions(&txn)? {
            let (k, v) = kv?;
            digest.session(k, v);
        }
        Ok((applied.map_or(0, |id| id.index), digest.finish()))
    }
}

/// A write transaction over the store.
pub struct Batch<'s> {
    store: &'s KvStore,
    txn: RwTxn<'s>,
}

impl Batch<'_> {
    /// Applies one command, without a session (tests): the outcome table
    /// lives in `command::apply`.
    #[cfg(test)]
    pub fn apply(&mut self, cmd: command::Command) -> Result<Reply, StoreError> {
        command::apply(self, cmd)
    }

    /// Applies the requests of the entry at `index`, in order.
    pub fn apply_requests(&mut self, index: u64, reqs: Vec<Request>) -> Result<Vec<Reply>, StoreError> {
        session::apply_all(self, index, reqs)
    }

    /// Removes every key and session (before loading a snapshot).
    pub fn clear(&mut self) -> Result<(), StoreError> {
        self.store.clear(&mut self.txn)
    }

    /// Puts an already encoded session record (snapshot loading).
    pub fn put_session_raw(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        decode_meta::<ClientRecord>(value)?;
        self.store.sessions.put(&mut self.txn, key, value)?;
        Ok(())
    }

    /// Puts an already encoded value (snapshot loading).
    pub fn put_raw(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        decode_value(value)?;
        self.store.data.put(&mut self.txn, key, value)?;
        Ok(())
    }

    pub fn set_applied(&mut self, log_id: &LogId) -> Result<(), StoreError> {
        let bytes = encode_meta(log_id)?;
        self.store.meta.put(&mut self.txn, META_APPLIED, &bytes)?;
        Ok(())
    }

    pub fn set_membership(&mut self, membership: &StoredMembership) -> Result<(), StoreError> {
        let bytes = encode_meta(membership)?;
        self.store.meta.put(&mut self.txn, META_MEMBERSHIP, &bytes)?;
        Ok(())
    }

    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.txn.commit()?)
    }
}

impl command::Store for Batch<'_> {
    type Error = StoreError;
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>, StoreError> {
        self.store.data.get(&self.txn, key)?.map(decode_value).transpose()
    }
    fn put(&mut self, key: &[u8], value: &Value) -> Result<(), StoreError> {
        self.store.data.put(&mut self.txn, key, &encode_value(value))?;
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.store.data.delete(&mut self.txn, key)?;
        Ok(())
    }
}

impl SessionStore for Batch<'_> {
    fn get_client(&mut self, id: u64) -> Result<Option<ClientRecord>, StoreError> {
        self.store.sessions.get(&self.txn, &id.to_be_bytes())?.map(decode_meta).transpose()
    }
    fn put_client(&mut self, id: u64, record: &ClientRecord) -> Result<(), StoreError> {
        self.store.sessions.put(&mut self.txn, &id.to_be_bytes(), &encode_meta(record)?)?;
        Ok(())
    }
    fn expire_clients(&mut self, cutoff_ms: u64) -> Result<(), StoreError> {
        let mut expired = Vec::new();
        for kv in self.store.sessions.iter(&self.txn)? {
            let (k, v) = kv?;
            if decode_meta::<ClientRecord>(v)?.last_seen_ms < cutoff_ms {
                expired.push(k.to_vec());
            }
        }
        for k in expired {
            self.store.sessions.delete(&mut self.txn, &k)?;
        }
        Ok(())
    }
}

struct ReadView<'a, 't> {
    store: &'a KvStore,
    txn: &'a RoTxn<'t, WithoutTls>,
}

impl command::Store for ReadView<'_, '_> {
    type Error = StoreError;
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>, StoreError> {
        self.store.data.get(self.txn, key)?.map(decode_value).transpose()
    }
    fn put(&mut self, _: &[u8], _: &Value) -> Result<(), StoreError> {
        unreachable!("reads never write: command::read only calls get")
    }
    fn delete(&mut self, _: &[u8]) -> Result<(), StoreError> {
        unreachable!("reads never write: command::read only calls get")
    }
}

/// A value on disk: version and timestamp as big-endian i64, then the data.
pub fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + v.data.len());
    out.extend_from_slice(&v.version.to_be_bytes());
    out.extend_from_slice(&v.timestamp.to_be_bytes());
    out.extend_from_slice(&v.data);
    out
}

pub fn decode_value(bytes: &[u8]) -> Result<Value, StoreError> {
    if bytes.len() < 16 {
        return Err(StoreError::CorruptValue { len: bytes.len() });
    }
    let (version, rest) = bytes.split_at(8);
    let (timestamp, data) = rest.split_at(8);
    let be = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or_default());
    Ok(Value { version: be(version), timestamp: be(timestamp), data: data.to_vec() })
}

fn encode_meta<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|e| StoreError::CorruptMeta(e.to_string()))
}

fn decode_meta<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::CorruptMeta(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sm::command::{Command, MemStore, Status};
    use crate::sm::session::Session;
    use rand::{Rng, SeedableRng};

    fn random_command(rng: &mut impl Rng) -> Command {
        let key = vec![rng.random_range(0..8u8)];
        let version = rng.random_range(0..4i64);
        let data = vec![rng.random::<u8>(); rng.random_range(0..4)];
        match rng.random_range(0..4) {
            0 => Command::Set { key, timestamp: 7, data },
            1 => Command::Del { key },
            2 => Command::DelVersion { key, version },
            _ => Command::TestAndSet { key, timestamp: 9, data, version },
        }
    }

    /// An empty store in a temporary directory, an empty model, and a
    /// seeded generator: what the model tests start from.
    fn fresh(seed: u64) -> (tempfile::TempDir, KvStore, MemStore, rand::rngs::StdRng) {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open(dir.path(), 1 << 26).unwrap().0;
        (dir, store, MemStore::default(), rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// The LMDB store answers exactly like the `BTreeMap` model, command by
    /// command, over random histories on a small key set.
    #[test]
    fn lmdb_matches_model() {
        let (_dir, store, mut model, mut rng) = fresh(42);
        for _ in 0..50 {
            let mut batch = store.batch().unwrap();
            for _ in 0..40 {
                let cmd = random_command(&mut rng);
                let want = command::apply(&mut model, cmd.clone()).unwrap();
                assert_eq!(batch.apply(cmd).unwrap(), want);
            }
            batch.commit().unwrap();
        }
        for key in 0..8u8 {
            let want = command::read(&mut model, &[key]).unwrap();
            assert_eq!(store.read(&[key]).unwrap(), want);
        }
    }

    /// `status --digest` (this store) and `verify` (the model, encoded as
    /// the store encodes it) digest the same records: sessions included.
    #[test]
    fn the_store_digest_is_the_models() {
        let (_dir, store, mut model, mut rng) = fresh(7);
        let mut batch = store.batch().unwrap();
        for index in 1..200u64 {
            let client_id = rng.random_range(0..4u64);
            let session = (client_id != 0).then_some(Session { client_id, sequence: index, first_unacked: index });
            let req = Request { cmd: random_command(&mut rng), session, time_ms: 1000 + index };
            let want = session::apply(&mut model, index, req.clone()).unwrap();
            assert_eq!(batch.apply_requests(index, vec![req]).unwrap(), vec![want]);
        }
        batch.commit().unwrap();
        let mut want = Digester::default();
        for (k, v) in &model.data {
            want.data(k, &encode_value(v));
        }
        for (id, r) in &model.clients {
            want.session(&id.to_be_bytes(), &postcard::to_allocvec(r).unwrap());
        }
        let (_, got) = store.digest().unwrap();
        assert_eq!(got, want.finish());
        assert_eq!(got.sessions, 3, "every client is remembered");
    }

    #[test]
    fn read_transaction_is_a_stable_state() {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open(dir.path(), 1 << 26).unwrap().0;
        let set = |k: u8| Command::Set { key: vec![k], timestamp: 1, data: vec![k] };
        let mut b = store.batch().unwrap();
        b.apply(set(1)).unwrap();
        b.commit().unwrap();
        let txn = store.read_owned().unwrap();
        let mut b = store.batch().unwrap();
        b.apply(set(2)).unwrap();
        b.commit().unwrap();
        assert_eq!(store.iter(&txn).unwrap().count(), 1);
        assert_eq!(store.read(&[2]).unwrap().status, Status::Success);
    }

    /// What a batch committed is there when the store is opened again,
    /// applied log id included; a copy without the format mark (the old
    /// unsynced working copy) is emptied instead of trusted.
    #[test]
    fn a_reopened_store_holds_its_state_and_an_unmarked_one_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let log_id = LogId::new(openraft::CommittedLeaderId::new(3, 0), 42);
        {
            let (store, durable) = KvStore::open(dir.path(), 1 << 26).unwrap();
            assert!(!durable, "a new store holds nothing to recover");
            let mut b = store.batch().unwrap();
            b.apply(Command::Set { key: vec![1], timestamp: 5, data: b"one".to_vec() }).unwrap();
            b.set_applied(&log_id).unwrap();
            b.commit().unwrap();
            store.sync().unwrap();
        }
        let existing = KvStore::open_existing(dir.path(), 1 << 26).unwrap().expect("a marked store");
        assert_eq!(existing.current_applied_state().unwrap().0, Some(log_id));
        drop(existing);
        let (store, durable) = KvStore::open(dir.path(), 1 << 26).unwrap();
        assert!(durable);
        assert_eq!(store.current_applied_state().unwrap().0, Some(log_id));
        assert_eq!(store.read(&[1]).unwrap().status, Status::Success);
        let mut txn = store.env.write_txn().unwrap();
        store.meta.delete(&mut txn, META_FORMAT).unwrap();
        txn.commit().unwrap();
        drop(store);
        let (store, durable) = KvStore::open(dir.path(), 1 << 26).unwrap();
        assert!(!durable, "an unmarked copy is not trusted");
        assert_eq!(store.current_applied_state().unwrap().0, None);
        assert_eq!(store.read(&[1]).unwrap().value, None);
    }
}
