//! The state machine's store: a memory overlay above LMDB (through
//! `heed`), checkpointed.
//!
//! The store is durable on its own. An apply batch goes into the overlay
//! (what changed since the last checkpoint: values, tombstones, sessions,
//! the applied log id); a checkpoint writes the overlay into LMDB in one
//! write transaction, applied log id included, committed with LMDB's own
//! crash safety (synced: data pages, then the meta page that points at
//! them), then clears it. Checkpoints run every `Checkpoints::interval`
//! or once the overlay holds `Checkpoints::bytes`, and before a snapshot is
//! kept. So a restart opens LMDB where the last checkpoint left it and
//! openraft replays only the log after its applied index: about a second
//! of writes, whatever the state's size. A key written many times between
//! two checkpoints reaches the disk once, and each checkpoint rewrites only
//! the B-tree pages its keys touch: the cost per write does not grow with
//! the state. (Syncing LMDB on every apply batch instead, tried first,
//! rewrote those pages per batch: 118 bytes written per value byte.)
//!
//! Readers see overlay, then LMDB. A lookup holds the overlay's read lock
//! while it opens its LMDB transaction, and a checkpoint clears the
//! overlay only after its commit, so a reader sees either the overlay
//! entry or the committed one, never neither. Snapshots and digests read a
//! `View`: a copy of the overlay and an LMDB read transaction taken
//! together, one consistent state while writes go on.
//!
//! Three LMDB databases: `data` (store key, `sm/key.rs` → the key's
//! history, `encode_history`), `sessions` and
//! `meta` (the applied log id and membership, and the store's format mark).

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

use super::command::{self, History, Reply, Status, Value};
use super::digest::{Digest, Digester};
use super::session::{self, ClientRecord, Request, SessionStore};
use crate::raft::types::{LogId, StoredMembership};

const META_APPLIED: &[u8] = b"applied";
const META_MEMBERSHIP: &[u8] = b"membership";
const META_FORMAT: &[u8] = b"format";
/// Marks a store written durably, in this format. Format 1, a working copy
/// rebuilt at every start and written without syncing, has no mark: after
/// a power cut it may be torn, so it is never trusted. Format 2 held one
/// version per key under its wire bytes. A store of another format is
/// emptied and rebuilt from a snapshot (whose own format is checked).
const FORMAT: &[u8] = b"ringkv-store-3";

/// Why the store failed. These come from the disk, never from a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("lmdb: {0}")]
    Lmdb(#[from] heed::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt value for a key in the store: {0}")]
    CorruptValue(String),
    #[error("corrupt store metadata: {0}")]
    CorruptMeta(String),
}

/// When the overlay is written to LMDB.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoints {
    /// At least this often while anything changed.
    pub interval: Duration,
    /// Or as soon as the overlay holds this many bytes.
    pub bytes: usize,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Self { interval: Duration::from_secs(1), bytes: 16 * 1024 * 1024 }
    }
}

/// What changed since the last checkpoint. `None` is a deletion.
#[derive(Debug, Clone, Default)]
struct Overlay {
    data: Changes,
    sessions: Changes,
    applied: Option<LogId>,
    membership: Option<StoredMembership>,
    bytes: usize,
    /// When the oldest change in it was made.
    since: Option<Instant>,
}

impl Overlay {
    fn is_empty(&self) -> bool {
        self.since.is_none()
    }

    fn merge(&mut self, delta: Overlay) {
        self.bytes += delta.bytes;
        self.data.extend(delta.data);
        self.sessions.extend(delta.sessions);
        if delta.applied.is_some() {
            self.applied = delta.applied;
        }
        if delta.membership.is_some() {
            self.membership = delta.membership;
        }
        if delta.since.is_some() {
            self.since = self.since.or(delta.since);
        }
    }

    fn note(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.since.get_or_insert_with(Instant::now);
    }
}

/// Key (or client id) bytes → encoded record; `None` is a deletion.
type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The state machine's store (cheap to clone: one shared inner).
#[derive(Clone)]
pub struct KvStore {
    inner: Arc<Inner>,
}

struct Inner {
    env: Env<WithoutTls>,
    data: Database<Bytes, Bytes>,
    meta: Database<Bytes, Bytes>,
    /// Exactly-once sessions: client id (big-endian) → ClientRecord.
    sessions: Database<Bytes, Bytes>,
    overlay: RwLock<Overlay>,
    /// Held by whoever changes the overlay or LMDB: an apply batch, a
    /// checkpoint, a snapshot load. One at a time.
    writer: Mutex<()>,
    checkpoints: Checkpoints,
}

fn read_lock(l: &RwLock<Overlay>) -> RwLockReadGuard<'_, Overlay> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

