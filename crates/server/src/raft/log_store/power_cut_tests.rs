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
use std::sync::Arc;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
use rand::{Rng, SeedableRng};

use super::{LogOptions, LogStore};
use crate::disk::recorder::{image, Op, Recorder, Recording};
use crate::disk::{Disk, DiskFile, OsDisk};
use crate::raft::types::{Entry, LogId, Proposal, Vote};
use crate::sm::command::Command;
use crate::sm::session::Request;

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

/// The acknowledgements (appends and votes) made while a file still had
/// writes no sync had covered: each must follow at least one fsync of
/// every byte written before it.
fn unsynced_acks(ops: &[Op], history: &History) -> Vec<String> {
    let mut acks: Vec<usize> = history.appends.iter().chain(&history.votes).map(|(at, _)| *at).collect();
    acks.sort_unstable();
    let mut pending: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut next = acks.iter().peekable();
    for (i, op) in ops.iter().enumerate() {
        while next.next_if(|&&at| at == i).is_some() {
            if let Some((name, w)) = pending.iter().next() {
                out.push(format!("acknowledged after op {i} with op {w}'s write to {name} not synced"));
            }
        }
        match op {
            Op::Write { name, .. } | Op::SetLen { name, .. } => {
                pending.entry(name).or_insert(i);
            }
            Op::Sync { name } | Op::Remove { name } => {
                pending.remove(name.as_str());
            }
            Op::Rename { from, to } => {
                if let Some(w) = pending.remove(from.as_str()) {
                    pending.insert(to, w);
                }
            }
            Op::Open { .. } | Op::SyncDir => {}
        }
    }
    out
}

/// Runs the recording and checks it: (ops, acknowledged appends,
/// acknowledgements before their fsync, cuts that lose data).
async fn cuts(skip_sync_data: bool, seed: u64) -> (usize, usize, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder { skip_sync_data, ..Recorder::default() });
    let (baseline, history) = run(dir.path(), recorder.clone(), seed).await;
    let ops = recorder.ops.lock().unwrap().clone();
    let unsynced = unsynced_acks(&ops, &history);
    let failures = check_cuts(&baseline, &ops, &history, seed).await;
    (ops.len(), history.appends.len(), unsynced, failures)
}

#[tokio::test]
async fn a_power_cut_at_any_point_keeps_everything_acknowledged() {
    let (ops, acks, unsynced, failures) = cuts(false, 17).await;
    eprintln!("{} power cuts ({} torn) over {acks} acknowledged appends: none lost anything", ops + 1, ops / 3 + 1);
    assert!(ops > 500 && acks == 150, "{ops} ops, {acks} acknowledged appends");
    assert!(unsynced.is_empty(), "acknowledged before the fsync:\n{}", unsynced.join("\n"));
    assert!(failures.is_empty(), "{} of {ops} cuts lose data:\n{}", failures.len(), failures.join("\n"));
}

/// The mutation: without the writer's fsync the same cuts lose
/// acknowledged entries, so the test above can fail.
#[tokio::test]
async fn without_the_fsync_power_cuts_lose_acknowledged_writes() {
    let (ops, acks, unsynced, failures) = cuts(true, 17).await;
    eprintln!("without the fsync {} of {} cuts lose data, e.g. {:?}", failures.len(), ops + 1, failures.first());
    eprintln!(
        "without the fsync {} acknowledgements (of {acks} appends and their votes) come before their fsync",
        unsynced.len()
    );
    assert!(failures.iter().any(|f| f.contains("is lost")), "removing the fsync went unnoticed");
    assert!(!unsynced.is_empty(), "an acknowledgement before its fsync went unnoticed");
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
