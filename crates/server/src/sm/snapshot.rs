//! Snapshot files (`snap.X`, X = the last log index they include).
//!
//! A snapshot is streamed from one LMDB read transaction, so it is exactly
//! the state at its log index even while writes continue. The file is
//! written as `snap.X.tmp`, fsynced, then renamed, so a crash never leaves a
//! half-written `snap.X`; a checksum over the whole file catches the rest.
//!
//! Layout:
//! ```text
//! "RKVSNAP2" | u32 meta_len | meta (postcard SnapshotMeta)
//! { tag | u32 key_len | key | u32 value_len | value }*     tag 0x01: a key and its history
//!                                                            tag 0x02: a client session
//! 0x00 | u64 record_count | u32 crc32 of every byte before it
//! ```

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::store::{KvStore, StoreError, View};
use crate::disk::{Appender, Disk};
use crate::raft::types::SnapshotMeta;

/// Format 2: store keys (`sm/key.rs`) and histories (`store::encode_history`).
const MAGIC: &[u8; 8] = b"RKVSNAP2";
/// Format 1 held one version per key under its wire bytes: refused by name.
const OLD_MAGIC: &[u8; 8] = b"RKVSNAP1";

/// Why a snapshot's first bytes are not this format's.
fn bad_magic(magic: &[u8]) -> String {
    if magic == OLD_MAGIC {
        "snapshot format 1 (RKVSNAP1: one version per key) is from an older ringkv, which this one cannot read".into()
    } else {
        "not a ringkv snapshot (bad magic)".into()
    }
}
const RECORD: u8 = 1;
const SESSION: u8 = 2;
const END: u8 = 0;
const PREFIX: &str = "snap.";

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("snapshot {path} is corrupt: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A snapshot file on disk, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    pub index: u64,
    pub path: PathBuf,
}

/// The file name of the snapshot whose last log index is `index`.
pub fn file_name(index: u64) -> String {
    format!("{PREFIX}{index:020}")
}

/// The log index a snapshot's metadata stands for (0 when empty).
pub fn meta_index(meta: &SnapshotMeta) -> u64 {
    meta.last_log_id.map_or(0, |id| id.index)
}

/// Every complete snapshot file in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<SnapshotFile>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(index) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)).and_then(|n| n.parse().ok()) else {
            continue;
        };
        found.push(SnapshotFile { index, path: entry.path() });
    }
    found.sort_by_key(|f| f.index);
    Ok(found)
}