impl KvStore {
    /// Opens the store in `dir`, creating it when new. Returns whether it
    /// holds a state to recover from: false for a new store and for a
    /// store of the old unsynced format, which is emptied (the caller then
    /// loads a snapshot into it). Starts the checkpoint timer.
    pub fn open(dir: &Path, map_bytes: usize, checkpoints: Checkpoints) -> Result<(Self, bool), StoreError> {
        std::fs::create_dir_all(dir)?;
        // SAFETY: the directory is ours alone (the server holds a lock on the
        // data dir) and no other mapping of these files exists in-process.
        let env = unsafe {
            EnvOpenOptions::new()
                .read_txn_without_tls()
                .map_size(map_bytes)
                .max_dbs(3)
                .flags(EnvFlags::empty())
                .open(dir)?
        };
        let mut txn = env.write_txn()?;
        let data = env.create_database(&mut txn, Some("data"))?;
        let meta = env.create_database(&mut txn, Some("meta"))?;
        let sessions = env.create_database(&mut txn, Some("sessions"))?;
        txn.commit()?;
        let store = Self::new(env, data, meta, sessions, checkpoints);
        let mut txn = store.inner.env.write_txn()?;
        let durable = store.inner.meta.get(&txn, META_FORMAT)? == Some(FORMAT);
        if !durable {
            store.inner.clear(&mut txn)?;
        }
        txn.commit()?;
        spawn_checkpoint_timer(Arc::downgrade(&store.inner));
        Ok((store, durable))
    }

    fn new(
        env: Env<WithoutTls>,
        data: Database<Bytes, Bytes>,
        meta: Database<Bytes, Bytes>,
        sessions: Database<Bytes, Bytes>,
        checkpoints: Checkpoints,
    ) -> Self {
        let inner =
            Inner { env, data, meta, sessions, overlay: RwLock::default(), writer: Mutex::new(()), checkpoints };
        Self { inner: Arc::new(inner) }
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
        Ok(marked.then(|| Self::new(env, data, meta, sessions, Checkpoints::default())))
    }

    /// The bytes the state's pages take in LMDB (keys, values, sessions)
    /// plus what waits in the overlay: what `quota_bytes` limits. It
    /// shrinks when keys are deleted, unlike the file, whose freed pages
    /// LMDB reuses.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let i = &self.inner;
        let pending = read_lock(&i.overlay).bytes as u64;
        let txn = i.env.read_txn()?;
        let mut total = pending;
        for db in [&i.data, &i.sessions, &i.meta] {
            let s = db.stat(&txn)?;
            total += (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64 * u64::from(s.page_size);
        }
        Ok(total)
    }

    /// Exactly-once sessions held (metrics): LMDB's count, corrected by the
    /// overlay's sessions added or expired since the last checkpoint.
    pub fn sessions_held(&self) -> Result<u64, StoreError> {
        let i = &self.inner;
        let overlay = read_lock(&i.overlay);
        let txn = i.env.read_txn()?;
        let mut held = i.sessions.stat(&txn)?.entries as i64;
        for (id, change) in &overlay.sessions {
            match (change.is_some(), i.sessions.get(&txn, id)?.is_some()) {
                (true, false) => held += 1,
                (false, true) => held -= 1,
                _ => {}
            }
        }
        Ok(held.max(0) as u64)
    }

    /// Bytes applied and not yet checkpointed: LMDB still has to find room
    /// for them.
    pub fn pending_bytes(&self) -> u64 {
        read_lock(&self.inner.overlay).bytes as u64
    }

    /// Writes the overlay to LMDB now (a synced commit): after it returns
    /// the store survives a power cut as it is.
    pub fn sync(&self) -> Result<(), StoreError> {
        let _writer = self.inner.lock_writer();
        self.inner.checkpoint()
    }

    /// Reads one key's newest version.
    pub fn read(&self, key: &[u8]) -> Result<Reply, StoreError> {
        self.with_layers(|l| command::read(l, key))
    }

    /// Reads one version of a key (`command::read_at`).
    pub fn read_at(&self, key: &[u8], version: i64) -> Result<Reply, StoreError> {
        self.with_layers(|l| command::read_at(l, key, version))
    }

    /// Reads the newest version at or below `version`
    /// (`command::read_at_or_before`).
    pub fn read_at_or_before(&self, key: &[u8], version: i64) -> Result<Option<Value>, StoreError> {
        self.with_layers(|l| command::read_at_or_before(l, key, version))
    }

    /// Reads a key's kept versions, newest first (`command::read_history`).
    pub fn read_history(&self, key: &[u8], limit: u32) -> Result<(Status, History), StoreError> {
        self.with_layers(|l| command::read_history(l, key, limit))
    }

