//! Power cuts, simulated (../shared/TESTING.md): kill -9 keeps the page
//! cache, so it cannot show that "acknowledged" means "on disk". Here the
//! log writes through a recording `Disk`; a power cut at any point of the
//! recording leaves what a disk would hold: each file as of its last sync
//! (plus, sometimes, a torn prefix of what was written after), each name as
//! of the last sync of its directory. The log reopened on that image must
//! hold every append, vote and purge acknowledged before the cut, and
//! nothing that was never appended. With `sync_data` made a no-op (the
//! fsync removed) the same check must fail: the test can tell.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
use rand::{Rng, SeedableRng};

use super::disk::{Disk, DiskFile, OsDisk};
use super::{LogOptions, LogStore};
use crate::raft::types::{Entry, LogId, Proposal, Vote};
use crate::sm::command::Command;
use crate::sm::session::Request;

/// One operation the writer did, by file name (the log lives in one dir).
#[derive(Debug, Clone)]
enum Op {
    Open { name: String, create: bool },
    Write { name: String, offset: u64, bytes: Vec<u8> },
    SetLen { name: String, len: u64 },
    Sync { name: String },
    Rename { from: String, to: String },
    Remove { name: String },
    SyncDir,
}

/// Does the real operation on the real file system and records it.
#[derive(Default)]
struct Recorder {
    ops: Mutex<Vec<Op>>,
    /// The mutation: `sync_data` does nothing, as if the writer's fsync
    /// were removed.
    skip_sync_data: bool,
}

impl Recorder {
    fn record(&self, op: Op) {
        self.ops.lock().unwrap().push(op);
    }

    fn len(&self) -> usize {
        self.ops.lock().unwrap().len()
    }
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

struct RecordedFile {
    name: String,
    file: Box<dyn DiskFile>,
    recorder: Arc<Recorder>,
}

impl DiskFile for RecordedFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_at(buf, offset)?;
        self.recorder.record(Op::Write { name: self.name.clone(), offset, bytes: buf.to_vec() });
        Ok(())
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.recorder.record(Op::SetLen { name: self.name.clone(), len });
        Ok(())
    }
    fn sync_data(&self) -> std::io::Result<()> {
        if !self.recorder.skip_sync_data {
            self.recorder.record(Op::Sync { name: self.name.clone() });
        }
        Ok(())
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.recorder.record(Op::Sync { name: self.name.clone() });
        Ok(())
    }
}

/// The recorder as the writer's disk (it needs an `Arc` of itself).
struct Recording(Arc<Recorder>);

impl Disk for Recording {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Box<dyn DiskFile>> {
        let file = OsDisk.open(path, create)?;
        self.0.record(Op::Open { name: name(path), create });
        Ok(Box::new(RecordedFile { name: name(path), file, recorder: self.0.clone() }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        OsDisk.rename(from, to)?;
        self.0.record(Op::Rename { from: name(from), to: name(to) });
        Ok(())
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        OsDisk.remove(path)?;
        self.0.record(Op::Remove { name: name(path) });
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> std::io::Result<()> {
        self.0.record(Op::SyncDir);
        Ok(())
    }
}

/// A file's bytes as written, and as last synced.
#[derive(Clone, Default)]
struct Inode {
    written: Vec<u8>,
    synced: Vec<u8>,
}

/// What the disk holds after a cut following the first `upto` ops,
/// starting from `baseline` (the files as they were, all durable). With
/// `tear`, a file written past its synced content keeps a random prefix of
/// the unsynced rest, as a disk may.
fn image(baseline: &HashMap<String, Vec<u8>>, ops: &[Op], tear: Option<&mut impl Rng>, out: &Path) {
    let mut inodes: Vec<Inode> = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (n, bytes) in baseline {
        names.insert(n.clone(), inodes.len());
        inodes.push(Inode { written: bytes.clone(), synced: bytes.clone() });
    }
    let mut durable_names = names.clone();
    for op in ops {
        match op {
            Op::Open { name, create } => match names.get(name) {
                Some(&i) if *create => inodes[i].written.clear(),
                Some(_) => {}
                None => {
                    names.insert(name.clone(), inodes.len());
                    inodes.push(Inode::default());
                }
            },
            Op::Write { name, offset, bytes } => {
                let data = &mut inodes[names[name]].written;
                let end = *offset as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*offset as usize..end].copy_from_slice(bytes);
            }
            Op::SetLen { name, len } => inodes[names[name]].written.resize(*len as usize, 0),
            Op::Sync { name } => {
                let inode = &mut inodes[names[name]];
                inode.synced = inode.written.clone();
            }
            Op::Rename { from, to } => {
                let i = names.remove(from).unwrap();
                names.insert(to.clone(), i);
            }
            Op::Remove { name } => {
                names.remove(name);
            }
            Op::SyncDir => durable_names = names.clone(),
        }
    }
    let mut tear = tear;
    for (n, &i) in &durable_names {
        let Inode { written, synced } = &inodes[i];
        let mut bytes = synced.clone();
        if let Some(rng) = tear.as_deref_mut() {
            if written.len() > synced.len() && written.starts_with(synced) && rng.random_bool(0.5) {
                let keep = rng.random_range(0..=written.len() - synced.len());
                bytes.extend_from_slice(&written[synced.len()..synced.len() + keep]);
            }
        }
        std::fs::write(out.join(n), bytes).unwrap();
    }
}

fn entry(index: u64, rng: &mut impl Rng) -> Entry {
    let data = vec![index as u8; rng.random_range(1..600)];
    let cmd = Command::Set { key: index.to_be_bytes().to_vec(), timestamp: index as i64, data };
    let payload = EntryPayload::Normal(Proposal::new(vec![Request::plain(cmd, 0)]));
    openraft::Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), index), payload }
}

