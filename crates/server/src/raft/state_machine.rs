//! openraft's view of the state machine: applies committed entries to the
//! LMDB store and builds, serves and installs snapshots.
//!
//! Disk work runs in `spawn_blocking` so that no tokio worker waits on LMDB
//! or on a snapshot file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, StorageIOError};
use tokio::sync::mpsc;

use super::types::{Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use crate::sm::command::Reply;
use crate::sm::snapshot::{self, SnapshotError};
use crate::sm::store::{KvStore, StoreError};

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
}

impl StateMachine {
    /// Rebuilds the store in `dir/sm` from the newest valid snapshot in
    /// `dir` (the log is replayed on top by openraft). A corrupt snapshot is
    /// skipped with a warning in favour of the one before it.
    pub fn recover(
        dir: &Path,
        lmdb_map_bytes: usize,
        snapshots_kept: usize,
        purge_tx: mpsc::UnboundedSender<u64>,
    ) -> Result<Self, SnapshotError> {
        let io_err = |source| SnapshotError::Io { path: dir.to_owned(), source };
        snapshot::remove_temporaries(dir).map_err(io_err)?;
        let store = KvStore::open_fresh(&dir.join("sm"), lmdb_map_bytes)?;
        let mut current = None;
        for file in snapshot::list(dir).map_err(io_err)?.into_iter().rev() {
            match snapshot::load(&file.path, &store) {
                Ok(meta) => {
                    tracing::info!(path = %file.path.display(), index = file.index, "loaded snapshot");
                    current = Some((meta, file.path));
                    break;
                }
                Err(e) => {
                    // Keep the file for inspection, out of the way of
                    // recovery and retention.
                    let aside = file.path.with_extension(format!("{:020}.corrupt", file.index));
                    tracing::warn!("skipping snapshot: {e}; moved to {}", aside.display());
                    std::fs::rename(&file.path, &aside).map_err(io_err)?;
                }
            }
        }
        let shared =
            Shared { store, dir: dir.to_owned(), snapshots_kept, purge_tx, current: std::sync::Mutex::new(current) };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// The store, for reads served after read-index.
    pub fn store(&self) -> KvStore {
        self.shared.store.clone()
    }

    /// The log index of the newest snapshot on disk (0 when none).
    pub fn snapshot_index(&self) -> u64 {
        self.shared.current_meta().map_or(0, |(m, _)| snapshot::meta_index(&m))
    }
}

impl Shared {
    fn current_meta(&self) -> Option<(SnapshotMeta, PathBuf)> {
        self.current.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a new snapshot as current, drops old ones and lets the log
    /// before the oldest kept one go.
    fn adopt(&self, meta: SnapshotMeta, path: PathBuf) -> io::Result<()> {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some((meta, path));
        if let Some(oldest) = snapshot::retain(&self.dir, self.snapshots_kept)? {
            // The receiver lives as long as the server; if it is gone the
            // server is stopping and there is nothing left to purge.
            let _ = self.purge_tx.send(oldest);
        }
        Ok(())
    }

    fn build(&self) -> Result<(SnapshotMeta, PathBuf), SnapshotError> {
        let txn = self.store.read_owned()?;
        let (last_log_id, last_membership) = self.store.applied_state(&txn)?;
        let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id: snapshot_id(last_log_id) };
        let path = snapshot::write(&self.dir, &self.store, &txn, &meta)?;
        drop(txn);
        self.adopt(meta.clone(), path.clone())
            .map_err(|source| SnapshotError::Io { path: self.dir.clone(), source })?;
        Ok((meta, path))
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
fn apply_batch(store: &KvStore, entries: Vec<Entry>) -> Result<Vec<Vec<Reply>>, StoreError> {
    let mut batch = store.batch()?;
    let mut replies = Vec::with_capacity(entries.len());
    for entry in entries {
        batch.set_applied(&entry.log_id)?;
        let reply = match entry.payload {
            EntryPayload::Normal(p) => batch.apply_requests(entry.log_id.index, p.0)?,
            EntryPayload::Membership(m) => {
                batch.set_membership(&StoredMembership::new(Some(entry.log_id), m))?;
                Vec::new()
            }
            EntryPayload::Blank => Vec::new(),
        };
        replies.push(reply);
    }
    batch.commit()?;
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
        let store = self.shared.store.clone();
        tokio::task::spawn_blocking(move || apply_batch(&store, entries))
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
        let Some((meta, path)) = self.shared.current_meta() else {
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
