//! The Raft log on disk: an append-only, checksummed, segmented file set.
//!
//! Why this shape:
//! - **Append-only segments** (`log.<first index, 20 digits>`): appends are
//!   sequential writes, purging deletes whole files, and truncation (rare,
//!   only of uncommitted entries) cuts one file and deletes later ones.
//! - **Checksummed records** (`record.rs`): a crash can tear the last write;
//!   recovery (`segment.rs`) cuts such a tail away, while damage anywhere
//!   else stops startup with the file and offset rather than serving a log
//!   that silently lost entries.
//! - **Group commit** (`writer.rs`): one thread owns the files and does one
//!   fsync per batch of whatever is pending, then acknowledges every append
//!   in the batch; `append` itself never waits for the disk.
//! - **In-memory index and cache** (`state.rs`): every live entry's location
//!   is known, recent entries are kept decoded (bounded by
//!   [`LogOptions::cache_bytes`]), older ones are read back with positional
//!   reads on the blocking pool (`storage.rs`).
//! - **Meta file** (`meta.rs`): vote, committed and purge point, replaced
//!   atomically by rename.
//!
//! Everything else in the directory (snapshots `snap.*`, the LMDB `sm/`) is
//! not ours and is never touched.

mod meta;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod power_cut_tests;
mod record;
mod segment;
mod state;
mod storage;
#[cfg(test)]
mod tests;
mod writer;

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

pub use meta::LogMeta;

use crate::disk::{Disk, OsDisk};
use crate::raft::types::{Entry, LogId};
use state::Shared;
use writer::{Op, Writer};

/// Sizing of the log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// A segment file is closed and a new one started once it reaches this
    /// size (a segment holds at least one entry, so it may exceed it by one).
    pub segment_bytes: u64,
    /// Budget for decoded recent entries kept in memory (entries not yet
    /// written are kept regardless).
    pub cache_bytes: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { segment_bytes: 64 << 20, cache_bytes: 64 << 20 }
    }
}

/// Why the log cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("log I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A file holds something recovery cannot accept.
    #[error("log corrupt: {path} at offset {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    /// The writer thread could not be started.
    #[error("cannot start the log writer thread: {0}")]
    Spawn(io::Error),
}

/// The Raft log of one replica (see the module doc). Cheap to clone: the
/// clones share the files, the index and the writer thread, which stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    shared: Arc<Mutex<Shared>>,
    tx: Option<mpsc::Sender<Op>>,
    thread: Option<JoinHandle<()>>,
    /// The writer's fsync counter (read by tests).
    #[cfg_attr(not(test), allow(dead_code))]
    fsyncs: Arc<AtomicU64>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer finish its batch and persist
        // a pending committed log id before it exits.
        self.tx.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Locks the shared state. A panic while holding it cannot leave it half
/// updated in a way that matters more than the panic itself, so poisoning
/// is ignored.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogStore {
    /// Opens (creating if absent) the log in `dir`, recovering what is
    /// there: a torn last record is cut away with a warning, any other
    /// damage is an error naming the file and offset. Blocking; call before
    /// the runtime serves.
    pub fn open(dir: &Path, opts: LogOptions) -> Result<LogStore, LogError> {
        Self::open_on(Arc::new(OsDisk), dir, opts)
    }

    /// `open`, writing through `disk` (tests put a recorder there).
    fn open_on(disk: Arc<dyn Disk>, dir: &Path, opts: LogOptions) -> Result<LogStore, LogError> {
        fs::create_dir_all(dir).map_err(|source| LogError::Io { path: dir.to_owned(), source })?;
        let mut tail: VecDeque<(Entry, usize)> = VecDeque::new();
        let mut tail_bytes = 0usize;
        let rec = segment::recover(dir, false, &mut |entry, bytes| {
            tail.push_back((entry, bytes));
            tail_bytes += bytes;
            while tail_bytes > opts.cache_bytes {
                match tail.pop_front() {
                    Some((_, b)) => tail_bytes -= b,
                    None => break,
                }
            }
        })?;
        let fsyncs = Arc::new(AtomicU64::new(0));
        segment::apply_repairs(disk.as_ref(), dir, &rec.repairs, &fsyncs)?;

        let mut shared = Shared::new(opts.segment_bytes, opts.cache_bytes, &rec.segments, rec.first_live, rec.slots);
        shared.vote = rec.meta.vote;
        shared.committed = rec.meta.committed;
        shared.last_purged = rec.meta.last_purged;
        for (entry, bytes) in tail {
            shared.cache_recovered(entry, bytes);
        }
        let shared = Arc::new(Mutex::new(shared));
        let (tx, rx) = mpsc::channel();
        let thread = Writer::new(disk, dir.to_owned(), rec.meta, shared.clone(), fsyncs.clone())
            .spawn(rx)
            .map_err(LogError::Spawn)?;
        Ok(LogStore {
            inner: Arc::new(Inner { dir: dir.to_owned(), shared, tx: Some(tx), thread: Some(thread), fsyncs }),
        })
    }

    /// Last log id and last purged log id, for status displays.
    pub fn state(&self) -> (Option<LogId>, Option<LogId>) {
        let s = lock(&self.inner.shared);
        (s.last_log_id(), s.last_purged)
    }

    /// Segment files, their bytes and the committed log id, for metrics.
    pub fn usage(&self) -> LogUsage {
        let s = lock(&self.inner.shared);
        LogUsage {
            segments: s.segments.len() as u64,
            bytes: s.segments.values().map(|info| info.size).sum(),
            committed: s.committed,
        }
    }

    /// Hands `op` to the writer. Called with the shared state locked, so
    /// the writer sees operations in the order they were planned.
    fn send(&self, _locked: &MutexGuard<'_, Shared>, op: Op) -> Result<(), String> {
        match &self.inner.tx {
            Some(tx) => tx.send(op).map_err(|_| "the log writer thread has stopped".to_string()),
            None => Err("the log is closed".into()),
        }
    }

    /// Fsyncs done so far (segments, directory and meta), for tests.
    #[cfg(test)]
    fn fsyncs(&self) -> u64 {
        self.inner.fsyncs.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What the log holds now (`LogStore::usage`).
#[derive(Debug, Clone, Copy)]
pub struct LogUsage {
    pub segments: u64,
    pub bytes: u64,
    /// The last committed log id openraft told the log (`save_committed`).
    pub committed: Option<LogId>,
}

/// Reads the log in `dir` without modifying anything, for `ringkv verify`:
/// every live entry in index order, and the meta. Applies the recovery
/// rules of [`LogStore::open`] (a torn tail is ignored, other damage is an
/// error).
pub fn read_dir_offline(dir: &Path) -> Result<(LogMeta, Vec<Entry>), LogError> {
    let mut entries = Vec::new();
    let rec = segment::recover(dir, true, &mut |entry, _| entries.push(entry))?;
    Ok((rec.meta, entries))
}
