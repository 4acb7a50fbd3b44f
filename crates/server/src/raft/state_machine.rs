//! openraft's view of the state machine: applies committed entries to the
//! LMDB store and builds, serves and installs snapshots.
//!
//! The store is durable on its own (`sm/store.rs`): a restart opens it and
//! the log after its applied index is replayed. Snapshots are for log
//! purging, for followers too far behind, and for rebuilding a store that
//! is lost or corrupt: then the newest valid one is loaded and the log
//! replayed on top of it.
//!
//! Disk work runs in `spawn_blocking` so that no tokio worker waits on LMDB
//! or on a snapshot file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageIOError};
use tokio::sync::mpsc;

use super::types::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::broken;
use crate::disk::OsDisk;
use crate::sm::command::Reply;
use crate::sm::snapshot::{self, SnapshotError};
use crate::sm::store::{Checkpoints, KvStore, StoreError};

/// The state machine as openraft drives it.
pub struct StateMachine {
    shared: Arc<Shared>,
}

/// What the state machine and its snapshot builders share.
struct Shared {
    store: KvStore,
    dir: PathBuf,
    snapshots_kept: usize,
    /// Receives the index up to which the log may be purged after a snapshot
    /// (the oldest kept snapshot's). The server turns it into
    /// `raft.trigger().purge_log`.
    purge_tx: mpsc::UnboundedSender<u64>,
    /// The newest snapshot on disk, if any.
    current: std::sync::Mutex<Option<(SnapshotMeta, PathBuf)>>,
    progress: Arc<SnapshotProgress>,
    /// Whether `current` was read end to end (written, installed or loaded
    /// here, or verified since); false after a start that read its header.
    verified: AtomicBool,
    /// Set once openraft's first `get_current_snapshot`, at start, was
    /// answered: that one only wants the metadata (`storage/helper.rs`),
    /// and verifying a large file there would cost every restart.
    started: AtomicBool,
}

/// What the snapshot trigger (`node.rs`) weighs: the bytes of commands
/// applied since the state of the newest snapshot, and that snapshot's
/// size.
#[derive(Debug, Default)]
pub struct SnapshotProgress {
    applied_bytes: AtomicU64,
    snapshot_bytes: AtomicU64,
}

impl SnapshotProgress {
    pub fn applied_bytes(&self) -> u64 {
        self.applied_bytes.load(Ordering::Relaxed)
    }

    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes.load(Ordering::Relaxed)
    }

    /// `bytes` of what was applied are now in a snapshot.
    fn consumed(&self, bytes: u64) {
        let _ =
            self.applied_bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(bytes)));
    }
}