    /// One page of a range: the keys in `[from, to]` (store keys) after
    /// `after` (exclusive), in order, each with its newest version (with
    /// `at`: its newest with a timestamp at most `at`; a key with none is
    /// skipped). At most `limit` keys, and no more once `max_bytes` of data
    /// are in; the flag says whether keys of the range remain.
    pub fn range(&self, page: &RangePage<'_>) -> Result<(Vec<KeyValue>, bool), StoreError> {
        use std::ops::Bound;
        let lower = match page.after {
            Some(after) if after >= page.from => Bound::Excluded(after),
            _ => Bound::Included(page.from),
        };
        let bounds = (lower, Bound::Included(page.to));
        if page.to < page.from {
            return Ok((Vec::new(), false));
        }
        let overlay = read_lock(&self.inner.overlay);
        let txn = self.inner.env.read_txn()?;
        let lmdb = self.inner.data.range(&txn, &bounds)?.map(|r| r.map_err(StoreError::from));
        let merged = Merged { lmdb: lmdb.peekable(), overlay: overlay.data.range::<[u8], _>(bounds).peekable() };
        let (mut pairs, mut bytes) = (Vec::new(), 0);
        for kv in merged {
            let (k, v) = kv?;
            if pairs.len() >= page.limit.max(1) || bytes >= page.max_bytes {
                return Ok((pairs, true));
            }
            let value = match page.at {
                None => decode_newest(v)?,
                Some(at) => match decode_history(v)?.into_iter().find(|v| v.timestamp <= at) {
                    Some(v) => v,
                    None => continue,
                },
            };
            bytes += k.len() + value.data.len();
            pairs.push((k.to_vec(), value));
        }
        Ok((pairs, false))
    }

    fn with_layers<T>(&self, read: impl FnOnce(&mut Layers<'_, '_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let overlay = read_lock(&self.inner.overlay);
        let txn = self.inner.env.read_txn()?;
        read(&mut Layers { inner: &self.inner, delta: None, overlay: &overlay, txn: &txn })
    }

    /// Starts a batch of writes; nothing is visible until `Batch::commit`.
    pub fn batch(&self) -> Result<Batch<'_>, StoreError> {
        let writer = self.inner.lock_writer();
        let txn = self.inner.env.read_txn()?;
        Ok(Batch { inner: &self.inner, _writer: writer, txn, delta: Overlay::default() })
    }

    /// Replaces the whole state (a snapshot being loaded): `fill` puts
    /// every record through the `Loader`, straight into one LMDB write
    /// transaction, committed (synced) only if it returns Ok.
    pub fn replace<T, E: From<StoreError>>(&self, fill: impl FnOnce(&mut Loader<'_>) -> Result<T, E>) -> Result<T, E> {
        let _writer = self.inner.lock_writer();
        let mut txn = self.inner.env.write_txn().map_err(StoreError::from)?;
        self.inner.clear(&mut txn)?;
        let mut loader = Loader { inner: &self.inner, txn };
        let out = fill(&mut loader)?;
        loader.txn.commit().map_err(StoreError::from)?;
        let mut overlay = self.inner.overlay.write().unwrap_or_else(|p| p.into_inner());
        *overlay = Overlay::default();
        Ok(out)
    }

    /// One consistent state: the overlay as it is and an LMDB read
    /// transaction of the same moment.
    pub fn view(&self) -> Result<View, StoreError> {
        let overlay = read_lock(&self.inner.overlay);
        let txn = self.inner.env.clone().static_read_txn()?;
        Ok(View { store: self.clone(), overlay: overlay.clone(), txn })
    }

    /// Applied state now.
    pub fn current_applied_state(&self) -> Result<(Option<LogId>, StoredMembership), StoreError> {
        self.view()?.applied_state()
    }

    /// The applied index and the digest (`digest.rs`) of the state at it,
    /// from one view: a full scan, for status checks and tests, not for
    /// the request path.
    pub fn digest(&self) -> Result<(u64, Digest), StoreError> {
        let view = self.view()?;
        let (applied, _) = view.applied_state()?;
        let mut digest = Digester::default();
        for kv in view.iter()? {
            let (k, v) = kv?;
            digest.data(k, v);
        }
        for kv in view.iter_sessions()? {
            let (k, v) = kv?;
            digest.session(k, v);
        }
        Ok((applied.map_or(0, |id| id.index), digest.finish()))
    }
}

impl Inner {
    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Empties every database and marks the store as of this format.
    fn clear(&self, txn: &mut RwTxn<'_>) -> Result<(), StoreError> {
        self.data.clear(txn)?;
        self.meta.clear(txn)?;
        self.sessions.clear(txn)?;
        self.meta.put(txn, META_FORMAT, FORMAT)?;
        Ok(())
    }

