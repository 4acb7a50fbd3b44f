//! The in-memory view of the log shared by the async API and the writer
//! thread: where every live entry is, the entry cache, and the pointers.
//!
//! All placement decisions (which segment, which offset, when to rotate)
//! are made here, by the caller, under the mutex, in the order openraft
//! issues the operations. The writer thread then only carries them out in
//! the same order, so the index is exact the moment an operation returns,
//! and entries the writer has not yet written are served from the cache
//! (they are never evicted before the writer reports them written).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::File;
use std::sync::Arc;

use super::record::{SEGMENT_HEADER_LEN, SEGMENT_MAGIC};
use crate::raft::types::{Entry, LogId, Vote};

/// Where a live entry is on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Slot {
    pub log_id: LogId,
    /// Offset of the record (its header) in its segment.
    pub offset: u64,
    /// Payload length.
    pub len: u32,
}

/// A segment as the planner sees it.
#[derive(Debug, Clone, Copy)]
pub(super) struct SegInfo {
    /// Bytes written or planned.
    pub size: u64,
    /// Distinguishes a segment from an earlier one of the same name.
    pub gen: u64,
}

/// Bytes for the writer to put at `offset` of segment `seg`; offset 0 means
/// the segment is new (the bytes start with the magic header).
#[derive(Debug)]
pub(super) struct Chunk {
    pub seg: u64,
    pub offset: u64,
    pub bytes: Vec<u8>,
}

/// What the writer must do for a truncation.
#[derive(Debug, Default)]
pub(super) struct TruncatePlan {
    /// Segments to delete, last first (a crash midway leaves a prefix).
    pub delete: Vec<u64>,
    /// Segment to cut, and its new length.
    pub cut: Option<(u64, u64)>,
}

struct Cached {
    entry: Entry,
    bytes: usize,
    /// The operation that writes it; evictable once written.
    seq: u64,
}

/// One entry a read wants that is not in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Miss {
    pub seg: u64,
    pub gen: u64,
    pub slot: Slot,
}

/// An entry a read wants: cached, or to be read from disk.
pub(super) enum Wanted {
    Hit(Entry),
    Miss(Miss),
}

/// See the module doc.
pub(super) struct Shared {
    segment_bytes: u64,
    cache_limit: usize,
    /// Index of `slots[0]`.
    first: u64,
    slots: VecDeque<Slot>,
    pub segments: BTreeMap<u64, SegInfo>,
    next_gen: u64,
    cache: BTreeMap<u64, Cached>,
    cache_used: usize,
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
    pub last_purged: Option<LogId>,
    next_seq: u64,
    written_seq: u64,
    /// Read handles by segment, tagged with the segment's generation.
    pub handles: HashMap<u64, (u64, Arc<File>)>,
    /// Set when the writer failed: nothing more is accepted.
    pub failed: Option<String>,
}

impl Shared {
    /// The state recovery found.
    pub fn new(
        segment_bytes: u64,
        cache_limit: usize,
        segments: &[(u64, u64)],
        first: u64,
        slots: VecDeque<Slot>,
    ) -> Shared {
        let mut s = Shared {
            segment_bytes: segment_bytes.max(1),
            cache_limit,
            first,
            slots,
            segments: BTreeMap::new(),
            next_gen: 0,
            cache: BTreeMap::new(),
            cache_used: 0,
            vote: None,
            committed: None,
            last_purged: None,
            next_seq: 1,
            written_seq: 0,
            handles: HashMap::new(),
            failed: None,
        };
        for &(seg, size) in segments {
            let gen = s.new_gen();
            s.segments.insert(seg, SegInfo { size, gen });
        }
        s
    }

    fn new_gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// A sequence number for the next writer operation.
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The last log id: of the last entry, else the last purged.
    pub fn last_log_id(&self) -> Option<LogId> {
        self.slots.back().map(|s| s.log_id).or(self.last_purged)
    }

    /// The index the next appended entry must have, if constrained.
    fn expected_next(&self) -> Option<u64> {
        if self.slots.is_empty() {
            self.last_purged.map(|id| id.index + 1)
        } else {
            Some(self.first + self.slots.len() as u64)
        }
    }