/// Removes leftover `snap.*.tmp` files of interrupted writes or transfers.
pub fn remove_temporaries(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(PREFIX) && name.ends_with(".tmp") {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Keeps the newest `keep` snapshots and deletes the rest. Returns the
/// oldest index kept: the log up to it is no longer needed.
pub fn retain(disk: &dyn Disk, dir: &Path, keep: usize) -> io::Result<Option<u64>> {
    let files = list(dir)?;
    let cut = files.len().saturating_sub(keep);
    for old in &files[..cut] {
        disk.remove(&old.path)?;
        tracing::debug!(path = %old.path.display(), "removed old snapshot");
    }
    disk.sync_dir(dir)?;
    Ok(files.get(cut).map(|f| f.index))
}

/// Writes the state seen by `view` as `snap.X` in `dir` and returns its
/// path. The caller builds `meta` from the same view.
pub fn write(disk: &dyn Disk, dir: &Path, view: &View, meta: &SnapshotMeta) -> Result<PathBuf, SnapshotError> {
    let name = file_name(meta_index(meta));
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    let io_err = |source| SnapshotError::Io { path: tmp.clone(), source };
    let file = disk.open(&tmp, true).map_err(io_err)?;
    let mut out = Checksummed::new(BufWriter::with_capacity(1 << 20, Appender::new(file)));
    let meta_bytes =
        postcard::to_allocvec(meta).map_err(|e| SnapshotError::Corrupt { path: tmp.clone(), why: e.to_string() })?;
    out.put(MAGIC).map_err(io_err)?;
    out.put(&len_u32(meta_bytes.len())?.to_le_bytes()).map_err(io_err)?;
    out.put(&meta_bytes).map_err(io_err)?;
    let mut count = 0u64;
    let records = view.iter()?.map(|r| r.map(|kv| (RECORD, kv)));
    let sessions = view.iter_sessions()?.map(|r| r.map(|kv| (SESSION, kv)));
    for item in records.chain(sessions) {
        let (tag, (key, value)) = item?;
        out.put(&[tag]).map_err(io_err)?;
        out.put(&len_u32(key.len())?.to_le_bytes()).map_err(io_err)?;
        out.put(key).map_err(io_err)?;
        out.put(&len_u32(value.len())?.to_le_bytes()).map_err(io_err)?;
        out.put(value).map_err(io_err)?;
        count += 1;
    }
    out.put(&[END]).map_err(io_err)?;
    out.put(&count.to_le_bytes()).map_err(io_err)?;
    let crc = out.hasher.clone().finalize();
    let mut writer = out.inner;
    writer.write_all(&crc.to_le_bytes()).map_err(io_err)?;
    let file = writer.into_inner().map_err(|e| io_err(e.into_error()))?.into_file();
    file.sync_all().map_err(io_err)?;
    disk.rename(&tmp, &path).map_err(io_err)?;
    disk.sync_dir(dir).map_err(io_err)?;
    Ok(path)
}

/// Verifies a snapshot file end to end (checksum and framing) and returns
/// its metadata, without loading it.
pub fn verify(path: &Path) -> Result<SnapshotMeta, SnapshotError> {
    read(path, |_, _, _| Ok(()))
}

/// Reads only a snapshot's header: its metadata, unchecked (the checksum
/// covers the whole file). For a start that needs the newest snapshot's
/// index but not its content; `verify` before trusting the rest.
pub fn read_meta(path: &Path) -> Result<SnapshotMeta, SnapshotError> {
    let corrupt = |why: String| SnapshotError::Corrupt { path: path.to_owned(), why };
    let io_err = |source| SnapshotError::Io { path: path.to_owned(), source };
    let mut input = BufReader::new(File::open(path).map_err(io_err)?);
    let mut head = [0u8; 12];
    input.read_exact(&mut head).map_err(|_| corrupt("file ends early".into()))?;
    if &head[..8] != MAGIC {
        return Err(corrupt(bad_magic(&head[..8])));
    }
    let meta_len = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
    if meta_len > MAX_META_BYTES {
        return Err(corrupt(format!("metadata of {meta_len} bytes")));
    }
    let mut meta_bytes = vec![0u8; meta_len];
    input.read_exact(&mut meta_bytes).map_err(|_| corrupt("file ends early".into()))?;
    postcard::from_bytes(&meta_bytes).map_err(|e| corrupt(format!("metadata: {e}")))
}

/// Snapshot metadata is a log id and a membership: far below this.
const MAX_META_BYTES: usize = 1 << 20;

/// Reads a snapshot, calling `each(tag, key, value)` per record (`is_session`
/// tells the tags apart), and returns its
/// metadata. Records are handed out before the checksum is known: a caller
/// that loads them must discard its work if this returns an error.
pub fn read(
    path: &Path,
    mut each: impl FnMut(u8, &[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<SnapshotMeta, SnapshotError> {
    let corrupt = |why: String| SnapshotError::Corrupt { path: path.to_owned(), why };
    let io_err = |source| SnapshotError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io_err)?;
    let mut input = Checksummed::new(BufReader::with_capacity(1 << 20, file));
    let short = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => corrupt("file ends early".into()),
        _ => io_err(e),
    };
    let magic: [u8; 8] = input.array().map_err(short)?;
    if &magic != MAGIC {
        return Err(corrupt(bad_magic(&magic)));
    }
    let meta_len = u32::from_le_bytes(input.array().map_err(short)?) as usize;
    if meta_len > MAX_META_BYTES {
        return Err(corrupt(format!("metadata of {meta_len} bytes")));
    }
    let meta_bytes = input.vec(meta_len).map_err(short)?;
    let meta: SnapshotMeta = postcard::from_bytes(&meta_bytes).map_err(|e| corrupt(format!("metadata: {e}")))?;
    let mut count = 0u64;
    loop {
        let [tag] = input.array().map_err(short)?;
        match tag {
            RECORD | SESSION => {
                let klen = u32::from_le_bytes(input.array().map_err(short)?) as usize;
                let key = input.vec(klen).map_err(short)?;
                let vlen = u32::from_le_bytes(input.array().map_err(short)?) as usize;
                let value = input.vec(vlen).map_err(short)?;
                each(tag, &key, &value)?;
                count += 1;
            }
            END => break,
            other => return Err(corrupt(format!("unknown record tag {other} after {count} records"))),
        }
    }
    let stored_count = u64::from_le_bytes(input.array().map_err(short)?);
    let crc = input.hasher.clone().finalize();
    let mut stored_crc = [0u8; 4];
    input.inner.read_exact(&mut stored_crc).map_err(short)?;
    if u32::from_le_bytes(stored_crc) != crc || stored_count != count {
        return Err(corrupt("checksum mismatch".into()));
    }
    if input.inner.read(&mut [0u8; 1]).map_err(io_err)? != 0 {
        return Err(corrupt("trailing bytes after the checksum".into()));
    }
    Ok(meta)
}

/// Replaces the store's content with the snapshot at `path`, in one write
/// transaction: if the file turns out corrupt, nothing is committed.
pub fn load(path: &Path, store: &KvStore) -> Result<SnapshotMeta, SnapshotError> {
    store.replace(|loader| {
        let meta =
            read(path, |tag, k, v| if is_session(tag) { loader.put_session_raw(k, v) } else { loader.put_raw(k, v) })?;
        if let Some(id) = &meta.last_log_id {
            loader.set_applied(id)?;
        }
        loader.set_membership(&meta.last_membership)?;
        Ok(meta)
    })
}

/// Whether a record tag read by `read` is a client session.
pub fn is_session(tag: u8) -> bool {
    tag == SESSION
}

/// fsyncs a directory so that renames and removals in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn len_u32(len: usize) -> Result<u32, SnapshotError> {
    u32::try_from(len).map_err(|_| SnapshotError::Corrupt {
        path: PathBuf::new(),
        why: format!("a record of {len} bytes does not fit the format"),
    })
}

/// A reader or writer that keeps a running CRC32 of the bytes through it.
struct Checksummed<T> {
    inner: T,
    hasher: crc32fast::Hasher,
}

impl<T> Checksummed<T> {
    fn new(inner: T) -> Self {
        Self { inner, hasher: crc32fast::Hasher::new() }
    }
}

impl<W: Write> Checksummed<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }
}