impl StateMachine {
    /// Opens the store in `dir/sm` as it was left. The log was purged up to
    /// `purged`: a store behind that point (or lost, or of the old
    /// unsynced format, or corrupt: moved aside as `sm.corrupt-<secs>`) is
    /// rebuilt from the newest valid snapshot, skipping corrupt ones with
    /// a warning in favour of the one before. openraft replays the log on
    /// top.
    pub fn recover(
        dir: &Path,
        lmdb_map_bytes: usize,
        checkpoints: Checkpoints,
        snapshots_kept: usize,
        purge_tx: mpsc::UnboundedSender<u64>,
        purged: u64,
    ) -> Result<Self, SnapshotError> {
        let io_err = |source| SnapshotError::Io { path: dir.to_owned(), source };
        snapshot::remove_temporaries(dir).map_err(io_err)?;
        let (store, applied) = open_store(dir, lmdb_map_bytes, checkpoints)?;
        let verified = applied.is_none_or(|index| index < purged);
        let current = match applied {
            Some(index) if index >= purged => {
                tracing::info!(index, "opened the store");
                newest_snapshot(dir, "newest", snapshot::read_meta)?
            }
            _ => {
                if let Some(index) = applied {
                    tracing::warn!(
                        index,
                        purged,
                        "the store is behind the log's first entry: rebuilding it from the newest snapshot"
                    );
                }
                newest_snapshot(dir, "loaded", |path| snapshot::load(path, &store))?
            }
        };
        let progress = Arc::new(SnapshotProgress::default());
        if let Some((_, path)) = &current {
            progress.snapshot_bytes.store(file_len(path), Ordering::Relaxed);
        }
        let current = std::sync::Mutex::new(current);
        let (verified, started) = (AtomicBool::new(verified), AtomicBool::new(false));
        let dir = dir.to_owned();
        let shared = Shared { store, dir, snapshots_kept, purge_tx, current, progress, verified, started };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// The store, for reads served after read-index.
    pub fn store(&self) -> KvStore {
        self.shared.store.clone()
    }

    /// What the snapshot trigger decides on.
    pub fn progress(&self) -> Arc<SnapshotProgress> {
        self.shared.progress.clone()
    }

    /// The log index the recovered state stands at (0 when empty).
    pub fn applied_index(&self) -> Result<u64, StoreError> {
        Ok(self.shared.store.current_applied_state()?.0.map_or(0, |id| id.index))
    }
}

/// Opens the store; `Some(applied index)` when it holds a state to go on
/// from. One that cannot be opened is moved aside and a new one made.
fn open_store(dir: &Path, map_bytes: usize, checkpoints: Checkpoints) -> Result<(KvStore, Option<u64>), SnapshotError> {
    let path = dir.join("sm");
    let opened = KvStore::open(&path, map_bytes, checkpoints).and_then(|(store, durable)| {
        let applied = if durable { Some(store.current_applied_state()?.0.map_or(0, |id| id.index)) } else { None };
        Ok((store, applied))
    });
    match opened {
        Ok(opened) => Ok(opened),
        Err(e) => {
            let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let aside = dir.join(format!("sm.corrupt-{secs}"));
            tracing::warn!(
                "the store {} is unusable ({e}): moved to {}; rebuilding it from the newest snapshot",
                path.display(),
                aside.display()
            );
            std::fs::rename(&path, &aside).map_err(|source| SnapshotError::Io { path: path.clone(), source })?;
            Ok((KvStore::open(&path, map_bytes, checkpoints)?.0, None))
        }
    }
}

/// The newest snapshot in `dir` that `take` accepts (reading its header,
/// or loading it). One it refuses is renamed `snap.X.corrupt`, kept for
/// inspection out of the way of recovery and retention, and the one
/// before it is tried.
fn newest_snapshot(
    dir: &Path,
    what: &str,
    mut take: impl FnMut(&Path) -> Result<SnapshotMeta, SnapshotError>,
) -> Result<Option<(SnapshotMeta, PathBuf)>, SnapshotError> {
    let io_err = |source| SnapshotError::Io { path: dir.to_owned(), source };
    for file in snapshot::list(dir).map_err(io_err)?.into_iter().rev() {
        match take(&file.path) {
            Ok(meta) => {
                tracing::info!(path = %file.path.display(), index = file.index, "{what} snapshot");
                return Ok(Some((meta, file.path)));
            }
            Err(SnapshotError::Store(e)) => return Err(SnapshotError::Store(e)),
            Err(e) => set_aside(&file.path, file.index, &e).map_err(io_err)?,
        }
    }
    Ok(None)
}

fn set_aside(path: &Path, index: u64, why: &SnapshotError) -> io::Result<()> {
    let aside = path.with_extension(format!("{index:020}.corrupt"));
    tracing::warn!("skipping snapshot: {why}; moved to {}", aside.display());
    std::fs::rename(path, &aside)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

impl Shared {
    fn current_meta(&self) -> Option<(SnapshotMeta, PathBuf)> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a new snapshot as current, drops old ones and lets the log
    /// before the oldest kept one go.
    fn adopt(&self, meta: SnapshotMeta, path: PathBuf) -> io::Result<()> {
        self.progress.snapshot_bytes.store(file_len(&path), Ordering::Relaxed);
        self.verified.store(true, Ordering::Relaxed);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((meta, path));
        if let Some(oldest) = snapshot::retain(&OsDisk, &self.dir, self.snapshots_kept)? {
            // The receiver lives as long as the server; if it is gone the
            // server is stopping and there is nothing left to purge.
            let _ = self.purge_tx.send(oldest);
        }
        Ok(())
    }

    fn build(&self) -> Result<(SnapshotMeta, PathBuf), SnapshotError> {
        let consumed = self.progress.applied_bytes();
        let view = self.store.view()?;
        let (last_log_id, last_membership) = view.applied_state()?;
        if let Some((meta, path)) = self.current_meta().filter(|(m, _)| m.last_log_id == last_log_id) {
            self.progress.consumed(consumed);
            return Ok((meta, path));
        }
        // The log up to this state may go once the snapshot is kept: the
        // store must hold it durably first (a checkpoint now).
        self.store.sync()?;
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id: snapshot_id(last_log_id) };
        let path = snapshot::write(&OsDisk, &self.dir, &view, &meta)?;
        drop(view);
        self.progress.consumed(consumed);
        self.adopt(meta.clone(), path.clone())
            .map_err(|source| SnapshotError::Io { path: self.dir.clone(), source })?;
        Ok((meta, path))
    }

    /// The newest snapshot, checked end to end before it leaves for a
    /// follower (at start only its header was read): a corrupt one is set
    /// aside and a new one built from the store.
    fn checked_current(&self) -> Result<Option<(SnapshotMeta, PathBuf)>, SnapshotError> {
        let Some((meta, path)) = self.current_meta() else {
            return Ok(None);
        };
        let at_start = !self.started.swap(true, Ordering::Relaxed);
        if at_start || self.verified.load(Ordering::Relaxed) {
            return Ok(Some((meta, path)));
        }
        match snapshot::verify(&path) {
            Ok(_) => {
                self.verified.store(true, Ordering::Relaxed);
                Ok(Some((meta, path)))
            }
            Err(e) => {
                let io_err = |source| SnapshotError::Io { path: path.clone(), source };
                set_aside(&path, snapshot::meta_index(&meta), &e).map_err(io_err)?;
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
                self.build().map(Some)
            }
        }
    }

    fn install(&self, meta: &SnapshotMeta, mut received: std::fs::File) -> Result<(), SnapshotError> {
        use std::io::{Seek, SeekFrom};
        let name = snapshot::file_name(snapshot::meta_index(meta));
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let io_err = |source| SnapshotError::Io { path: tmp.clone(), source };
        received.seek(SeekFrom::Start(0)).map_err(io_err)?;
        let mut out = std::fs::File::create(&tmp).map_err(io_err)?;
        io::copy(&mut received, &mut out).map_err(io_err)?;
        out.sync_all().map_err(io_err)?;
        snapshot::verify(&tmp)?;
        std::fs::rename(&tmp, &path).map_err(io_err)?;
        snapshot::sync_dir(&self.dir).map_err(io_err)?;
        let loaded = snapshot::load(&path, &self.store)?;
        self.progress.consumed(u64::MAX);
        tracing::info!(index = snapshot::meta_index(&loaded), "installed snapshot from the leader");
        self.adopt(loaded, path).map_err(io_err)?;
        Ok(())
    }
}

/// Unique per snapshot build: the index plus the wall clock, so that a
/// re-built snapshot at the same index is told apart during transfer.
fn snapshot_id(last: Option<LogId>) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", last.map_or(0, |id| id.index))
}

