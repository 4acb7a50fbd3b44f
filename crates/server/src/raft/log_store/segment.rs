//! Recovery: scanning the segment files of a log directory.
//!
//! Shared by `LogStore::open` and the offline `read_dir_offline`, so the
//! server and `ringkv verify` agree on what the log holds. Scanning never
//! modifies a file; it returns the [`Repair`]s that `open` then makes.
//!
//! The rules: segments are read in index order; each must start with the
//! magic header and hold records with consecutive indexes, the first being
//! the index in the file name, continuing where the previous segment ended.
//! Only the end of the last segment may be damaged by a crash (a write in
//! flight when it happened), so a bad last record there, or a zero-filled
//! tail, is cut away with a warning. Damage anywhere else is corruption and
//! stops startup with the file and byte offset in the error.

use std::collections::VecDeque;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

use super::meta::{self, LogMeta};
use super::record::{
    self, Header, RecordFault, OLD_SEGMENT_MAGICS, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC,
};
use super::state::Slot;
use super::LogError;
use crate::disk::Disk;
use crate::raft::types::Entry;

/// A change to the files that recovery calls for.
#[derive(Debug)]
pub(super) enum Repair {
    /// Cut a torn tail off the last segment.
    Truncate { path: PathBuf, len: u64 },
    /// Delete a segment that is fully purged, empty, or whose header is torn.
    Remove { path: PathBuf },
}

/// What the directory holds, as recovery reads it.
pub(super) struct Recovered {
    pub meta: LogMeta,
    /// Segments kept, in order: first index and length in bytes.
    pub segments: Vec<(u64, u64)>,
    /// Index of the first live entry (meaningful when `slots` is not empty).
    pub first_live: u64,
    /// Where each live entry is, consecutive from `first_live`.
    pub slots: VecDeque<Slot>,
    /// Changes `open` must make before writing.
    pub repairs: Vec<Repair>,
}

/// The segment files in `dir` by first index, in order; other files are
/// ignored.
pub(super) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let io_err = |source| LogError::Io { path: dir.to_owned(), source };
    let mut out = Vec::new();
    for dirent in fs::read_dir(dir).map_err(io_err)? {
        let dirent = dirent.map_err(io_err)?;
        if let Some(first) = dirent.file_name().to_str().and_then(record::parse_segment_name) {
            out.push((first, dirent.path()));
        }
    }
    out.sort_unstable_by_key(|(first, _)| *first);
    Ok(out)
}

/// Scans the log in `dir`, calling `on_live` with every live entry (index
/// above the last purged one) in order, with its payload size.
pub(super) fn recover(dir: &Path, offline: bool, on_live: &mut dyn FnMut(Entry, usize)) -> Result<Recovered, LogError> {
    let meta = meta::read(dir)?;
    let purged = meta.last_purged.as_ref().map(|id| id.index);
    let is_purged = |index: u64| purged.is_some_and(|p| index <= p);
    let files = list_segments(dir)?;
    let mut rec = Recovered { meta, segments: Vec::new(), first_live: 0, slots: VecDeque::new(), repairs: Vec::new() };
    let mut next_index: Option<u64> = None;

    for (k, (first, path)) in files.iter().enumerate() {
        let last = k + 1 == files.len();
        if let Some(&(next_first, _)) = files.get(k + 1) {
            if is_purged(next_first - 1) {
                // Every entry is purged; a crash came before the deletion.
                rec.repairs.push(Repair::Remove { path: path.clone() });
                next_index = Some(next_first);
                continue;
            }
        }
        if let Some(expected) = next_index {
            if *first != expected {
                return Err(corrupt(
                    path,
                    0,
                    format!("segment starts at index {first} but the previous one ends at {}", expected - 1),
                ));
            }
        }
        let buf = fs::read(path).map_err(|source| LogError::Io { path: path.clone(), source })?;
        let Some(end) = scan_segment(path, &buf, *first, last, offline, &mut |entry, offset, len| {
            let index = entry.log_id.index;
            if is_purged(index) {
                return;
            }
            if rec.slots.is_empty() {
                rec.first_live = index;
            }
            rec.slots.push_back(Slot { log_id: entry.log_id, offset, len });
            on_live(entry, len as usize);
        })?
        else {
            rec.repairs.push(Repair::Remove { path: path.clone() });
            continue;
        };
        if end.next_index == *first {
            if !last {
                return Err(corrupt(path, SEGMENT_HEADER_LEN, "segment holds no entries".into()));
            }
            rec.repairs.push(Repair::Remove { path: path.clone() });
            continue;
        }
        if end.valid_len < buf.len() as u64 {
            rec.repairs.push(Repair::Truncate { path: path.clone(), len: end.valid_len });
        }
        if last && is_purged(end.next_index - 1) {
            rec.repairs.push(Repair::Remove { path: path.clone() });
        } else {
            rec.segments.push((*first, end.valid_len));
        }
        next_index = Some(end.next_index);
    }
    Ok(rec)
}