    /// Writes the overlay to LMDB in one synced commit, then clears it.
    /// The caller holds the writer lock.
    fn checkpoint(&self) -> Result<(), StoreError> {
        {
            let overlay = read_lock(&self.overlay);
            if overlay.is_empty() {
                return Ok(());
            }
            let mut txn = self.env.write_txn()?;
            for (k, v) in &overlay.data {
                match v {
                    Some(v) => self.data.put(&mut txn, k, v)?,
                    None => drop(self.data.delete(&mut txn, k)?),
                }
            }
            for (k, v) in &overlay.sessions {
                match v {
                    Some(v) => self.sessions.put(&mut txn, k, v)?,
                    None => drop(self.sessions.delete(&mut txn, k)?),
                }
            }
            if let Some(id) = &overlay.applied {
                self.meta.put(&mut txn, META_APPLIED, &encode_meta(id)?)?;
            }
            if let Some(m) = &overlay.membership {
                self.meta.put(&mut txn, META_MEMBERSHIP, &encode_meta(m)?)?;
            }
            txn.commit()?;
        }
        *self.overlay.write().unwrap_or_else(|p| p.into_inner()) = Overlay::default();
        Ok(())
    }

    fn checkpoint_due(&self) -> bool {
        let overlay = read_lock(&self.overlay);
        overlay.bytes >= self.checkpoints.bytes
            || overlay.since.is_some_and(|t| t.elapsed() >= self.checkpoints.interval)
    }
}

/// Checkpoints an overlay that waited `interval` with no apply batch to do
/// it; ends with the store.
fn spawn_checkpoint_timer(inner: Weak<Inner>) {
    let tick = Duration::from_millis(100);
    let spawned = std::thread::Builder::new().name("ringkv-checkpoint".into()).spawn(move || loop {
        std::thread::sleep(tick);
        let Some(inner) = inner.upgrade() else { break };
        if inner.checkpoint_due() {
            let _writer = inner.lock_writer();
            if let Err(e) = inner.checkpoint() {
                // The next apply batch meets the same error and stops Raft.
                tracing::error!("checkpoint failed: {e}");
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("cannot start the checkpoint thread: {e}; checkpoints happen on apply only");
    }
}

/// A consistent state (`KvStore::view`), for snapshots and digests.
pub struct View {
    store: KvStore,
    overlay: Overlay,
    txn: RoTxn<'static, WithoutTls>,
}

impl View {
    /// The last applied log id and membership.
    pub fn applied_state(&self) -> Result<(Option<LogId>, StoredMembership), StoreError> {
        let i = &self.store.inner;
        let applied = match &self.overlay.applied {
            Some(id) => Some(*id),
            None => i.meta.get(&self.txn, META_APPLIED)?.map(decode_meta).transpose()?,
        };
        let membership = match &self.overlay.membership {
            Some(m) => m.clone(),
            None => i.meta.get(&self.txn, META_MEMBERSHIP)?.map(decode_meta).transpose()?.unwrap_or_default(),
        };
        Ok((applied, membership))
    }

    /// Every key and its encoded value, in key order.
    pub fn iter(&self) -> Result<Pairs<'_>, StoreError> {
        let lmdb = self.store.inner.data.iter(&self.txn)?.map(|r| r.map_err(StoreError::from));
        Ok(Box::new(Merged { lmdb: lmdb.peekable(), overlay: self.overlay.data.iter().peekable() }))
    }

    /// Every session record (client id bytes, encoded record).
    pub fn iter_sessions(&self) -> Result<Pairs<'_>, StoreError> {
        let lmdb = self.store.inner.sessions.iter(&self.txn)?.map(|r| r.map_err(StoreError::from));
        Ok(Box::new(Merged { lmdb: lmdb.peekable(), overlay: self.overlay.sessions.iter().peekable() }))
    }
}

/// A store key and one of its versions.
pub type KeyValue = (Vec<u8>, Value);

/// What `KvStore::range` reads.
#[derive(Debug, Clone, Copy)]
pub struct RangePage<'a> {
    pub from: &'a [u8],
    pub to: &'a [u8],
    pub after: Option<&'a [u8]>,
    pub limit: usize,
    pub max_bytes: usize,
    pub at: Option<i64>,
}

/// Key-value pairs in key order, borrowed from a view.
pub type Pairs<'t> = Box<dyn Iterator<Item = Result<(&'t [u8], &'t [u8]), StoreError>> + 't>;

/// LMDB's pairs with the overlay's on top (its `None`s hide a key).
struct Merged<'t, L, O>
where
    L: Iterator<Item = Result<(&'t [u8], &'t [u8]), StoreError>>,
    O: Iterator<Item = (&'t Vec<u8>, &'t Option<Vec<u8>>)>,
{
    lmdb: Peekable<L>,
    overlay: Peekable<O>,
}

impl<'t, L, O> Iterator for Merged<'t, L, O>
where
    L: Iterator<Item = Result<(&'t [u8], &'t [u8]), StoreError>>,
    O: Iterator<Item = (&'t Vec<u8>, &'t Option<Vec<u8>>)>,
{
    type Item = Result<(&'t [u8], &'t [u8]), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let from_lmdb = match (self.lmdb.peek(), self.overlay.peek()) {
                (Some(Err(_)), _) => return self.lmdb.next(),
                (None, None) => return None,
                (Some(Ok(_)), None) => true,
                (None, Some(_)) => false,
                (Some(Ok((lk, _))), Some((ok, _))) => match (*lk).cmp(ok.as_slice()) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Equal => {
                        self.lmdb.next();
                        false
                    }
                    std::cmp::Ordering::Greater => false,
                },
            };
            if from_lmdb {
                return self.lmdb.next();
            }
            let (k, v) = self.overlay.next()?;
            if let Some(v) = v {
                return Some(Ok((k.as_slice(), v.as_slice())));
            }
        }
    }
}

