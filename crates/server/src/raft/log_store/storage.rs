//! The openraft traits: reads (cache, else positional reads on the blocking
//! pool) and the write operations, which are planned under the mutex and
//! handed to the writer thread (see `state.rs` and `writer.rs`).
//!
//! No `std::sync::Mutex` guard is ever held across an `.await`.

use std::fmt::Debug;
use std::fs::File;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use openraft::storage::{LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use tokio::sync::oneshot;

use super::record::{self, segment_path, RECORD_HEADER_LEN};
use super::state::{Miss, Wanted};
use super::writer::{Op, Reply};
use super::{lock, Inner, LogStore};
use crate::raft::types::{Entry, LogFlushed, LogId, StorageError, TypeConfig, Vote};

/// A run of disk reads is split at this many bytes.
const MAX_READ_SPAN: u64 = 8 << 20;

fn io_error(subject: ErrorSubject<u64>, verb: ErrorVerb, msg: impl ToString) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::error(msg)).into()
}

impl LogStore {
    /// Entries in `[start, end)` that exist, in order.
    async fn read_range(&self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        let mut attempt = 0;
        loop {
            let plan = lock(&self.inner.shared).plan_read(start, end);
            let misses: Vec<Miss> =
                plan.iter().filter_map(|w| if let Wanted::Miss(m) = w { Some(m.clone()) } else { None }).collect();
            if misses.is_empty() {
                return Ok(plan
                    .into_iter()
                    .filter_map(|w| if let Wanted::Hit(e) = w { Some(e) } else { None })
                    .collect());
            }
            let inner = self.inner.clone();
            let wanted = misses.clone();
            let read = tokio::task::spawn_blocking(move || inner.read_from_disk(&wanted))
                .await
                .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            match read {
                Ok(from_disk) => {
                    let mut from_disk = from_disk.into_iter();
                    let mut out = Vec::with_capacity(plan.len());
                    for w in plan {
                        match w {
                            Wanted::Hit(e) => out.push(e),
                            Wanted::Miss(_) => out.extend(from_disk.next()),
                        }
                    }
                    return Ok(out);
                }
                Err(e) => {
                    // A truncation or purge may have moved the entries while
                    // we read; only an unchanged plan means the disk is bad.
                    attempt += 1;
                    let again = lock(&self.inner.shared).plan_read(start, end);
                    let still: Vec<&Miss> =
                        again.iter().filter_map(|w| if let Wanted::Miss(m) = w { Some(m) } else { None }).collect();
                    if attempt >= 3 || still.len() == misses.len() && still.iter().zip(&misses).all(|(a, b)| *a == b) {
                        return Err(io_error(ErrorSubject::Logs, ErrorVerb::Read, e));
                    }
                }
            }
        }
    }

    /// Hands a write operation to the writer and waits for it to be durable.
    async fn submit_and_wait(
        &self,
        make: impl FnOnce(&mut super::Shared, u64, Reply) -> Option<Op>,
        subject: ErrorSubject<u64>,
    ) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = lock(&self.inner.shared);
            if let Some(msg) = &s.failed {
                return Err(io_error(subject, ErrorVerb::Write, format!("log writer failed: {msg}")));
            }
            let seq = s.next_seq();
            let Some(op) = make(&mut s, seq, tx) else { return Ok(()) };
            self.send(&s, op).map_err(|e| io_error(subject.clone(), ErrorVerb::Write, e))?;
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io_error(subject, ErrorVerb::Write, e)),
            Err(_) => Err(io_error(subject, ErrorVerb::Write, "the log writer thread has stopped")),
        }
    }
}

impl Inner {
    /// Reads and checks the records of `misses` (blocking).
    fn read_from_disk(&self, misses: &[Miss]) -> Result<Vec<Entry>, String> {
        let mut out = Vec::with_capacity(misses.len());
        let mut i = 0;
        while i < misses.len() {
            let first = &misses[i];
            let start = first.slot.offset;
            let mut end = start + RECORD_HEADER_LEN + u64::from(first.slot.len);
            let mut j = i + 1;
            while let Some(m) = misses.get(j) {
                if m.seg != first.seg || m.gen != first.gen || m.slot.offset != end || end - start >= MAX_READ_SPAN {
                    break;
                }
                end += RECORD_HEADER_LEN + u64::from(m.slot.len);
                j += 1;
            }
            let path = segment_path(&self.dir, first.seg);
            let file = self.handle(first.seg, first.gen).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut buf = vec![0u8; (end - start) as usize];
            file.read_exact_at(&mut buf, start).map_err(|e| format!("{} at offset {start}: {e}", path.display()))?;
            for m in &misses[i..j] {
                let from = (m.slot.offset - start) as usize;
                let to = from + RECORD_HEADER_LEN as usize + m.slot.len as usize;
                let entry = record::decode_record(&buf[from..to], m.slot.len)
                    .map_err(|e| format!("log corrupt: {} at offset {}: {e}", path.display(), m.slot.offset))?;
                if entry.log_id != m.slot.log_id {
                    return Err(format!(
                        "log corrupt: {} at offset {}: entry {} where {} was expected",
                        path.display(),
                        m.slot.offset,
                        entry.log_id,
                        m.slot.log_id
                    ));
                }
                out.push(entry);
            }
            i = j;
        }
        Ok(out)
    }

    /// A read handle on segment `seg` of generation `gen`.
    fn handle(&self, seg: u64, gen: u64) -> io::Result<Arc<File>> {
        if let Some((g, f)) = lock(&self.shared).handles.get(&seg) {
            if *g == gen {
                return Ok(f.clone());
            }
        }
        let file = Arc::new(File::open(segment_path(&self.dir, seg))?);
        let mut s = lock(&self.shared);
        if s.segments.get(&seg).is_some_and(|info| info.gen == gen) {
            s.handles.insert(seg, (gen, file.clone()));
        }
        Ok(file)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => u64::MAX,
        };
        self.read_range(start, end).await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let s = lock(&self.inner.shared);
        Ok(LogState { last_purged_log_id: s.last_purged, last_log_id: s.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.submit_and_wait(
            |s, seq, reply| {
                s.vote = Some(vote);
                Some(Op::SaveVote { seq, vote, reply })
            },
            ErrorSubject::Vote,
        )
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.inner.shared).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let mut s = lock(&self.inner.shared);
        s.committed = committed;
        let seq = s.next_seq();
        self.send(&s, Op::SaveCommitted { seq, committed })
            .map_err(|e| io_error(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(lock(&self.inner.shared).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut records = Vec::new();
        for entry in entries {
            let rec =
                record::encode(&entry).map_err(|e| io_error(ErrorSubject::Log(entry.log_id), ErrorVerb::Write, e))?;
            records.push((entry, rec));
        }
        let mut s = lock(&self.inner.shared);
        if let Some(msg) = &s.failed {
            return Err(io_error(ErrorSubject::Logs, ErrorVerb::Write, format!("log writer failed: {msg}")));
        }
        let seq = s.next_seq();
        let chunks = s.plan_append(records, seq).map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        self.send(&s, Op::Append { seq, chunks, callback })
            .map_err(|e| io_error(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.submit_and_wait(
            |s, seq, reply| s.plan_truncate(log_id.index).map(|plan| Op::Truncate { seq, plan, reply }),
            ErrorSubject::Log(log_id),
        )
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.submit_and_wait(
            |s, seq, reply| {
                let delete = s.plan_purge(log_id);
                Some(Op::Purge { seq, purged: log_id, delete, reply })
            },
            ErrorSubject::Log(log_id),
        )
        .await
    }
}