/// Makes the repairs recovery called for, durably.
pub(super) fn apply_repairs(
    disk: &dyn Disk,
    dir: &Path,
    repairs: &[Repair],
    fsyncs: &AtomicU64,
) -> Result<(), LogError> {
    for repair in repairs {
        match repair {
            Repair::Truncate { path, len } => {
                let io_err = |source| LogError::Io { path: path.clone(), source };
                let f = disk.open(path, false).map_err(io_err)?;
                f.set_len(*len).map_err(io_err)?;
                f.sync_all().map_err(io_err)?;
            }
            Repair::Remove { path } => {
                disk.remove(path).map_err(|source| LogError::Io { path: path.clone(), source })?;
            }
        }
    }
    if !repairs.is_empty() {
        meta::sync_dir(disk, dir, fsyncs).map_err(|source| LogError::Io { path: dir.to_owned(), source })?;
    }
    Ok(())
}

fn corrupt(path: &Path, offset: u64, reason: String) -> LogError {
    LogError::Corrupt { path: path.to_owned(), offset, reason }
}

/// Where a scanned segment's valid records end.
struct SegmentEnd {
    valid_len: u64,
    next_index: u64,
}

/// Scans one segment's bytes. Returns `None` when the last segment's header
/// itself is torn (the file was being created).
fn scan_segment(
    path: &Path,
    buf: &[u8],
    first: u64,
    last: bool,
    offline: bool,
    on_record: &mut dyn FnMut(Entry, u64, u32),
) -> Result<Option<SegmentEnd>, LogError> {
    let file_len = buf.len() as u64;
    if file_len < SEGMENT_HEADER_LEN {
        if last && SEGMENT_MAGIC.starts_with(buf) {
            warn_torn(path, 0, "segment header cut short", offline);
            return Ok(None);
        }
        return Err(corrupt(path, 0, "segment header cut short".into()));
    }
    let magic = &buf[..SEGMENT_HEADER_LEN as usize];
    if OLD_SEGMENT_MAGICS.iter().any(|old| magic == &old[..]) {
        let found = String::from_utf8_lossy(magic);
        let why = format!(
            "log format {found} was written by an older ringkv; this build reads {}: \
             start this replica on an empty data directory (it catches up from its group) \
             or run the older build",
            String::from_utf8_lossy(SEGMENT_MAGIC)
        );
        return Err(corrupt(path, 0, why));
    }
    if magic != SEGMENT_MAGIC {
        return Err(corrupt(path, 0, "bad magic".into()));
    }
    let mut pos = SEGMENT_HEADER_LEN;
    let mut index = first;
    while pos < file_len {
        let rest = &buf[pos as usize..];
        // A tail fault may be a crash's torn write if it is at the very end.
        let tail_fault: &str = match Header::parse(rest) {
            None => "record header cut short",
            Some(h) if h.len == 0 => "zero-length record",
            Some(h) if !h.plausible() || pos + RECORD_HEADER_LEN + u64::from(h.len) > file_len => {
                "record runs past the end of the file"
            }
            Some(h) => {
                let start = (pos + RECORD_HEADER_LEN) as usize;
                let end = start + h.len as usize;
                match record::decode(h, &buf[start..end]) {
                    Ok(entry) => {
                        if entry.log_id.index != index {
                            let reason = format!("entry has index {} where {index} was expected", entry.log_id.index);
                            return Err(corrupt(path, pos, reason));
                        }
                        on_record(entry, pos, h.len);
                        pos = end as u64;
                        index += 1;
                        continue;
                    }
                    Err(RecordFault::Checksum) if end as u64 == file_len => "checksum mismatch",
                    Err(fault) => return Err(corrupt(path, pos, fault.to_string())),
                }
            }
        };
        // A zero-length record is only a torn write when nothing but zeros
        // follows (space the file system allocated but never filled).
        let torn = last && (tail_fault != "zero-length record" || rest.iter().all(|b| *b == 0));
        if !torn {
            return Err(corrupt(path, pos, tail_fault.into()));
        }
        warn_torn(path, pos, tail_fault, offline);
        break;
    }
    Ok(Some(SegmentEnd { valid_len: pos, next_index: index }))
}

fn warn_torn(path: &Path, offset: u64, reason: &str, offline: bool) {
    let action = if offline { "ignoring it (offline read)" } else { "truncating it" };
    tracing::warn!("log: torn write at the end of {} at offset {offset}: {reason}; {action}", path.display());
}