/// Writes a snapshot straight into LMDB (`KvStore::replace`).
pub struct Loader<'s> {
    inner: &'s Inner,
    txn: RwTxn<'s>,
}

impl Loader<'_> {
    /// Puts an already encoded history.
    pub fn put_raw(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        decode_history(value)?;
        self.inner.data.put(&mut self.txn, key, value)?;
        Ok(())
    }

    /// Puts an already encoded session record.
    pub fn put_session_raw(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        decode_meta::<ClientRecord>(value)?;
        self.inner.sessions.put(&mut self.txn, key, value)?;
        Ok(())
    }

    pub fn set_applied(&mut self, log_id: &LogId) -> Result<(), StoreError> {
        self.inner.meta.put(&mut self.txn, META_APPLIED, &encode_meta(log_id)?)?;
        Ok(())
    }

    pub fn set_membership(&mut self, membership: &StoredMembership) -> Result<(), StoreError> {
        self.inner.meta.put(&mut self.txn, META_MEMBERSHIP, &encode_meta(membership)?)?;
        Ok(())
    }
}

/// An apply batch: its changes are kept apart until `commit` adds them to
/// the overlay at once.
pub struct Batch<'s> {
    inner: &'s Inner,
    _writer: MutexGuard<'s, ()>,
    txn: RoTxn<'s, WithoutTls>,
    delta: Overlay,
}

impl Batch<'_> {
    /// Applies one command, without a session (tests): the outcome table
    /// lives in `command::apply`.
    #[cfg(test)]
    pub fn apply(&mut self, cmd: command::Command) -> Result<Reply, StoreError> {
        command::apply(self, cmd, &command::Context::default())
    }

    /// Applies the requests of the entry at `index`, in order.
    pub fn apply_requests(&mut self, index: u64, reqs: impl Into<Arc<Vec<Request>>>) -> Result<Vec<Reply>, StoreError> {
        session::apply_all(self, index, reqs)
    }

    pub fn set_applied(&mut self, log_id: &LogId) -> Result<(), StoreError> {
        self.delta.applied = Some(*log_id);
        self.delta.note(0);
        Ok(())
    }

    pub fn set_membership(&mut self, membership: &StoredMembership) -> Result<(), StoreError> {
        self.delta.membership = Some(membership.clone());
        self.delta.note(64);
        Ok(())
    }

    /// Makes the batch visible; checkpoints when one is due.
    pub fn commit(self) -> Result<(), StoreError> {
        let Batch { inner, _writer, txn, delta } = self;
        drop(txn);
        inner.overlay.write().unwrap_or_else(|p| p.into_inner()).merge(delta);
        if inner.checkpoint_due() {
            inner.checkpoint()?;
        }
        Ok(())
    }

    fn layers(&self) -> (RwLockReadGuard<'_, Overlay>, &RoTxn<'_, WithoutTls>) {
        (read_lock(&self.inner.overlay), &self.txn)
    }

    fn lookup(&self, pick: fn(&Overlay) -> &Changes, key: &[u8]) -> Lookup {
        if let Some(v) = pick(&self.delta).get(key) {
            return Lookup::Found(v.clone());
        }
        let (overlay, _) = self.layers();
        match pick(&overlay).get(key) {
            Some(v) => Lookup::Found(v.clone()),
            None => Lookup::Below,
        }
    }
}