/// What the writer acknowledged, each with the number of recorded ops
/// before the acknowledgement: a cut after that many ops must keep it.
#[derive(Default)]
struct History {
    /// (ops, last index appended).
    appends: Vec<(usize, u64)>,
    /// (ops, term voted in).
    votes: Vec<(usize, u64)>,
    /// (ops when issued, index purged up to): a purge issued before a cut
    /// may have happened, acknowledged or not.
    purges: Vec<(usize, u64)>,
    entries: HashMap<u64, Entry>,
}

/// Appends, votes and purges with small segments (many rotations), all
/// recorded; then the baseline and the recording.
async fn run(dir: &Path, recorder: Arc<Recorder>, seed: u64) -> (HashMap<String, Vec<u8>>, History) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let opts = LogOptions { segment_bytes: 8 * 1024, cache_bytes: 1 << 20 };
    let mut store = LogStore::open_on(Arc::new(Recording(recorder.clone())), dir, opts).unwrap();
    let baseline: HashMap<String, Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    recorder.ops.lock().unwrap().clear();
    let mut history = History::default();
    let mut next = 1u64;
    for round in 0..150u64 {
        let batch: Vec<Entry> = (next..next + rng.random_range(1..12)).map(|i| entry(i, &mut rng)).collect();
        next += batch.len() as u64;
        for e in &batch {
            history.entries.insert(e.log_id.index, e.clone());
        }
        store.blocking_append(batch).await.unwrap();
        history.appends.push((recorder.len(), next - 1));
        if round % 10 == 3 {
            store.save_vote(&Vote::new(round + 2, 1)).await.unwrap();
            history.votes.push((recorder.len(), round + 2));
        }
        if round % 25 == 20 {
            let upto = next / 2;
            history.purges.push((recorder.len(), upto));
            store.purge(LogId::new(CommittedLeaderId::new(1, 1), upto)).await.unwrap();
        }
    }
    drop(store);
    (baseline, history)
}

/// Every cut point (and torn variants of some): what was acknowledged
/// before it is there. Returns the failures.
async fn check_cuts(baseline: &HashMap<String, Vec<u8>>, ops: &[Op], history: &History, seed: u64) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut failures = Vec::new();
    for cut in 0..=ops.len() {
        let tear = cut % 3 == 0;
        let out = tempfile::tempdir().unwrap();
        image(baseline, &ops[..cut], tear.then_some(&mut rng), out.path());
        if let Err(e) = check_one(out.path(), cut, history).await {
            failures.push(format!("cut after {cut} of {} ops{}: {e}", ops.len(), if tear { " (torn)" } else { "" }));
        }
    }
    failures
}

