//! The group-commit writer: one thread owns every write to the log files.
//!
//! Operations arrive over a channel in the order openraft issued them. The
//! thread takes everything pending as one batch, carries it out in order,
//! does one `fdatasync` per written segment for the whole batch, and only
//! then reports each append as flushed. Many appends thus share one fsync,
//! and "acknowledged" always means "on disk". Truncation, purge and vote
//! are made durable at their place in the batch, so a crash leaves the files
//! as some prefix of the operation sequence. After any I/O error the writer
//! fails everything that follows: the disk state is unknown, and openraft
//! stops the node on a storage error.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::meta::{self, LogMeta};
use super::record::segment_path;
use super::state::{Chunk, TruncatePlan};
use super::{lock, Shared};
use crate::disk::{Disk, DiskFile};
use crate::raft::types::{LogFlushed, LogId, Vote};

/// How long a new committed log id may wait to be written on its own.
const COMMITTED_DELAY: Duration = Duration::from_millis(100);
/// Most operations taken into one batch.
const MAX_BATCH: usize = 4096;

/// The writer's answer to a caller that waits.
pub(super) type Reply = oneshot::Sender<Result<(), String>>;

/// One request to the writer; `seq` orders it against the cache.
pub(super) enum Op {
    Append {
        seq: u64,
        chunks: Vec<Chunk>,
        callback: LogFlushed,
    },
    Truncate {
        seq: u64,
        plan: TruncatePlan,
        reply: Reply,
    },
    Purge {
        seq: u64,
        purged: LogId,
        delete: Vec<u64>,
        reply: Reply,
    },
    SaveVote {
        seq: u64,
        vote: Vote,
        reply: Reply,
    },
    SaveCommitted {
        seq: u64,
        committed: Option<LogId>,
    },
    /// Tests: hold the writer until the sender side says go (or is dropped).
    #[cfg(test)]
    Pause(std::sync::mpsc::Receiver<()>),
}

/// The writer thread's state.
pub(super) struct Writer {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    meta: LogMeta,
    /// `committed` changed and is not on disk yet, since then.
    meta_dirty_since: Option<Instant>,
    /// Open write handles by segment.
    files: HashMap<u64, Box<dyn DiskFile>>,
    /// Segments written since their last fsync.
    dirty: BTreeSet<u64>,
    /// Segments created since the last directory fsync.
    dir_dirty: bool,
    shared: Arc<Mutex<Shared>>,
    fsyncs: Arc<AtomicU64>,
    failed: Option<String>,
}

impl Writer {
    /// A writer for `dir`, whose meta file holds `meta`.
    pub fn new(
        disk: Arc<dyn Disk>,
        dir: PathBuf,
        meta: LogMeta,
        shared: Arc<Mutex<Shared>>,
        fsyncs: Arc<AtomicU64>,
    ) -> Writer {
        Writer {
            disk,
            dir,
            meta,
            meta_dirty_since: None,
            files: HashMap::new(),
            dirty: BTreeSet::new(),
            dir_dirty: false,
            shared,
            fsyncs,
            failed: None,
        }
    }

    /// Starts the thread; it ends when every sender is dropped.
    pub fn spawn(self, rx: Receiver<Op>) -> io::Result<JoinHandle<()>> {
        thread::Builder::new().name("ringkv-log-writer".into()).spawn(move || self.run(rx))
    }

