//! The small meta file (`raft.meta`): vote, committed log id, last purged
//! log id.
//!
//! It is rewritten whole, never in place: write `raft.meta.tmp`, fsync it,
//! rename over `raft.meta`, fsync the directory. A crash leaves either the
//! old or the new file, so a damaged meta file is real corruption, and the
//! checksum says so instead of letting a wrong vote through.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::LogError;
use crate::disk::Disk;
use crate::raft::types::{LogId, Vote};

const META_FILE: &str = "raft.meta";
const META_TMP: &str = "raft.meta.tmp";
const META_MAGIC: &[u8; 8] = b"RKVMETA1";

/// The log's durable pointers: what `read_dir_offline` reports alongside the
/// entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMeta {
    /// The last vote saved by `save_vote`.
    pub vote: Option<Vote>,
    /// The last committed log id saved by `save_committed`.
    pub committed: Option<LogId>,
    /// Entries up to and including this one are purged.
    pub last_purged: Option<LogId>,
}

/// The meta file's path in `dir`.
pub(super) fn meta_path(dir: &Path) -> PathBuf {
    dir.join(META_FILE)
}

/// Reads the meta file; an absent file is an empty meta (a new log).
pub(super) fn read(dir: &Path) -> Result<LogMeta, LogError> {
    let path = meta_path(dir);
    let buf = match fs::read(&path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LogMeta::default()),
        Err(source) => return Err(LogError::Io { path, source }),
    };
    let corrupt = |offset: u64, reason: &str| LogError::Corrupt { path: path.clone(), offset, reason: reason.into() };
    if buf.len() < 16 || &buf[..8] != META_MAGIC {
        return Err(corrupt(0, "bad magic"));
    }
    let len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    let crc = u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]]);
    let payload = &buf[16..];
    if payload.len() != len {
        return Err(corrupt(8, "length does not match the file"));
    }
    if crc32fast::hash(payload) != crc {
        return Err(corrupt(16, "checksum mismatch"));
    }
    postcard::from_bytes(payload).map_err(|e| corrupt(16, &format!("does not decode: {e}")))
}

/// Durably replaces the meta file with `meta`; counts the fsyncs it does.
pub(super) fn write(disk: &dyn Disk, dir: &Path, meta: &LogMeta, fsyncs: &AtomicU64) -> io::Result<()> {
    let payload = postcard::to_allocvec(meta).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(16 + payload.len());
    buf.extend_from_slice(META_MAGIC);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);

    let tmp = dir.join(META_TMP);
    let f = disk.open(&tmp, true)?;
    f.write_at(&buf, 0)?;
    f.sync_all()?;
    fsyncs.fetch_add(1, Ordering::Relaxed);
    drop(f);
    disk.rename(&tmp, &meta_path(dir))?;
    sync_dir(disk, dir, fsyncs)
}

/// Fsyncs the directory itself, making creations, renames and deletions in
/// it durable.
pub(super) fn sync_dir(disk: &dyn Disk, dir: &Path, fsyncs: &AtomicU64) -> io::Result<()> {
    disk.sync_dir(dir)?;
    fsyncs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