async fn check_one(dir: &Path, cut: usize, history: &History) -> Result<(), String> {
    let mut store = LogStore::open(dir, LogOptions::default()).map_err(|e| format!("does not open: {e}"))?;
    let acked = history.appends.iter().filter(|(at, _)| *at <= cut).map(|(_, i)| *i).max().unwrap_or(0);
    let purged = history.purges.iter().filter(|(at, _)| *at < cut).map(|(_, i)| *i).max().unwrap_or(0);
    let entries = store.try_get_log_entries(..).await.map_err(|e| e.to_string())?;
    let have: HashMap<u64, &Entry> = entries.iter().map(|e| (e.log_id.index, e)).collect();
    for index in purged + 1..=acked {
        match have.get(&index) {
            None => return Err(format!("acknowledged entry {index} is lost (acknowledged up to {acked})")),
            Some(e) if **e != history.entries[&index] => return Err(format!("entry {index} differs")),
            Some(_) => {}
        }
    }
    if let Some(e) = entries.iter().find(|e| history.entries.get(&e.log_id.index) != Some(*e)) {
        return Err(format!("entry {} was never appended as it is", e.log_id.index));
    }
    let voted = history.votes.iter().filter(|(at, _)| *at <= cut).map(|(_, t)| *t).max();
    let vote = store.read_vote().await.map_err(|e| e.to_string())?.map(|v| v.leader_id.term);
    if vote < voted {
        return Err(format!("acknowledged vote in term {voted:?} is lost (found {vote:?})"));
    }
    Ok(())
}

async fn cuts(skip_sync_data: bool, seed: u64) -> (usize, usize, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder { skip_sync_data, ..Recorder::default() });
    let (baseline, history) = run(dir.path(), recorder.clone(), seed).await;
    let ops = recorder.ops.lock().unwrap().clone();
    let failures = check_cuts(&baseline, &ops, &history, seed).await;
    (ops.len(), history.appends.len(), failures)
}

#[tokio::test]
async fn a_power_cut_at_any_point_keeps_everything_acknowledged() {
    let (ops, acks, failures) = cuts(false, 17).await;
    eprintln!("{} power cuts ({} torn) over {acks} acknowledged appends: none lost anything", ops + 1, ops / 3 + 1);
    assert!(ops > 500 && acks == 150, "{ops} ops, {acks} acknowledged appends");
    assert!(failures.is_empty(), "{} of {ops} cuts lose data:\n{}", failures.len(), failures.join("\n"));
}

/// The mutation: without the writer's fsync the same cuts lose
/// acknowledged entries, so the test above can fail.
#[tokio::test]
async fn without_the_fsync_power_cuts_lose_acknowledged_writes() {
    let (ops, _, failures) = cuts(true, 17).await;
    eprintln!("without the fsync {} of {} cuts lose data, e.g. {:?}", failures.len(), ops + 1, failures.first());
    assert!(failures.iter().any(|f| f.contains("is lost")), "removing the fsync went unnoticed");
}

/// A disk whose `fdatasync` fails once: the kernel may have dropped the
/// dirty pages, so a retry that succeeds would prove nothing.
struct FailingSync {
    syncs: std::sync::atomic::AtomicU64,
}

struct FailingFile<'a> {
    file: Box<dyn DiskFile>,
    disk: &'a FailingSync,
}

impl DiskFile for FailingFile<'static> {
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.file.write_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.disk.syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(std::io::Error::other("injected fdatasync failure (EIO)"))
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.file.sync_all()
    }
}

impl Disk for &'static FailingSync {
    fn open(&self, path: &Path, create: bool) -> std::io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(FailingFile { file: OsDisk.open(path, create)?, disk: self }))
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        OsDisk.rename(from, to)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        OsDisk.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        OsDisk.sync_dir(dir)
    }
}

/// A failed fsync fails that append and every later operation, and is
/// never tried again (openraft then stops the replica, and the server
/// exits: crates/cli/tests/space.rs shows that on a real full disk).
#[tokio::test]
async fn a_failed_fsync_is_never_retried_and_fails_everything_after() {
    let dir = tempfile::tempdir().unwrap();
    let disk: &'static FailingSync = Box::leak(Box::new(FailingSync { syncs: 0.into() }));
    let opts = LogOptions { segment_bytes: 8 * 1024, cache_bytes: 1 << 20 };
    let mut store = LogStore::open_on(Arc::new(disk), dir.path(), opts).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let first = store.blocking_append(vec![entry(1, &mut rng)]).await;
    assert!(first.is_err(), "an append whose fsync failed was acknowledged");
    let later = store.blocking_append(vec![entry(2, &mut rng)]).await;
    let why = later.expect_err("an append after a failed fsync was acknowledged").to_string();
    assert!(why.contains("injected fdatasync failure"), "the reason is lost: {why}");
    assert!(store.save_vote(&Vote::new(5, 1)).await.is_err(), "a vote after a failed fsync");
    assert_eq!(disk.syncs.load(std::sync::atomic::Ordering::Relaxed), 1, "the fsync was retried");
}