enum Lookup {
    Found(Option<Vec<u8>>),
    /// Not changed since the last checkpoint: LMDB has it.
    Below,
}

impl command::Store for Batch<'_> {
    type Error = StoreError;
    fn history(&mut self, key: &[u8]) -> Result<Option<History>, StoreError> {
        match self.lookup(|o| &o.data, key) {
            Lookup::Found(v) => v.as_deref().map(decode_history).transpose(),
            Lookup::Below => self.inner.data.get(&self.txn, key)?.map(decode_history).transpose(),
        }
    }
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>, StoreError> {
        match self.lookup(|o| &o.data, key) {
            Lookup::Found(v) => v.as_deref().map(decode_newest).transpose(),
            Lookup::Below => self.inner.data.get(&self.txn, key)?.map(decode_newest).transpose(),
        }
    }
    fn put_history(&mut self, key: &[u8], history: &[Value]) -> Result<(), StoreError> {
        let encoded = encode_history(history);
        self.delta.note(key.len() + encoded.len() + 64);
        self.delta.data.insert(key.to_vec(), Some(encoded));
        Ok(())
    }
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.delta.note(key.len() + 64);
        self.delta.data.insert(key.to_vec(), None);
        Ok(())
    }
}

impl SessionStore for Batch<'_> {
    fn get_client(&mut self, id: u64) -> Result<Option<ClientRecord>, StoreError> {
        let key = id.to_be_bytes();
        match self.lookup(|o| &o.sessions, &key) {
            Lookup::Found(v) => v.as_deref().map(decode_meta).transpose(),
            Lookup::Below => self.inner.sessions.get(&self.txn, &key)?.map(decode_meta).transpose(),
        }
    }
    fn put_client(&mut self, id: u64, record: &ClientRecord) -> Result<(), StoreError> {
        let bytes = encode_meta(record)?;
        self.delta.note(bytes.len() + 64);
        self.delta.sessions.insert(id.to_be_bytes().to_vec(), Some(bytes));
        Ok(())
    }
    fn expire_clients(&mut self, cutoff_ms: u64) -> Result<(), StoreError> {
        let mut expired = Vec::new();
        {
            let (overlay, txn) = self.layers();
            let lmdb = self.inner.sessions.iter(txn)?.map(|r| r.map_err(StoreError::from));
            let mut upper = overlay.sessions.clone();
            upper.extend(self.delta.sessions.clone());
            for kv in (Merged { lmdb: lmdb.peekable(), overlay: upper.iter().peekable() }) {
                let (k, v) = kv?;
                if decode_meta::<ClientRecord>(v)?.last_seen_ms < cutoff_ms {
                    expired.push(k.to_vec());
                }
            }
        }
        for k in expired {
            self.delta.note(k.len() + 64);
            self.delta.sessions.insert(k, None);
        }
        Ok(())
    }
}

/// Reads through the overlay to LMDB (`KvStore::read`).
struct Layers<'a, 't> {
    inner: &'a Inner,
    delta: Option<&'a Overlay>,
    overlay: &'a Overlay,
    txn: &'a RoTxn<'t, WithoutTls>,
}

impl Layers<'_, '_> {
    fn encoded(&self, key: &[u8]) -> Result<Option<&[u8]>, StoreError> {
        let upper = self.delta.and_then(|d| d.data.get(key)).or_else(|| self.overlay.data.get(key));
        Ok(match upper {
            Some(v) => v.as_deref(),
            None => self.inner.data.get(self.txn, key)?,
        })
    }
}

impl command::Store for Layers<'_, '_> {
    type Error = StoreError;
    fn history(&mut self, key: &[u8]) -> Result<Option<History>, StoreError> {
        self.encoded(key)?.map(decode_history).transpose()
    }
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>, StoreError> {
        self.encoded(key)?.map(decode_newest).transpose()
    }
    fn put_history(&mut self, _: &[u8], _: &[Value]) -> Result<(), StoreError> {
        unreachable!("reads never write: the read functions of command.rs only read")
    }
    fn delete(&mut self, _: &[u8]) -> Result<(), StoreError> {
        unreachable!("reads never write: the read functions of command.rs only read")
    }
}

/// Bytes before each version's data: version and timestamp (i64) and the
/// data's length (u32), big-endian.
const VERSION_HEADER: usize = 20;