    /// Places encoded records (entry, record bytes) at the end of the log;
    /// returns the writes for the writer. Rejects a hole without changing
    /// anything.
    pub fn plan_append(&mut self, records: Vec<(Entry, Vec<u8>)>, seq: u64) -> Result<Vec<Chunk>, String> {
        let mut expected = self.expected_next();
        for (entry, _) in &records {
            let index = entry.log_id.index;
            if expected.is_some_and(|e| e != index) {
                return Err(format!("append of index {index} would leave a hole (expected {expected:?})"));
            }
            expected = Some(index + 1);
        }
        let mut chunks: Vec<Chunk> = Vec::new();
        for (entry, rec) in records {
            let index = entry.log_id.index;
            let current = self.segments.last_key_value().map(|(k, v)| (*k, *v));
            let (seg, offset) = match current {
                Some((seg, info)) if info.size < self.segment_bytes => (seg, info.size),
                _ => {
                    let gen = self.new_gen();
                    self.segments.insert(index, SegInfo { size: SEGMENT_HEADER_LEN, gen });
                    chunks.push(Chunk { seg: index, offset: 0, bytes: SEGMENT_MAGIC.to_vec() });
                    (index, SEGMENT_HEADER_LEN)
                }
            };
            if let Some(info) = self.segments.get_mut(&seg) {
                info.size += rec.len() as u64;
            }
            if self.slots.is_empty() {
                self.first = index;
            }
            let len = rec.len() - super::record::RECORD_HEADER_LEN as usize;
            self.slots.push_back(Slot { log_id: entry.log_id, offset, len: len as u32 });
            let bytes = rec.len();
            match chunks.last_mut() {
                Some(c) if c.seg == seg && c.offset + c.bytes.len() as u64 == offset => c.bytes.extend_from_slice(&rec),
                _ => chunks.push(Chunk { seg, offset, bytes: rec }),
            }
            if let Some(old) = self.cache.insert(index, Cached { entry, bytes, seq }) {
                self.cache_used -= old.bytes;
            }
            self.cache_used += bytes;
        }
        self.evict();
        Ok(chunks)
    }

    /// Removes entries from `index` on; returns the writer's work, or
    /// `None` when there is nothing to remove.
    pub fn plan_truncate(&mut self, index: u64) -> Option<TruncatePlan> {
        let end = self.first + self.slots.len() as u64;
        if self.slots.is_empty() || index >= end {
            return None;
        }
        let t = index.max(self.first);
        let offset = self.slots[(t - self.first) as usize].offset;
        self.slots.truncate((t - self.first) as usize);
        for (_, c) in self.cache.split_off(&t) {
            self.cache_used -= c.bytes;
        }
        let mut plan = TruncatePlan::default();
        let holder = self.segments.range(..=t).next_back().map(|(k, _)| *k);
        // Segments from `t` on go entirely (the holder too if it starts at `t`).
        let later: Vec<u64> = self.segments.range(t..).map(|(k, _)| *k).collect();
        for seg in later.into_iter().rev() {
            self.segments.remove(&seg);
            self.handles.remove(&seg);
            plan.delete.push(seg);
        }
        if let Some(seg) = holder.filter(|seg| *seg != t) {
            if let Some(info) = self.segments.get_mut(&seg) {
                info.size = offset;
            }
            plan.cut = Some((seg, offset));
        }
        Some(plan)
    }

    /// Forgets entries up to `log_id`; returns the segments to delete (all
    /// of whose entries are purged), first first.
    pub fn plan_purge(&mut self, log_id: LogId) -> Vec<u64> {
        let p = log_id.index;
        if self.last_purged.is_none_or(|old| old.index < p) {
            self.last_purged = Some(log_id);
        }
        while !self.slots.is_empty() && self.first <= p {
            self.slots.pop_front();
            self.first += 1;
        }
        if self.slots.is_empty() {
            self.first = p + 1;
        }
        let kept = self.cache.split_off(&(p + 1));
        for c in std::mem::replace(&mut self.cache, kept).into_values() {
            self.cache_used -= c.bytes;
        }
        let firsts: Vec<u64> = self.segments.keys().copied().collect();
        let mut delete = Vec::new();
        for (k, seg) in firsts.iter().enumerate() {
            let all_purged = match firsts.get(k + 1) {
                Some(next) => next - 1 <= p,
                // Nothing live means nothing above `p` anywhere.
                None => self.slots.is_empty(),
            };
            if !all_purged {
                break;
            }
            self.segments.remove(seg);
            self.handles.remove(seg);
            delete.push(*seg);
        }
        delete
    }

    /// Seeds the cache with a recovered entry (already on disk).
    pub fn cache_recovered(&mut self, entry: Entry, bytes: usize) {
        let index = entry.log_id.index;
        self.cache_used += bytes;
        self.cache.insert(index, Cached { entry, bytes, seq: 0 });
        self.evict();
    }

    /// Records that the writer finished every operation up to `seq`.
    pub fn mark_written(&mut self, seq: u64) {
        self.written_seq = self.written_seq.max(seq);
        self.evict();
    }

    /// Drops the oldest written entries while over budget.
    fn evict(&mut self) {
        while self.cache_used > self.cache_limit {
            match self.cache.first_entry() {
                Some(e) if e.get().seq <= self.written_seq => {
                    self.cache_used -= e.remove().bytes;
                }
                _ => break,
            }
        }
    }

    /// What a read of `[start, end)` needs, in index order.
    pub fn plan_read(&self, start: u64, end: u64) -> Vec<Wanted> {
        let start = start.max(self.first);
        let end = end.min(self.first + self.slots.len() as u64);
        let mut out = Vec::with_capacity(end.saturating_sub(start).min(4096) as usize);
        for index in start..end {
            if let Some(c) = self.cache.get(&index) {
                out.push(Wanted::Hit(c.entry.clone()));
                continue;
            }
            let slot = &self.slots[(index - self.first) as usize];
            let Some((seg, info)) = self.segments.range(..=index).next_back() else { break };
            out.push(Wanted::Miss(Miss { seg: *seg, gen: info.gen, slot: slot.clone() }));
        }
        out
    }

    #[cfg(test)]
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }
}