impl<R: Read> Checksummed<R> {
    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner.read_exact(&mut buf)?;
        self.hasher.update(&buf);
        Ok(buf)
    }

    fn vec(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        (&mut self.inner).take(len as u64).read_to_end(&mut buf)?;
        if buf.len() != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.hasher.update(&buf);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use rand::SeedableRng;

    use super::*;
    use crate::disk::recorder::{image, Recorder, Recording};
    use crate::disk::OsDisk;
    use crate::raft::types::LogId;
    use crate::sm::command::Command;

    fn store_with(n: u8) -> (tempfile::TempDir, KvStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = KvStore::open(&dir.path().join("sm"), 1 << 26, Default::default()).unwrap().0;
        let mut b = store.batch().unwrap();
        for k in 0..n {
            b.apply(Command::Set { key: vec![k], timestamp: 3, data: vec![k; k as usize] }).unwrap();
        }
        b.set_applied(&LogId::new(openraft::CommittedLeaderId::new(1, 0), n as u64)).unwrap();
        b.commit().unwrap();
        (dir, store)
    }

    fn meta_of(view: &View) -> SnapshotMeta {
        let (last_log_id, last_membership) = view.applied_state().unwrap();
        SnapshotMeta { last_log_id, last_membership, snapshot_id: "t".into() }
    }

    #[test]
    fn write_then_load_round_trips() {
        let (dir, store) = store_with(50);
        let view = store.view().unwrap();
        let meta = meta_of(&view);
        let path = write(&OsDisk, dir.path(), &view, &meta).unwrap();
        drop(view);
        assert!(path.ends_with(file_name(50)));
        let other = KvStore::open(&dir.path().join("sm2"), 1 << 26, Default::default()).unwrap().0;
        assert_eq!(load(&path, &other).unwrap(), meta);
        for k in 0..50u8 {
            assert_eq!(other.read(&[k]).unwrap(), store.read(&[k]).unwrap());
        }
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let (dir, store) = store_with(5);
        let view = store.view().unwrap();
        let path = write(&OsDisk, dir.path(), &view, &meta_of(&view)).unwrap();
        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            assert!(verify(&path).is_err(), "flip at byte {i} not caught");
        }
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(verify(&path).is_err());
    }

    #[test]
    fn retain_keeps_the_newest() {
        let (dir, store) = store_with(1);
        for i in [5u64, 9, 12, 20] {
            let view = store.view().unwrap();
            let mut meta = meta_of(&view);
            meta.last_log_id = Some(LogId::new(openraft::CommittedLeaderId::new(1, 0), i));
            write(&OsDisk, dir.path(), &view, &meta).unwrap();
        }
        assert_eq!(retain(&OsDisk, dir.path(), 3).unwrap(), Some(9));
        let left: Vec<u64> = list(dir.path()).unwrap().iter().map(|f| f.index).collect();
        assert_eq!(left, vec![9, 12, 20]);
    }

    /// Sets keys `from..to` and marks the state applied up to `to`.
    fn add_keys(store: &KvStore, from: u8, to: u8) {
        let mut b = store.batch().unwrap();
        for k in from..to {
            b.apply(Command::Set { key: vec![k], timestamp: 3, data: vec![k; 40] }).unwrap();
        }
        b.set_applied(&LogId::new(openraft::CommittedLeaderId::new(1, 0), to as u64)).unwrap();
        b.commit().unwrap();
    }

    /// A snapshot at 60 on disk; a second at 120 written through
    /// `recorder`, then the older removed (`retain`, one kept), as the
    /// state machine does. A power cut after any prefix of those
    /// operations (every third with a torn unsynced tail) must leave a
    /// snapshot that verifies, the new one once `write` had returned, and
    /// no file named as a snapshot that does not verify. Returns the
    /// number of cuts and the failures.
    fn snapshot_cuts(recorder: Recorder) -> (usize, Vec<String>) {
        let (dir, store) = store_with(60);
        let view = store.view().unwrap();
        write(&OsDisk, dir.path(), &view, &meta_of(&view)).unwrap();
        drop(view);
        let snapshots = |d: &Path| -> HashMap<String, Vec<u8>> {
            list(d).unwrap().into_iter().map(|f| (file_name(f.index), fs::read(&f.path).unwrap())).collect()
        };
        let baseline = snapshots(dir.path());
        add_keys(&store, 60, 120);
        let recorder = Arc::new(recorder);
        let disk = Recording(recorder.clone());
        let view = store.view().unwrap();
        write(&disk, dir.path(), &view, &meta_of(&view)).unwrap();
        let acked = recorder.len();
        assert_eq!(retain(&disk, dir.path(), 1).unwrap(), Some(120));
        let ops = recorder.ops.lock().unwrap().clone();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut failures = Vec::new();
        for cut in 0..=ops.len() {
            let tear = cut % 3 == 0;
            let out = tempfile::tempdir().unwrap();
            image(&baseline, &ops[..cut], tear.then_some(&mut rng), out.path());
            remove_temporaries(out.path()).unwrap();
            let files = list(out.path()).unwrap();
            let valid: Vec<u64> = files.iter().filter(|f| verify(&f.path).is_ok()).map(|f| f.index).collect();
            let mut wrong = Vec::new();
            if valid.len() != files.len() {
                wrong.push(format!("a snapshot file does not verify (valid {valid:?} of {})", files.len()));
            }
            match valid.last() {
                None => wrong.push("no valid snapshot left".to_string()),
                Some(&newest) if cut >= acked && newest != 120 => {
                    wrong.push(format!("the written snapshot is gone (newest {newest})"))
                }
                Some(_) => {}
            }
            if !wrong.is_empty() {
                let torn = if tear { " (torn)" } else { "" };
                failures.push(format!("cut after {cut} of {} ops{torn}: {}", ops.len(), wrong.join("; ")));
            }
        }
        (ops.len() + 1, failures)
    }

    #[test]
    fn a_power_cut_while_snapshotting_leaves_a_valid_snapshot() {
        let (cuts, failures) = snapshot_cuts(Recorder::default());
        assert!(failures.is_empty(), "{} of {cuts} cuts failed:\n{}", failures.len(), failures.join("\n"));
        assert!(cuts >= 8, "only {cuts} cut points");
    }

    /// The mutation: without the file's fsync, a renamed snapshot can be
    /// empty or torn after a cut, and the older one is already gone.
    #[test]
    fn without_the_fsync_a_power_cut_while_snapshotting_can_lose_every_snapshot() {
        let (cuts, failures) = snapshot_cuts(Recorder { skip_sync_all: true, ..Default::default() });
        assert!(!failures.is_empty(), "all {cuts} cuts passed without the snapshot's fsync: the test cannot tell");
        eprintln!("without the fsync: {} of {cuts} cuts fail, e.g. {}", failures.len(), failures[0]);
    }
}