/// A key's history on disk: its versions, newest first, each as version and
/// timestamp (big-endian i64), the data's length (big-endian u32), then the
/// data.
pub fn encode_history(history: &[Value]) -> Vec<u8> {
    let len = history.iter().map(|v| VERSION_HEADER + v.data.len()).sum();
    let mut out = Vec::with_capacity(len);
    for v in history {
        out.extend_from_slice(&v.version.to_be_bytes());
        out.extend_from_slice(&v.timestamp.to_be_bytes());
        // Values are at most max_value_bytes, far below 4 GiB.
        out.extend_from_slice(&(v.data.len() as u32).to_be_bytes());
        out.extend_from_slice(&v.data);
    }
    out
}

/// Decodes a whole history; it must hold at least one version.
pub fn decode_history(mut bytes: &[u8]) -> Result<History, StoreError> {
    let mut history = Vec::new();
    while !bytes.is_empty() {
        let (value, rest) = decode_one(bytes)?;
        history.push(value);
        bytes = rest;
    }
    if history.is_empty() {
        return Err(StoreError::CorruptValue("a key with no version".into()));
    }
    Ok(history)
}

/// Decodes the newest version alone (a plain read).
fn decode_newest(bytes: &[u8]) -> Result<Value, StoreError> {
    Ok(decode_one(bytes)?.0)
}