    fn run(mut self, rx: Receiver<Op>) {
        loop {
            let first = match self.meta_dirty_since {
                Some(since) => match rx.recv_timeout(COMMITTED_DELAY.saturating_sub(since.elapsed())) {
                    Ok(op) => op,
                    Err(RecvTimeoutError::Timeout) => {
                        self.flush_committed(true);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(op) => op,
                    Err(_) => break,
                },
            };
            #[cfg(test)]
            if let Op::Pause(gate) = &first {
                let _ = gate.recv();
            }
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
        self.flush_committed(true);
    }

    /// Carries out a batch, syncs once, then answers every operation in it.
    fn process(&mut self, batch: Vec<Op>) {
        let mut result: io::Result<()> = match &self.failed {
            Some(msg) => Err(io::Error::other(format!("log writer failed earlier: {msg}"))),
            None => Ok(()),
        };
        let mut callbacks = Vec::new();
        let mut replies = Vec::new();
        let mut max_seq = 0;
        for op in batch {
            let step = match op {
                Op::Append { seq, chunks, callback } => {
                    max_seq = max_seq.max(seq);
                    callbacks.push(callback);
                    result.is_ok().then(|| self.append(&chunks))
                }
                Op::Truncate { seq, plan, reply } => {
                    max_seq = max_seq.max(seq);
                    replies.push(reply);
                    result.is_ok().then(|| self.truncate(&plan))
                }
                Op::Purge { seq, purged, delete, reply } => {
                    max_seq = max_seq.max(seq);
                    replies.push(reply);
                    result.is_ok().then(|| self.purge(purged, &delete))
                }
                Op::SaveVote { seq, vote, reply } => {
                    max_seq = max_seq.max(seq);
                    replies.push(reply);
                    result.is_ok().then(|| self.save_vote(vote))
                }
                Op::SaveCommitted { seq, committed } => {
                    max_seq = max_seq.max(seq);
                    self.meta.committed = committed;
                    self.meta_dirty_since.get_or_insert_with(Instant::now);
                    None
                }
                #[cfg(test)]
                Op::Pause(_) => None,
            };
            if let Some(Err(e)) = step {
                result = Err(e);
            }
        }
        if result.is_ok() {
            result = self.sync_segments();
        }
        if result.is_ok() {
            self.flush_committed(false);
        }
        match &result {
            Ok(()) => lock(&self.shared).mark_written(max_seq),
            Err(e) => self.fail(e),
        }
        for callback in callbacks {
            callback.log_io_completed(result.as_ref().map(|_| ()).map_err(|e| io::Error::new(e.kind(), e.to_string())));
        }
        for reply in replies {
            let _ = reply.send(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
    }

    fn append(&mut self, chunks: &[Chunk]) -> io::Result<()> {
        for chunk in chunks {
            let create = chunk.offset == 0;
            let file = self.file(chunk.seg, create)?;
            file.write_at(&chunk.bytes, chunk.offset)?;
            crate::metrics::get().log_appended(chunk.bytes.len());
            self.dirty.insert(chunk.seg);
            self.dir_dirty |= create;
        }
        Ok(())
    }

    /// Deletes later segments (last first), then cuts the holder, durably
    /// before anything is written over the cut.
    fn truncate(&mut self, plan: &TruncatePlan) -> io::Result<()> {
        for seg in &plan.delete {
            self.remove_segment(*seg)?;
        }
        if !plan.delete.is_empty() {
            meta::sync_dir(self.disk.as_ref(), &self.dir, &self.fsyncs)?;
        }
        if let Some((seg, len)) = plan.cut {
            let file = self.file(seg, false)?;
            file.set_len(len)?;
            file.sync_all()?;
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.dirty.remove(&seg);
        }
        Ok(())
    }

    /// Records the purge point durably, then deletes the segments it frees
    /// (first first).
    fn purge(&mut self, purged: LogId, delete: &[u64]) -> io::Result<()> {
        if self.meta.last_purged.is_none_or(|old| old.index < purged.index) {
            self.meta.last_purged = Some(purged);
        }
        self.write_meta()?;
        for seg in delete {
            self.remove_segment(*seg)?;
        }
        if !delete.is_empty() {
            meta::sync_dir(self.disk.as_ref(), &self.dir, &self.fsyncs)?;
        }
        Ok(())
    }

    fn save_vote(&mut self, vote: Vote) -> io::Result<()> {
        self.meta.vote = Some(vote);
        self.write_meta()
    }

    /// Makes earlier appends durable, then the meta file: the meta never
    /// gets ahead of the log (a committed id past the durable entries).
    fn write_meta(&mut self) -> io::Result<()> {
        self.sync_segments()?;
        meta::write(self.disk.as_ref(), &self.dir, &self.meta, &self.fsyncs)?;
        self.meta_dirty_since = None;
        Ok(())
    }

    /// Writes a pending committed log id if it has waited long enough (or
    /// `now`).
    fn flush_committed(&mut self, now: bool) {
        let Some(since) = self.meta_dirty_since else { return };
        if self.failed.is_some() || (!now && since.elapsed() < COMMITTED_DELAY) {
            return;
        }
        if let Err(e) = self.write_meta() {
            self.meta_dirty_since = None;
            self.fail(&e);
        }
    }

    /// Refuses everything from now on.
    fn fail(&mut self, e: &io::Error) {
        if self.failed.is_none() {
            tracing::error!("log writer: {e}; failing all further log writes");
            self.failed = Some(e.to_string());
            lock(&self.shared).failed = Some(e.to_string());
        }
    }

    /// One fsync per written segment, then the directory if it changed.
    fn sync_segments(&mut self) -> io::Result<()> {
        while let Some(seg) = self.dirty.pop_first() {
            if let Some(file) = self.files.get(&seg) {
                let started = Instant::now();
                crate::broken::fsync_error(&self.dir)?;
                file.sync_data()?;
                crate::metrics::get().log_fsynced(started.elapsed());
                self.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
        }
        if self.dir_dirty {
            meta::sync_dir(self.disk.as_ref(), &self.dir, &self.fsyncs)?;
            self.dir_dirty = false;
        }
        // Only the newest segment is written to again.
        if let Some(&newest) = self.files.keys().max() {
            self.files.retain(|seg, _| *seg == newest);
        }
        Ok(())
    }

    fn file(&mut self, seg: u64, create: bool) -> io::Result<&dyn DiskFile> {
        if !self.files.contains_key(&seg) || create {
            let file = self.disk.open(&segment_path(&self.dir, seg), create)?;
            self.files.insert(seg, file);
        }
        self.files.get(&seg).map(|f| f.as_ref()).ok_or_else(|| io::Error::other("segment handle vanished"))
    }

    fn remove_segment(&mut self, seg: u64) -> io::Result<()> {
        self.files.remove(&seg);
        self.dirty.remove(&seg);
        self.disk.remove(&segment_path(&self.dir, seg))
    }
}