fn store_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&e)).into()
}

fn snapshot_err(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(&e)).into()
}

fn join_err(e: tokio::task::JoinError) -> StorageError {
    store_err(ErrorVerb::Write, e)
}

/// Applies a batch in one LMDB transaction and answers each entry.
fn apply_batch(shared: &Shared, entries: Vec<Entry>) -> Result<Vec<Vec<Reply>>, StoreError> {
    let mut batch = shared.store.batch()?;
    let mut replies = Vec::with_capacity(entries.len());
    let mut bytes = 0;
    for entry in entries {
        batch.set_applied(&entry.log_id)?;
        let reply = match entry.payload {
            EntryPayload::Normal(_) if broken::skips_replay(entry.log_id.index) => Vec::new(),
            EntryPayload::Normal(p) => {
                bytes += p.0.iter().map(|r| r.cmd.weight()).sum::<u64>();
                batch.apply_requests(entry.log_id.index, p.0)?
            }
            EntryPayload::Membership(m) => {
                batch.set_membership(&StoredMembership::new(Some(entry.log_id), m))?;
                Vec::new()
            }
            EntryPayload::Blank => Vec::new(),
        };
        replies.push(reply);
    }
    batch.commit()?;
    shared.progress.applied_bytes.fetch_add(bytes, Ordering::Relaxed);
    Ok(replies)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.shared.store.current_applied_state().map_err(|e| store_err(ErrorVerb::Read, e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Reply>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || apply_batch(&shared, entries))
            .await
            .map_err(join_err)?
            .map_err(|e| store_err(ErrorVerb::Write, e))
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        // An unnamed file: nothing to clean up if the transfer is abandoned.
        let file = tempfile::tempfile_in(&self.shared.dir).map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
        Ok(Box::new(tokio::fs::File::from_std(file)))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let received = snapshot.into_std().await;
        let shared = self.shared.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || shared.install(&meta, received))
            .await
            .map_err(join_err)?
            .map_err(|e| snapshot_err(ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let shared = self.shared.clone();
        let checked = tokio::task::spawn_blocking(move || shared.checked_current())
            .await
            .map_err(join_err)?
            .map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        let Some((meta, path)) = checked else {
            return Ok(None);
        };
        let file = tokio::fs::File::open(&path).await.map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }
}

/// Builds a snapshot from one LMDB read transaction, off the apply path.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let shared = self.shared.clone();
        let (meta, path) = tokio::task::spawn_blocking(move || shared.build())
            .await
            .map_err(join_err)?
            .map_err(|e| snapshot_err(ErrorVerb::Write, e))?;
        tracing::info!(index = snapshot::meta_index(&meta), path = %path.display(), "snapshot written");
        let file = tokio::fs::File::open(&path).await.map_err(|e| snapshot_err(ErrorVerb::Read, e))?;
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}