fn decode_one(bytes: &[u8]) -> Result<(Value, &[u8]), StoreError> {
    let short = || StoreError::CorruptValue(format!("a version cut short ({} bytes left)", bytes.len()));
    let header = bytes.get(..VERSION_HEADER).ok_or_else(short)?;
    let i64_at = |at: usize| i64::from_be_bytes(header[at..at + 8].try_into().unwrap_or_default());
    let len = u32::from_be_bytes(header[16..20].try_into().unwrap_or_default()) as usize;
    let data = bytes.get(VERSION_HEADER..VERSION_HEADER + len).ok_or_else(short)?;
    let value = Value { version: i64_at(0), timestamp: i64_at(8), data: data.to_vec() };
    Ok((value, &bytes[VERSION_HEADER + len..]))
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
    use crate::sm::command::{Command, Context, MemStore, Status};
    use crate::sm::session::Session;
    use rand::{Rng, SeedableRng};

    fn random_command(rng: &mut impl Rng) -> Command {
        let key = vec![rng.random_range(0..8u8)];
        let version = rng.random_range(0..4i64);
        let data = vec![rng.random::<u8>(); rng.random_range(0..4)];
        match rng.random_range(0..7) {
            0 => Command::Set { key, timestamp: 7, data },
            1 => Command::Del { key },
            2 => Command::DelVersion { key, version },
            3 => Command::Put { key, timestamp: 8, data },
            4 => Command::Trim { key, keep: rng.random_range(0..3) },
            _ => Command::TestAndSet { key, timestamp: 9, data, version },
        }
    }

    /// An empty store in a temporary directory, an empty model, and a
    /// seeded generator: what the model tests start from.
    fn fresh(seed: u64) -> (tempfile::TempDir, KvStore, MemStore, rand::rngs::StdRng) {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open(dir.path(), 1 << 26, Checkpoints::default()).unwrap().0;
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
                let want = command::apply(&mut model, cmd.clone(), &Context::default()).unwrap();
                assert_eq!(batch.apply(cmd).unwrap(), want);
            }
            batch.commit().unwrap();
        }
        for key in 0..8u8 {
            let want = command::read(&mut model, &[key]).unwrap();
            assert_eq!(store.read(&[key]).unwrap(), want);
            let want = command::read_history(&mut model, &[key], 0).unwrap();
            assert_eq!(store.read_history(&[key], 0).unwrap(), want);
            for version in 0..20 {
                let want = command::read_at(&mut model, &[key], version).unwrap();
                assert_eq!(store.read_at(&[key], version).unwrap(), want);
            }
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
            let req = Request { session, ..Request::plain(random_command(&mut rng), 1000 + index) };
            let want = session::apply(&mut model, index, req.clone()).unwrap();
            assert_eq!(batch.apply_requests(index, vec![req]).unwrap(), vec![want]);
        }
        batch.commit().unwrap();
        let mut want = Digester::default();
        for (k, v) in &model.data {
            want.data(k, &encode_history(v));
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
        let store = KvStore::open(dir.path(), 1 << 26, Checkpoints::default()).unwrap().0;
        let set = |k: u8| Command::Set { key: vec![k], timestamp: 1, data: vec![k] };
        let mut b = store.batch().unwrap();
        b.apply(set(1)).unwrap();
        b.commit().unwrap();
        let view = store.view().unwrap();
        let mut b = store.batch().unwrap();
        b.apply(set(2)).unwrap();
        b.commit().unwrap();
        store.sync().unwrap();
        assert_eq!(view.iter().unwrap().count(), 1, "a view stays the state it was, across a checkpoint");
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
            let (store, durable) = KvStore::open(dir.path(), 1 << 26, Checkpoints::default()).unwrap();
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
        let (store, durable) = KvStore::open(dir.path(), 1 << 26, Checkpoints::default()).unwrap();
        assert!(durable);
        assert_eq!(store.current_applied_state().unwrap().0, Some(log_id));
        assert_eq!(store.read(&[1]).unwrap().status, Status::Success);
        let mut txn = store.inner.env.write_txn().unwrap();
        store.inner.meta.delete(&mut txn, META_FORMAT).unwrap();
        txn.commit().unwrap();
        drop(store);
        let (store, durable) = KvStore::open(dir.path(), 1 << 26, Checkpoints::default()).unwrap();
        assert!(!durable, "an unmarked copy is not trusted");
        assert_eq!(store.current_applied_state().unwrap().0, None);
        assert_eq!(store.read(&[1]).unwrap().value, None);
    }

    /// With a checkpoint every few hundred bytes, the overlay and LMDB
    /// together answer exactly like the model, reads and a full view
    /// included, whichever layer holds a key.
    #[test]
    fn overlay_and_checkpoints_match_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let checkpoints = Checkpoints { interval: Duration::from_secs(3600), bytes: 300 };
        let store = KvStore::open(dir.path(), 1 << 26, checkpoints).unwrap().0;
        let (mut model, mut rng) = (MemStore::default(), rand::rngs::StdRng::seed_from_u64(9));
        for round in 0..60 {
            let mut batch = store.batch().unwrap();
            for _ in 0..rng.random_range(1..20) {
                let cmd = random_command(&mut rng);
                let want = command::apply(&mut model, cmd.clone(), &Context::default()).unwrap();
                assert_eq!(batch.apply(cmd).unwrap(), want, "round {round}");
            }
            batch.commit().unwrap();
            for key in 0..8u8 {
                assert_eq!(store.read(&[key]).unwrap(), command::read(&mut model, &[key]).unwrap());
            }
            let view = store.view().unwrap();
            let got: Vec<(Vec<u8>, Vec<u8>)> =
                view.iter().unwrap().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap()).collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> =
                model.data.iter().map(|(k, v)| (k.clone(), encode_history(v))).collect();
            assert_eq!(got, want, "round {round}: the merged view");
        }
    }

    /// A store dropped without a checkpoint (a crash) reopens at its last
    /// checkpoint: the applied index says where openraft replays from.
    #[test]
    fn a_crash_loses_only_what_followed_the_last_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let id = |i| LogId::new(openraft::CommittedLeaderId::new(1, 0), i);
        let slow = Checkpoints { interval: Duration::from_secs(3600), bytes: 1 << 30 };
        {
            let store = KvStore::open(dir.path(), 1 << 26, slow).unwrap().0;
            let mut b = store.batch().unwrap();
            b.apply(Command::Set { key: vec![1], timestamp: 1, data: b"kept".to_vec() }).unwrap();
            b.set_applied(&id(1)).unwrap();
            b.commit().unwrap();
            store.sync().unwrap();
            let mut b = store.batch().unwrap();
            b.apply(Command::Set { key: vec![2], timestamp: 1, data: b"replayed".to_vec() }).unwrap();
            b.set_applied(&id(2)).unwrap();
            b.commit().unwrap();
            assert_eq!(store.current_applied_state().unwrap().0, Some(id(2)));
        }
        let store = KvStore::open(dir.path(), 1 << 26, slow).unwrap().0;
        assert_eq!(store.current_applied_state().unwrap().0, Some(id(1)));
        assert_eq!(store.read(&[1]).unwrap().value.unwrap().data, b"kept");
        assert_eq!(store.read(&[2]).unwrap().value, None);
    }

    /// The timer checkpoints an overlay that waited its interval.
    #[test]
    fn an_idle_overlay_is_checkpointed_by_the_timer() {
        let dir = tempfile::tempdir().unwrap();
        let fast = Checkpoints { interval: Duration::from_millis(50), bytes: 1 << 30 };
        let store = KvStore::open(dir.path(), 1 << 26, fast).unwrap().0;
        let mut b = store.batch().unwrap();
        b.apply(Command::Set { key: vec![1], timestamp: 1, data: b"x".to_vec() }).unwrap();
        b.commit().unwrap();
        let started = Instant::now();
        while !read_lock(&store.inner.overlay).is_empty() {
            assert!(started.elapsed() < Duration::from_secs(5), "no checkpoint");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
